"""Node roles: which paths a node serves, the settings and flags that choose them, and that the
defaults stay one process with every role and no socket."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from services import cli
from services.node import Node, create_app
from services.settings import Settings
from services.shared.asgi import ASGIApp, Receive, Scope, Send, respond_text
from services.shared.errors import HeadwaterError
from services.shared.metrics import Metrics
from services.shared.store.embedded import EmbeddedStore
from tests.asgi import call


def named(name: str) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond_text(send, 200, name)

    return app


def node(role: str, tmp_path: Path) -> Node:
    return Node(
        settings=Settings(role=role, data_dir=tmp_path),
        store=EmbeddedStore(tmp_path),
        metrics=Metrics(),
        ingest=named("ingest"),
        playback=named("playback"),
        control=named("control"),
    )


@pytest.mark.parametrize(
    ("role", "live", "ingest"),
    [
        ("all", "playback", "ingest"),
        ("ingest", "this node has no packager role", "ingest"),
        ("packager", "playback", "this node has no ingest role"),
    ],
)
async def test_each_role_serves_its_paths_and_the_control_api(
    tmp_path: Path, role: str, live: str, ingest: str
) -> None:
    app = node(role, tmp_path)
    live_reply = await call(app, "GET", "/live/ch/hls/index.m3u8")
    ingest_reply = await call(app, "PUT", "/ingest/ch/Streams(v.cmfv)", [b"body"])
    control_reply = await call(app, "GET", "/api/channels")
    assert (live_reply.text.strip(), ingest_reply.text.strip()) == (live, ingest)
    for reply, text in ((live_reply, live), (ingest_reply, ingest)):
        assert reply.status == (404 if "no" in text else 200)
        if reply.status == 404:
            assert reply.headers["cache-control"] == "no-store"
    assert control_reply.text.strip() == "control"


def test_defaults_are_one_node_with_local_signal_and_no_socket(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    assert app.cluster is None
    assert not Settings().clustered and Settings().serves_ingest and Settings().serves_packager


@pytest.mark.parametrize("settings", [Settings(role="ingest"), Settings(packagers=("127.0.0.1:8081",))])
def test_a_cluster_needs_the_shared_store(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(HeadwaterError, match="--store cassandra"):
        create_app(dataclasses.replace(settings, data_dir=tmp_path))


def test_an_unknown_role_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HeadwaterError, match="unknown role"):
        create_app(Settings(data_dir=tmp_path, role="edge"))


def test_settings_from_the_environment() -> None:
    env = {"HEADWATER_ROLE": "packager", "HEADWATER_PACKAGERS": "a:1, b:2", "HEADWATER_ANNOUNCE_PORT": "9"}
    settings = Settings.from_env(env)
    assert (settings.role, settings.packagers, settings.announce_port) == ("packager", ("a:1", "b:2"), 9)
    assert settings.clustered and not settings.serves_ingest
    defaults = Settings.from_env({})
    assert (defaults.role, defaults.packagers, defaults.announce_port) == ("all", (), None)


def test_serve_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[Settings] = []
    monkeypatch.setattr(cli, "serve", served.append)
    for name in ("ROLE", "PACKAGERS", "ANNOUNCE_PORT"):
        monkeypatch.delenv(f"HEADWATER_{name}", raising=False)
    cli.main(["serve", "--role", "ingest", "--packagers", "p1:8201,p2:8202", "--announce-port", "9000"])
    cli.main(["serve"])
    assert (served[0].role, served[0].packagers, served[0].announce_port) == (
        "ingest",
        ("p1:8201", "p2:8202"),
        9000,
    )
    assert (served[1].role, served[1].packagers, served[1].announce_port) == ("all", (), None)
