"""In-process metrics, rendered in the Prometheus text format by the control API.

Publication latency is kept as a ring of recent samples and exported as a summary with exact
quantiles over that window (what an operator and ``make bench`` want to read), not as buckets.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable


def quantile(samples: list[int], q: float) -> int:
    """Nearest-rank quantile of ``samples`` (which must be non-empty)."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return ordered[rank]


class Metrics:
    __slots__ = (
        "cache_hits",
        "cache_misses",
        "errors",
        "ingest_bytes",
        "publish_ns",
        "published",
        "throttles",
    )

    def __init__(self, window: int = 4096) -> None:
        self.publish_ns: deque[int] = deque(maxlen=window)
        self.published = 0
        self.ingest_bytes = 0
        self.errors: Counter[tuple[str, int]] = Counter()  # (role, status) -> count
        self.throttles = 0
        self.cache_hits = 0
        self.cache_misses = 0

    def observe_publish(self, latency_ns: int, size: int) -> None:
        self.publish_ns.append(latency_ns)
        self.published += 1
        self.ingest_bytes += size

    def error(self, role: str, status: int) -> None:
        self.errors[(role, status)] += 1

    def render(self, live_edge_age_s: Iterable[tuple[str, float]]) -> str:
        lines = [
            "# TYPE headwater_publish_latency_seconds summary",
        ]
        samples = list(self.publish_ns)
        if samples:
            for q in (0.5, 0.9, 0.99):
                lines.append(
                    f'headwater_publish_latency_seconds{{quantile="{q}"}} {quantile(samples, q) / 1e9:.6f}'
                )
        lines += [
            f"headwater_publish_latency_seconds_count {self.published}",
            "# TYPE headwater_ingest_bytes_total counter",
            f"headwater_ingest_bytes_total {self.ingest_bytes}",
            "# TYPE headwater_errors_total counter",
            *(
                f'headwater_errors_total{{role="{role}",code="{code}"}} {n}'
                for (role, code), n in sorted(self.errors.items())
            ),
            "# TYPE headwater_throttles_total counter",
            f"headwater_throttles_total {self.throttles}",
            "# TYPE headwater_cache_requests_total counter",
            f'headwater_cache_requests_total{{result="hit"}} {self.cache_hits}',
            f'headwater_cache_requests_total{{result="miss"}} {self.cache_misses}',
            "# TYPE headwater_live_edge_age_seconds gauge",
            *(f'headwater_live_edge_age_seconds{{channel="{ch}"}} {age:.3f}' for ch, age in live_edge_age_s),
        ]
        return "\n".join(lines) + "\n"
