"""Who is calling the collector's API: an agent's bearer token, a user's principal, and role checks."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

import anyio
from fastapi import Depends, HTTPException, Request

from boothguard.collector import users

if TYPE_CHECKING:
    # app.py imports the route modules that import this one; Services is only an annotation here.
    from boothguard.collector.app import Services


def bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


async def principal(request: Request) -> users.Principal:
    """The API user: HTTP Basic (name, password) or `Bearer <session token>` from POST /v1/sessions."""
    svc: Services = request.app.state.svc
    run = anyio.to_thread.run_sync
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    found: users.Principal | None = None
    if scheme.lower() == "basic":
        try:
            name, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            name, password = "", ""
        if name and password:
            client = request.client.host if request.client else "?"
            checked = await svc.logins.check(svc.store.engine, name, password, client, svc.store.clock())
            if checked.outcome == "throttled":
                retry = {"Retry-After": str(int(checked.retry_after) + 1)}
                raise HTTPException(429, "too many failed logins for this account or address", retry)
            if checked.outcome == "busy":
                raise HTTPException(503, "too many password checks at once", {"Retry-After": "1"})
            found = checked.principal
    elif scheme.lower() == "bearer" and value.strip():
        found = await run(users.session_principal, svc.store.engine, value.strip(), svc.store.clock())
    if found is None:
        raise HTTPException(401, "login required", {"WWW-Authenticate": 'Basic realm="boothguard"'})
    return found


def _role(needed: str) -> Callable[[users.Principal], Awaitable[users.Principal]]:
    async def check(who: Annotated[users.Principal, Depends(principal)]) -> users.Principal:
        if not who.allows(needed):
            raise HTTPException(403, f"needs role {needed}")
        return who

    return check


User = Annotated[users.Principal, Depends(principal)]
Viewer = Annotated[users.Principal, Depends(_role("viewer"))]
Analyst = Annotated[users.Principal, Depends(_role("analyst"))]
Admin = Annotated[users.Principal, Depends(_role("admin"))]
