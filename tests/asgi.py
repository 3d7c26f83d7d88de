"""Drive a raw ASGI app with exact chunks, disconnects and stalls (tests only)."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.shared.asgi import ASGIApp


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    text: str
    headers: dict[str, str]


async def call(
    app: ASGIApp,
    method: str,
    path: str,
    chunks: Sequence[bytes] = (),
    *,
    then: str = "end",
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> Reply:
    """Drive one request. ``then``: "end" (body complete), "disconnect" or "stall" after the chunks."""
    queue: list[dict[str, Any]] = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    if then == "end":
        queue.append({"type": "http.request", "body": b"", "more_body": False})
    elif then == "disconnect":
        queue.append({"type": "http.disconnect"})
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        await asyncio.sleep(3600)  # a stalled sender
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query.encode(),
        "headers": list(headers),
    }
    await asyncio.wait_for(app(scope, receive, send), 10)
    if not sent:
        return Reply(0, "", {})
    body = b"".join(m.get("body", b"") for m in sent[1:])
    response_headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    return Reply(int(sent[0]["status"]), body.decode("latin-1"), response_headers)
