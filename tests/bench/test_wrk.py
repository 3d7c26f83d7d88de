"""``bench.wrk.parse_wrk`` on reports captured from wrk 4.1.0 (Debian 12) against nginx."""

from __future__ import annotations

import pytest

from bench.wrk import WrkError, parse_duration, parse_size, parse_wrk, wrk_command

PLAYLIST = """\
Running 3s test @ http://127.0.0.1:37465/live/bench/hls/video540.m3u8
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.93ms    1.93ms  25.84ms   89.10%
    Req/Sec    18.33k     4.03k   25.85k    70.00%
  Latency Distribution
     50%    1.28ms
     75%    2.26ms
     90%    4.01ms
     99%    8.73ms
  55025 requests in 3.02s, 76.56MB read
Requests/sec:  18221.04
Transfer/sec:     25.35MB
"""

SEGMENT = """\
Running 3s test @ http://127.0.0.1:37465/live/bench/media/video540/0.m4s
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.67ms    2.90ms  22.94ms   83.86%
    Req/Sec     2.00k   483.39     2.92k    66.67%
  Latency Distribution
     50%    2.73ms
     75%    4.25ms
     90%    7.08ms
     99%   15.87ms
  6038 requests in 3.05s, 2.81GB read
Requests/sec:   1981.55
Transfer/sec:      0.92GB
"""

NOT_FOUND = """\
Running 1s test @ http://127.0.0.1:60617/missing
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   681.67us    1.23ms   8.77ms   86.75%
    Req/Sec    18.01k     4.05k   23.58k    80.00%
  Latency Distribution
     50%  127.00us
     75%  485.00us
     90%    2.41ms
     99%    5.63ms
  17898 requests in 1.01s, 5.26MB read
  Non-2xx or 3xx responses: 17898
Requests/sec:  17785.84
Transfer/sec:      5.22MB
"""

SOCKET_ERRORS = """\
Running 2s test @ http://127.0.0.1:52553/live/bench/hls/video540.m3u8
  1 threads and 1100 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    72.94ms   31.32ms 958.92ms   96.43%
    Req/Sec    11.47k     4.01k   18.19k    76.47%
  Latency Distribution
     50%   74.04ms
     75%   81.10ms
     90%   86.77ms
     99%   94.90ms
  19885 requests in 2.02s, 27.67MB read
  Socket errors: connect 0, read 352, write 0, timeout 13
Requests/sec:   9866.03
Transfer/sec:     13.73MB
"""

NO_LATENCY = """\
Running 1s test @ http://127.0.0.1:37465/live/bench/hls/video540.m3u8
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.93ms    1.93ms  25.84ms   89.10%
    Req/Sec    18.33k     4.03k   25.85k    70.00%
  18221 requests in 1.00s, 25.35MB read
Requests/sec:  18221.04
Transfer/sec:     25.35MB
"""


def test_playlist_report() -> None:
    result = parse_wrk(PLAYLIST)
    assert result.requests_per_s == 18221.04
    assert result.transfer_bytes_per_s == pytest.approx(25.35 * 1024**2)
    assert result.requests == 55025
    assert result.duration_s == pytest.approx(3.02)
    assert result.latency_p50_s == pytest.approx(1.28e-3)
    assert result.latency_p99_s == pytest.approx(8.73e-3)
    assert result.errors == 0


def test_segment_report_in_gigabytes() -> None:
    result = parse_wrk(SEGMENT)
    assert result.requests_per_s == 1981.55
    assert result.transfer_bytes_per_s == pytest.approx(0.92 * 1024**3)
    assert result.latency_p99_s == pytest.approx(15.87e-3)


def test_non_2xx_and_microseconds() -> None:
    result = parse_wrk(NOT_FOUND)
    assert result.non_2xx_3xx == 17898
    assert result.socket_errors == 0
    assert result.latency_p50_s == pytest.approx(127e-6)


def test_socket_errors_are_summed() -> None:
    result = parse_wrk(SOCKET_ERRORS)
    assert result.socket_errors == 352 + 13
    assert result.non_2xx_3xx == 0
    assert result.errors == 365


def test_without_latency_distribution() -> None:
    result = parse_wrk(NO_LATENCY)
    assert result.latency_p50_s is None
    assert result.latency_p99_s is None
    assert result.requests_per_s == 18221.04


def test_usage_text_is_an_error() -> None:
    with pytest.raises(WrkError, match="Requests/sec"):
        parse_wrk("Usage: wrk <options> <url>\n")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("812.00us", 812e-6), ("1.28ms", 1.28e-3), ("10.00s", 10.0), ("1.50m", 90.0), ("1.00h", 3600.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "size"),
    [("512.00B", 512), ("1.50KB", 1536), ("25.35MB", 25.35 * 2**20), ("2.81GB", 2.81 * 2**30)],
)
def test_sizes(text: str, size: float) -> None:
    assert parse_size(text) == pytest.approx(size)


@pytest.mark.parametrize("text", ["", "12", "1.2XB", "ms"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(WrkError):
        parse_size(text)


def test_command() -> None:
    argv = wrk_command("http://127.0.0.1:1/x", connections=32, duration_s=10)
    assert argv[1:] == ["-t1", "-c32", "-d10s", "--timeout=5s", "--latency", "http://127.0.0.1:1/x"]
