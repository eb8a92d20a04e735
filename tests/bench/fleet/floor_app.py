"""The floor: a trivial ASGI endpoint on the same uvicorn the collector runs, answering every batch of one
event as accepted. What raw HTTP on this machine costs, measured with the same client in the same run."""

from __future__ import annotations

from typing import Any

_ANSWER = b'{"accepted":1,"duplicates":0,"rejected":[],"commands":[]}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:  # read the whole body, as the collector does
        message = await receive()
        more = message.get("more_body", False)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(_ANSWER)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": _ANSWER})
