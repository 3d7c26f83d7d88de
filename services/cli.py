"""The ``headwater`` command."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from services.cluster import cli as cluster_cli
from services.settings import Settings


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
        )
        serve(settings)
    elif args.command == "cluster":
        raise SystemExit(cluster_cli.run(args))


def serve(settings: Settings) -> None:
    import uvicorn  # noqa: PLC0415 - only the serve command needs the server

    from services.node import create_app  # noqa: PLC0415

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        http="httptools",
        loop="uvloop",
        timeout_keep_alive=30,
    )


if __name__ == "__main__":
    main()
