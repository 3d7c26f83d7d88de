"""Credentials for ingest and playback, checked against a channel's ``AuthConfig``. Pure.

Ingest takes a read-write key as the HTTP Basic password, ``Authorization: Bearer <key>`` or
``?token=<key>``. Playback takes a read-only (or read-write) key the same ways, the CDN identifier header,
or a signed expiring token ``?token=<expires>.<hex>`` where hex is HMAC-SHA256(key, "<channel>:<expires>")
over one of the read-only keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import parse_qs

from services.shared.channels import AuthConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """What a request presented; every field may be absent."""

    basic_password: str | None = None
    bearer: str | None = None
    token: str | None = None
    headers: tuple[tuple[bytes, bytes], ...] = ()


def credentials_from(headers: list[tuple[bytes, bytes]], query_string: bytes) -> Credentials:
    authorization = next((v for k, v in headers if k == b"authorization"), b"").decode("latin-1")
    scheme, _, value = authorization.partition(" ")
    basic = bearer = None
    if scheme.lower() == "basic":
        try:
            basic = base64.b64decode(value, validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            basic = None
    elif scheme.lower() == "bearer":
        bearer = value.strip()
    token = parse_qs(query_string.decode("latin-1")).get("token", [None])[0] if query_string else None
    return Credentials(basic_password=basic, bearer=bearer, token=token, headers=tuple(headers))


def _presented(creds: Credentials) -> list[str]:
    return [k for k in (creds.basic_password, creds.bearer, creds.token) if k]


def _matches(presented: list[str], keys: tuple[str, ...]) -> bool:
    return any(hmac.compare_digest(p.encode(), k.encode()) for p in presented for k in keys)


def may_ingest(auth: AuthConfig, creds: Credentials) -> bool:
    return not auth.read_write_keys or _matches(_presented(creds), auth.read_write_keys)


def sign_token(key: str, channel: str, expires_s: int) -> str:
    digest = hmac.new(key.encode(), f"{channel}:{expires_s}".encode(), hashlib.sha256).hexdigest()
    return f"{expires_s}.{digest}"


def _valid_signed(token: str, keys: tuple[str, ...], channel: str, now_s: float) -> bool:
    expires, _, digest = token.partition(".")
    if not expires.isdigit() or int(expires) < now_s:
        return False
    return any(hmac.compare_digest(sign_token(k, channel, int(expires)), token) for k in keys) and bool(
        digest
    )


def playback_protected(auth: AuthConfig) -> bool:
    return bool(auth.read_only_keys or auth.read_write_keys or auth.cdn_header)


def may_play(auth: AuthConfig, creds: Credentials, *, channel: str, now_s: float) -> bool:
    keys = auth.read_only_keys + auth.read_write_keys
    if not playback_protected(auth):
        return True
    if _matches(_presented(creds), keys):
        return True
    if auth.cdn_header is not None:
        name, _, value = auth.cdn_header.partition(":")
        wanted = (name.strip().lower().encode(), value.strip().encode())
        if any(k == wanted[0] and hmac.compare_digest(v, wanted[1]) for k, v in creds.headers):
            return True
    return creds.token is not None and _valid_signed(creds.token, auth.read_only_keys, channel, now_s)
