"""The ``headwater`` command."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from pathlib import Path

from services.cluster import cli as cluster_cli
from services.settings import Settings
from services.shared.errors import HeadwaterError


def _parser(defaults: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="headwater", description="Headwater live-streaming origin")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="run one node: every role (ingest, packager, control API) unless --role says otherwise",
        description="Every flag can also be set as HEADWATER_<NAME> (e.g. HEADWATER_PORT=8080).",
    )
    serve.add_argument("--host", default=defaults.host, help="listen address [HEADWATER_HOST]")
    serve.add_argument("--port", type=int, default=defaults.port, help="listen port [HEADWATER_PORT]")
    serve.add_argument(
        "--store", default=defaults.store, choices=["embedded", "cassandra"],
        help="embedded (SQLite under --data-dir) or cassandra (+ memcached write-through) [HEADWATER_STORE]",
    )  # fmt: skip
    serve.add_argument(
        "--cassandra", default=",".join(defaults.cassandra_hosts),
        help="contact points, comma-separated [HEADWATER_CASSANDRA_HOSTS]",
    )  # fmt: skip
    serve.add_argument(
        "--cassandra-port", type=int, default=defaults.cassandra_port, help="[HEADWATER_CASSANDRA_PORT]"
    )
    serve.add_argument(
        "--keyspace", default=defaults.cassandra_keyspace, help="[HEADWATER_CASSANDRA_KEYSPACE]"
    )
    serve.add_argument(
        "--consistency", default=defaults.cassandra_consistency, help="[HEADWATER_CASSANDRA_CONSISTENCY]"
    )
    serve.add_argument(
        "--memcached", default=",".join(defaults.memcached_nodes),
        help="memcached nodes host:port, comma-separated; empty = no cache [HEADWATER_MEMCACHED]",
    )  # fmt: skip
    serve.add_argument("--data-dir", type=Path, default=defaults.data_dir, help="[HEADWATER_DATA_DIR]")
    serve.add_argument(
        "--idle-timeout-s", type=float, default=defaults.idle_timeout_s, help="[HEADWATER_IDLE_TIMEOUT_S]"
    )
    serve.add_argument("--no-auto-create", action="store_true", help="[HEADWATER_AUTO_CREATE=0]")
    serve.add_argument("--log-level", default=defaults.log_level, help="[HEADWATER_LOG_LEVEL]")
    serve.add_argument(
        "--role", default=defaults.role, choices=["all", "ingest", "packager"],
        help="what this node serves: /ingest/, /live/ or both; the control API always [HEADWATER_ROLE]",
    )  # fmt: skip
    serve.add_argument(
        "--packagers", default=",".join(defaults.packagers),
        help="packager nodes (their HTTP host:port, comma-separated) told of every commit and config"
        " change over UDP; empty = a single node [HEADWATER_PACKAGERS]",
    )  # fmt: skip
    serve.add_argument(
        "--announce-port", type=int, default=defaults.announce_port,
        help="UDP port a packager node receives announcements on (default: --port) [HEADWATER_ANNOUNCE_PORT]",
    )  # fmt: skip
    serve.add_argument(
        "--peers-refresh-s", type=float, default=defaults.peers_refresh_s,
        help="re-resolve --packagers this often, e.g. a headless Service listing every packager pod;"
        " 0 = once at start [HEADWATER_PEERS_REFRESH_S]",
    )  # fmt: skip
    serve.add_argument(
        "--store-wait-s", type=float, default=defaults.store_wait_s,
        help="at start, retry opening the store this long (Cassandra starting, schema not made yet)"
        " [HEADWATER_STORE_WAIT_S]",
    )  # fmt: skip
    serve.add_argument(
        "--no-create-schema", action="store_true",
        help="do not create the keyspace and tables: `headwater schema` does [HEADWATER_CREATE_SCHEMA=0]",
    )  # fmt: skip
    serve.add_argument(
        "--drain-s", type=float, default=defaults.drain_s,
        help="on SIGTERM, answer /readyz 503 this long before closing the listener [HEADWATER_DRAIN_S]",
    )  # fmt: skip
    schema = sub.add_parser(
        "schema",
        help="create the Cassandra keyspace and tables if absent, then exit (a deployment's schema job)",
        description="Settings as for serve, from HEADWATER_CASSANDRA_* and HEADWATER_STORE_WAIT_S.",
    )
    schema.add_argument("--cassandra", default=",".join(defaults.cassandra_hosts), help="contact points")
    schema.add_argument("--cassandra-port", type=int, default=defaults.cassandra_port)
    schema.add_argument("--keyspace", default=defaults.cassandra_keyspace)
    schema.add_argument(
        "--replication-factor", type=int, default=defaults.cassandra_replication_factor,
        help="SimpleStrategy replication factor of a new keyspace [HEADWATER_CASSANDRA_RF]",
    )  # fmt: skip
    schema.add_argument(
        "--wait-s", type=float, default=defaults.store_wait_s or 300.0,
        help="retry this long while Cassandra is not reachable [HEADWATER_STORE_WAIT_S, else 300]",
    )  # fmt: skip
    selftest = sub.add_parser(
        "selftest",
        help="push a short synthetic stream to an origin, fetch its playlists and a segment (helm test)",
    )
    selftest.add_argument("--url", default="http://127.0.0.1:8080", help="the origin (or its router)")
    selftest.add_argument("--channel", default="selftest", help="channel to push (created on first ingest)")
    cluster_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    defaults = Settings.from_env()
    args = _parser(defaults).parse_args(argv)
    if args.command == "serve":
        settings = dataclasses.replace(
            defaults,
            host=args.host,
            port=args.port,
            store=args.store,
            data_dir=args.data_dir,
            idle_timeout_s=args.idle_timeout_s,
            auto_create=defaults.auto_create and not args.no_auto_create,
            log_level=args.log_level,
            cassandra_hosts=tuple(h for h in args.cassandra.split(",") if h),
            cassandra_port=args.cassandra_port,
            cassandra_keyspace=args.keyspace,
            cassandra_consistency=args.consistency,
            memcached_nodes=tuple(n for n in args.memcached.split(",") if n),
            role=args.role,
            packagers=tuple(p.strip() for p in args.packagers.split(",") if p.strip()),
            announce_port=args.announce_port,
            peers_refresh_s=args.peers_refresh_s,
            store_wait_s=args.store_wait_s,
            create_schema=defaults.create_schema and not args.no_create_schema,
            drain_s=args.drain_s,
        )
        serve(settings)
    elif args.command == "schema":
        settings = dataclasses.replace(
            defaults,
            cassandra_hosts=tuple(h for h in args.cassandra.split(",") if h),
            cassandra_port=args.cassandra_port,
            cassandra_keyspace=args.keyspace,
            cassandra_replication_factor=args.replication_factor,
            store_wait_s=args.wait_s,
        )
        raise SystemExit(schema_command(settings))
    elif args.command == "selftest":
        raise SystemExit(selftest_command(args.url, args.channel))
    elif args.command == "cluster":
        raise SystemExit(cluster_cli.run(args))


def serve(settings: Settings) -> None:
    import uvicorn  # noqa: PLC0415 - only the serve command needs the server

    from services.draining import DrainingServer  # noqa: PLC0415
    from services.node import create_app  # noqa: PLC0415

    _configure_logging(settings)
    node = create_app(settings)
    config = uvicorn.Config(
        node,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        http="httptools",
        loop="uvloop",
        timeout_keep_alive=30,
        timeout_graceful_shutdown=FINISH_S,
    )
    DrainingServer(config, drain=node.drain, drain_s=settings.drain_s).run()


#: Once the listener is closed, how long requests in flight (blocking reloads, streamed LL-DASH
#: segments, a Streams() POST) may take to finish before they are cut. A deployment's termination
#: grace period is the drain time plus more than this.
FINISH_S = 15


def schema_command(settings: Settings) -> int:
    from services.node import create_schema  # noqa: PLC0415 - loads the Cassandra driver

    _configure_logging(settings)
    try:
        asyncio.run(create_schema(settings))
    except HeadwaterError as exc:
        print(f"headwater schema: {exc}", file=sys.stderr)
        return 1
    print(f"keyspace {settings.cassandra_keyspace} and its tables are in place")
    return 0


def selftest_command(url: str, channel: str) -> int:
    from services import selftest  # noqa: PLC0415

    try:
        outcome = selftest.run(url, channel)
    except selftest.SelftestFailed as exc:
        print(f"selftest FAILED: {exc}", file=sys.stderr)
        return 1
    print(
        f"selftest ok: {url} took a synthetic stream on channel {channel!r} and served a playlist of"
        f" {outcome.segments} segments and a {outcome.segment_bytes}-byte segment in {outcome.seconds:.1f} s"
    )
    return 0


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )


if __name__ == "__main__":
    main()
