"""``bench.collapse``: its HTTP parsing and report, and a small burst against a real server process."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.collapse import Burst, CollapseResult, Placement, collapse, parse_head
from bench.collapse_server import running_server
from bench.publish import LatencySummary


def test_parse_head() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: video/mp2t\r\nContent-Length: 1234\r\n\r\n"
    assert parse_head(head) == (200, 1234)
    assert parse_head(b"HTTP/1.1 404 Not Found\r\ncontent-length:0\r\n\r\n") == (404, 0)
    with pytest.raises(ValueError, match="Content-Length"):
        parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")


def test_report() -> None:
    latency = LatencySummary(p50_s=0.5, p99_s=0.9, count=1000, max_s=1.0)
    burst = Burst(
        what="TS segment", requests=1000, size=650_000, fragments=20, reads=20, max_reads=1, other_reads=0,
        joined=997, remuxes=1, first_s=0.004, latency=latency,
    )  # fmt: skip
    placement = Placement(mode="remux on the event loop", probe=latency, remuxes_per_s=110.4)
    text = CollapseResult(bursts=(burst,), placements=(placement,)).markdown()
    assert (
        "| 1,000 x TS segment, 650,000 B from 20 fragments | 1 (20 reads of 20 fragments, 0 others): met"
        in text
    )
    assert "| 997 | 1 | 4.00 / 500 / 1000 ms |" in text
    assert "| remux on the event loop | 500.00 / 900.00 / 1000.00 ms | 110 |" in text


async def test_a_burst_reads_each_fragment_once(tmp_path: Path) -> None:
    with running_server(tmp_path) as base:
        cmaf, ts = await collapse(base, 50)
    for burst in (cmaf, ts):
        assert burst.requests == 50 and burst.max_reads == 1 and burst.other_reads == 0
        assert burst.reads == burst.fragments
    assert (cmaf.fragments, cmaf.remuxes) == (10, 0)
    assert ts.fragments == 20 and ts.remuxes == 1
