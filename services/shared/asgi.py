"""Minimal ASGI plumbing for the lean hot paths (ingest and playback bypass FastAPI routing)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]


async def respond(send: Send, status: int, headers: Headers, body: bytes = b"") -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def respond_text(send: Send, status: int, text: str, headers: Headers | None = None) -> None:
    body = (text + "\n").encode()
    base = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    await respond(send, status, base + (headers or []), body)


def header(scope: Scope, name: bytes) -> bytes | None:
    """First value of a request header (``name`` lower-case)."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None
