"""Small JSON request bodies and JSON error replies, shared by the collector's API routes."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from boothguard.collector import strict_json
from boothguard.collector.ingest_body import BodyError, read_body

SMALL_BODY = 64 * 1024  # enrollment, commands: tiny JSON documents


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class RefuseNul:
    """A NUL in the URL (its path or query, once decoded) is a 400 before any route sees it: PostgreSQL
    cannot hold a NUL in a string, so as a filter value it came back as a 500. Plain ASGI, not
    BaseHTTPMiddleware: ingest pays one substring search, not a task per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope["path"] or b"%00" in scope["query_string"] or b"\x00" in scope["query_string"]
        ):
            await json_error(400, "NUL character in the URL")(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def small_json(request: Request) -> Any:
    body = await read_body(
        request.stream(),
        encoding=request.headers.get("content-encoding"),
        content_length=request.headers.get("content-length"),
        max_body=SMALL_BODY,
        max_decompressed=SMALL_BODY,
    )
    try:
        return strict_json.loads(body)
    except strict_json.StrictJsonError as exc:
        raise BodyError(400, f"body is not JSON the collector stores: {exc}") from None


def openapi_json_body(schema: dict[str, Any]) -> dict[str, Any]:
    # Routes read their body themselves (size limits first), so FastAPI cannot infer this schema.
    inline = inline_defs(schema)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inline}}}}


def inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic schema with its `$defs` put in place: a `#/$defs/…` reference inside /openapi.json
    would point at the document's root, where there is no `$defs` (our models are not recursive)."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    out: dict[str, Any] = walk(schema)
    return out
