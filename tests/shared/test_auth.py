import base64

from services.shared.auth import Credentials, credentials_from, may_ingest, may_play, sign_token
from services.shared.channels import AuthConfig
from services.shared.ratelimit import RateLimiter

AUTH = AuthConfig(read_write_keys=("rw",), read_only_keys=("ro",), cdn_header="X-CDN: edge-7")


def test_credentials_are_read_from_basic_bearer_and_token() -> None:
    basic = credentials_from([(b"authorization", b"Basic " + base64.b64encode(b"u:rw"))], b"")
    assert basic.basic_password == "rw"
    assert credentials_from([(b"authorization", b"Bearer ro")], b"").bearer == "ro"
    assert credentials_from([], b"a=1&token=xyz").token == "xyz"
    assert credentials_from([(b"authorization", b"Basic !!!")], b"").basic_password is None


def test_ingest_needs_a_read_write_key() -> None:
    assert may_ingest(AUTH, Credentials(bearer="rw"))
    assert not may_ingest(AUTH, Credentials(bearer="ro"))
    assert not may_ingest(AUTH, Credentials())
    assert may_ingest(AuthConfig(), Credentials())


def test_playback_by_key_cdn_header_or_signed_token() -> None:
    now = 1_800_000_000
    assert may_play(AUTH, Credentials(token="ro"), channel="c", now_s=now)
    assert may_play(AUTH, Credentials(bearer="rw"), channel="c", now_s=now)
    assert may_play(AUTH, Credentials(headers=((b"x-cdn", b"edge-7"),)), channel="c", now_s=now)
    assert not may_play(AUTH, Credentials(headers=((b"x-cdn", b"edge-8"),)), channel="c", now_s=now)
    signed = sign_token("ro", "c", now + 60)
    assert may_play(AUTH, Credentials(token=signed), channel="c", now_s=now)
    assert not may_play(AUTH, Credentials(token=signed), channel="other", now_s=now)
    assert not may_play(AUTH, Credentials(token=signed), channel="c", now_s=now + 61)
    assert not may_play(AUTH, Credentials(token=signed[:-1] + "0"), channel="c", now_s=now)
    assert not may_play(AUTH, Credentials(), channel="c", now_s=now)
    assert may_play(AuthConfig(), Credentials(), channel="c", now_s=now)


def test_rate_limiter_refills_over_time() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert [limiter.allow("c", 2) for _ in range(3)] == [True, True, False]
    now[0] += 0.5
    assert limiter.allow("c", 2) and not limiter.allow("c", 2)
    assert all(limiter.allow("c", 0) for _ in range(100))  # 0 = unlimited
