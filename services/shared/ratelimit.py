"""Token buckets per key (a channel's ingest request limit). Pure apart from the injected clock."""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimiter:
    """Allows ``rate_per_s`` requests a second per key, with bursts up to one second's worth."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)

    def allow(self, key: str, rate_per_s: float) -> bool:
        if rate_per_s <= 0:
            return True
        now = self._clock()
        burst = max(1.0, rate_per_s)
        tokens, last = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate_per_s)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        return allowed
