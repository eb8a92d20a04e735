"""Dashboard central policy: groups and their versions, who is behind; an admin edits and publishes.

Publishing goes through the same `policy_store.put_policy` as the API (the agent's own models validate it,
the audit log gets the diff); a refused policy shows each problem with its key, in the viewer's language.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from boothguard.collector import policy_store
from boothguard.collector.web import i18n
from boothguard.collector.web.dashboard import Dashboard, Principal, Refused, _log
from boothguard.policy import PolicyProblem

MAX_BODY = 64 * 1024


def register(router: APIRouter, d: Dashboard) -> None:
    run = anyio.to_thread.run_sync
    page = d.page

    @router.get("/policy")
    @page
    async def policy_page(request: Request) -> Response:
        who = await d.require(request)
        groups = await run(policy_store.groups, d.engine)
        booths = await run(policy_store.status, d.engine)
        return d.render(
            request, "policy.html", who=who, groups=groups, booths=booths,
            behind=sum(1 for b in booths if b["behind"]), published=request.query_params.get("published"),
        )  # fmt: skip

    async def group_or_404(name: str) -> dict[str, Any]:
        current = await run(policy_store.get_policy, d.engine, name)
        if current is None:
            raise Refused(404, "error.not_found")
        return current

    def edit_page(
        request: Request, who: Principal, current: dict[str, Any], text: str, *, status: int = 200,
        problems: list[PolicyProblem] | None = None,
    ) -> Response:  # fmt: skip
        t = i18n.Translator(d.lang(request))
        shown = [
            (p.key, t(f"policy.err.{p.code}", reason=p.reason, subject=p.subject)) for p in problems or []
        ]
        return d.render(
            request, "policy_edit.html", status, who=who, group=current, text=text, problems=shown
        )

    @router.get("/policy/{group}")
    @page
    async def policy_form(request: Request) -> Response:
        who = await d.require(request, "admin")
        current = await group_or_404(request.path_params["group"])
        text = json.dumps(current["body"] or {}, ensure_ascii=False, indent=2, sort_keys=True)
        return edit_page(request, who, current, text)

    @router.post("/policy/{group}")
    @page
    async def policy_publish(request: Request) -> Response:
        who = await d.require(request, "admin")
        fields = await d.form(request, who)
        current = await group_or_404(request.path_params["group"])
        text = fields.get("body", "")[:MAX_BODY]
        try:
            body = json.loads(text)
        except ValueError as exc:
            found = [PolicyProblem("-", f"not JSON: {exc}", "not_json")]
            return edit_page(request, who, current, text, status=400, problems=found)
        out = await run(
            lambda: policy_store.put_policy(d.engine, current["group"], body, actor=who.name, now=d.now())
        )
        if out is None:
            raise Refused(404, "error.not_found")
        if isinstance(out, list):
            _log.info(
                "dashboard_policy_refused", user=who.name, group=current["group"], keys=[p.key for p in out]
            )
            return edit_page(request, who, current, text, status=400, problems=out)
        _log.info("dashboard_policy_published", user=who.name, group=out["group"], version=out["version"])
        target = "/policy?" + urlencode({"published": f"{out['group']} v{out['version']}"})
        return d.secure(RedirectResponse(target, status_code=303), request)
