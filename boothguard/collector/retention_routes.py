"""The API's view of retention: one host's stored chain verified over a seq range (skeletons included), and
the retention job's state (settings, cursors, latest runs from the audit log)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import sqlalchemy as sa
from fastapi import FastAPI, Path, Query
from fastapi.responses import JSONResponse

from boothguard.collector import db, retention
from boothguard.collector.api_io import json_error
from boothguard.collector.auth import Admin, Viewer
from boothguard.collector.host_ids import HOST_ID_PATTERN
from boothguard.collector.schema import audit_log, hosts, retention_cursors
from boothguard.collector.web.queries import EXPORT_LIMIT
from boothguard.collector.web.reports import verify_hosts
from boothguard.events import format_time

if TYPE_CHECKING:
    from boothguard.collector.app import Services

SEQ_MAX = 2**63 - 1
_HOST_ID = re.compile(HOST_ID_PATTERN)
RUNS_SHOWN = 20
Seq = Annotated[int | None, Query(ge=1, le=SEQ_MAX)]


def mount(app: FastAPI, svc: Services) -> None:
    store = svc.store
    run = anyio.to_thread.run_sync

    @app.get("/v1/hosts/{host_id}/chain", responses={400: {}, 401: {}, 403: {}, 404: {}})
    async def host_chain(
        host_id: Annotated[str, Path(max_length=128)], _who: Viewer, from_seq: Seq = None, to_seq: Seq = None
    ) -> JSONResponse:
        """Re-verify the stored chain over [from_seq, to_seq] (default: the newest EXPORT_LIMIT seqs)."""

        def check() -> JSONResponse:
            if not _HOST_ID.match(host_id):  # no such host can exist (and a NUL would trouble PostgreSQL)
                return json_error(404, "no such host")
            with db.read(store.engine) as conn:
                max_seq = conn.execute(sa.select(hosts.c.max_seq).where(hosts.c.id == host_id)).scalar()
            if max_seq is None:
                return json_error(404, "no such host")
            hi = min(to_seq or int(max_seq), int(max_seq))
            lo = from_seq or max(1, hi - EXPORT_LIMIT + 1)
            if hi and lo > hi:
                return json_error(400, f"from_seq {lo} is past to_seq {hi}")
            if hi - lo + 1 > EXPORT_LIMIT:
                return json_error(400, f"at most {EXPORT_LIMIT} seqs per check")
            [report] = verify_hosts(store.engine, {host_id: (lo, hi)})
            return JSONResponse(report.as_json())

        return await run(check)

    @app.get("/v1/retention", responses={401: {}, 403: {}})
    async def retention_state(_who: Admin) -> dict[str, Any]:
        def state() -> dict[str, Any]:
            with db.read(store.engine) as conn:
                cursors = conn.execute(sa.select(retention_cursors).order_by(retention_cursors.c.name))
                runs = conn.execute(
                    sa.select(audit_log.c.time, audit_log.c.detail)
                    .where(audit_log.c.action == retention.ACTION)
                    .order_by(audit_log.c.id.desc())
                    .limit(RUNS_SHOWN)
                ).all()
                return {
                    "settings": svc.settings.retention.model_dump(mode="json"),
                    "cursors": [{"class": r.name, "after_pk": int(r.after_pk)} for r in cursors],
                    "runs": [{"time": format_time(t), **detail} for t, detail in runs],
                }

        return await run(state)
