"""nginx as the reference: a generated config serving fixed files under their origin URL paths.

One worker process (like the origin's one uvicorn process), ``sendfile``, no access log, loopback only.
The config is a pure function (``nginx_config``); ``running_nginx`` writes the files and the config into a
work directory, runs ``nginx -p <dir> -c <conf>`` in the foreground as a child, and stops it on exit.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.procs import command_output, stop_process_group, tail, wait_for_port
from tests.e2e.origin import free_port

NGINX = "/usr/sbin/nginx"
_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


@dataclass(frozen=True, slots=True)
class Nginx:
    base_url: str
    process: subprocess.Popen[bytes]
    error_log: Path


def nginx_config(*, prefix: Path, root: Path, port: int, run_as_root: bool) -> str:
    """The whole nginx.conf. Temp paths live under ``prefix`` so nothing is written outside it.

    ``run_as_root`` adds ``user root;`` (only meaningful when the master runs as root): the worker then
    reads the files whatever the permissions of the temporary directory are.
    """
    temp = "".join(f"    {name}_temp_path {prefix / 'temp' / name};\n" for name in _TEMP_PATHS)
    user = "user root;\n" if run_as_root else ""
    return (
        f"{user}"
        "worker_processes 1;\n"
        "daemon off;\n"
        f"error_log {prefix / 'error.log'};\n"
        f"pid {prefix / 'nginx.pid'};\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        "    access_log off;\n"
        "    sendfile on;\n"
        "    tcp_nopush on;\n"
        "    keepalive_requests 100000;\n"
        f"{temp}"
        "    server {\n"
        f"        listen 127.0.0.1:{port};\n"
        f"        root {root};\n"
        "        types { application/vnd.apple.mpegurl m3u8; video/mp4 m4s; }\n"
        "    }\n"
        "}\n"
    )


def file_path(root: Path, url_path: str) -> Path:
    """Where the file for ``url_path`` (``/live/...``) goes under ``root``; rejects anything escaping it."""
    parts = url_path.split("/")
    if len(parts) < 2 or parts[0] != "" or any(part in ("", ".", "..") for part in parts[1:]):
        raise ValueError(f"not a plain absolute URL path: {url_path!r}")
    return root.joinpath(*parts[1:])


def write_root(root: Path, files: Mapping[str, bytes]) -> None:
    """Write each URL path's bytes under ``root``, readable by any user (nginx's default worker user)."""
    for url_path, data in files.items():
        path = file_path(root, url_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o644)
    for directory in (root, *(d for d in root.rglob("*") if d.is_dir())):
        directory.chmod(0o755)


def nginx_version() -> str:
    """``1.22.1`` from ``nginx -v`` ('' if nginx is missing)."""
    match = re.search(r"nginx/(\S+)", command_output([NGINX, "-v"]))
    return match.group(1) if match else ""


@contextlib.contextmanager
def running_nginx(workdir: Path, files: Mapping[str, bytes], *, port: int | None = None) -> Iterator[Nginx]:
    """nginx serving ``files`` (URL path -> bytes) on 127.0.0.1 until the block exits."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o755)
    root = workdir / "root"
    write_root(root, files)
    for name in _TEMP_PATHS:
        (workdir / "temp" / name).mkdir(parents=True, exist_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(nginx_config(prefix=workdir, root=root, port=port, run_as_root=os.geteuid() == 0))
    error_log = workdir / "error.log"
    with (workdir / "nginx.out").open("ab") as out:
        # -e: the error log before the config is read (else the compiled-in path); own session: a
        # terminal's Ctrl-C reaches nginx only through the finally below.
        proc = subprocess.Popen(
            [NGINX, "-p", f"{workdir}/", "-c", str(conf), "-e", str(error_log)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        if not wait_for_port(port, proc):
            state = "still not listening" if proc.poll() is None else f"exited with {proc.returncode}"
            raise RuntimeError(
                f"nginx did not start ({state}): {tail(error_log)} {tail(workdir / 'nginx.out')}"
            )
        yield Nginx(base_url=f"http://127.0.0.1:{port}", process=proc, error_log=error_log)
    finally:
        stop_process_group(proc)  # SIGTERM: fast shutdown of the master and its worker
