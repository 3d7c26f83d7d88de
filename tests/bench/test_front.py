"""bench.front's table: each front way is compared with the node way of the same ingest mode."""

from bench.front import WAYS, Way, markdown


def test_ratios_compare_like_with_like() -> None:
    medians_ms = {WAYS[0]: 4, WAYS[1]: 2, WAYS[2]: 6, WAYS[3]: 3}
    ways = [Way(name, tuple(ms * 1_000_000 for _ in range(5))) for name, ms in medians_ms.items()]
    rows = {line.split(" | ")[0].lstrip("| "): line for line in markdown(ways).splitlines()[2:]}
    assert "| 1.50x |" in rows["front, Streams()"]  # 6 ms against the node's Streams() 4 ms
    assert "| 1.50x |" in rows["front, per-segment"]  # 3 ms against the node's per-segment 2 ms
    assert "| 1.00x |" in rows["node, Streams()"] and "| 5 |" in rows["node, per-segment"]
