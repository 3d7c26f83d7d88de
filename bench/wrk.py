"""wrk: the command line, a run, and the parse of its text report (``parse_wrk`` is pure).

wrk prints rounded, unit-scaled figures: ``Requests/sec`` with 2 decimals, ``Transfer/sec`` in binary
units with 2 decimals (``25.35MB``, ``0.92GB``: about 0.5 % resolution), latencies with 2 decimals in
``us``/``ms``/``s``. That is finer than the run-to-run noise of a shared machine.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

WRK = "/usr/bin/wrk"

_BINARY = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
_TIME_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_NUMBER = r"(\d+(?:\.\d+)?)"


class WrkError(RuntimeError):
    """wrk failed or printed something this parser does not understand."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WrkResult:
    requests_per_s: float
    transfer_bytes_per_s: float  # response bytes (headers + bodies) per second, as wrk counts them
    requests: int
    duration_s: float
    latency_p50_s: float | None  # only with --latency
    latency_p99_s: float | None
    socket_errors: int  # connect + read + write + timeout
    non_2xx_3xx: int

    @property
    def errors(self) -> int:
        return self.socket_errors + self.non_2xx_3xx


def parse_size(text: str) -> float:
    """wrk's binary size (``25.35MB``, ``512.00B``) in bytes."""
    match = re.fullmatch(_NUMBER + r"([KMGTP]?)B", text.strip())
    if match is None:
        raise WrkError(f"not a wrk size: {text!r}")
    return float(match.group(1)) * _BINARY[match.group(2)]


def parse_duration(text: str) -> float:
    """wrk's time (``812.00us``, ``1.28ms``, ``10.00s``, ``1.50m``) in seconds."""
    match = re.fullmatch(_NUMBER + r"(us|ms|s|m|h)", text.strip())
    if match is None:
        raise WrkError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _TIME_S[match.group(2)]


def _search(pattern: str, text: str, what: str) -> re.Match[str]:
    match = re.search(pattern, text, re.MULTILINE)
    if match is None:
        raise WrkError(f"no {what} in wrk output:\n{text}")
    return match


def parse_wrk(text: str) -> WrkResult:
    """The figures of one wrk report (``wrk ... [--latency]`` stdout)."""
    rps = _search(r"^Requests/sec:\s+" + _NUMBER + r"\s*$", text, "Requests/sec")
    transfer = _search(r"^Transfer/sec:\s+(\S+)\s*$", text, "Transfer/sec")
    total = _search(r"^\s*(\d+) requests in (\S+), (\S+) read\s*$", text, "request count")
    percentiles = {
        q: parse_duration(value) for q, value in re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", text, re.MULTILINE)
    }
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text, re.MULTILINE
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return WrkResult(
        requests_per_s=float(rps.group(1)),
        transfer_bytes_per_s=parse_size(transfer.group(1)),
        requests=int(total.group(1)),
        duration_s=parse_duration(total.group(2)),
        latency_p50_s=percentiles.get("50"),
        latency_p99_s=percentiles.get("99"),
        socket_errors=sum(int(n) for n in socket.groups()) if socket else 0,
        non_2xx_3xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def wrk_command(
    url: str,
    *,
    connections: int,
    duration_s: int,  # wrk takes whole seconds only
    threads: int = 1,
    latency: bool = True,
    timeout_s: float = 5.0,
) -> list[str]:
    return [
        WRK,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s}s",
        f"--timeout={timeout_s:g}s",
        *(["--latency"] if latency else []),
        url,
    ]


def run_wrk(url: str, *, connections: int, duration_s: int, latency: bool = True) -> WrkResult:
    argv = wrk_command(url, connections=connections, duration_s=duration_s, latency=latency)
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=duration_s + 30,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:  # subprocess.run kills wrk before raising
        raise WrkError(f"wrk did not finish: {' '.join(argv)}") from exc
    if done.returncode != 0:
        raise WrkError(f"{' '.join(argv)} exited with {done.returncode}: {done.stderr.strip()}")
    return parse_wrk(done.stdout)


def wrk_version() -> str:
    """``4.1.0-3+b2`` (wrk -v prints its banner and exits 1)."""
    try:
        done = subprocess.run([WRK, "-v"], capture_output=True, text=True, timeout=5, check=False)
    except OSError:
        return ""
    match = re.search(r"wrk (?:debian/)?(\S+)", done.stdout + done.stderr)
    return match.group(1) if match else ""
