"""Per-credential token buckets, as API Gateway throttles: a steady rate with a burst allowance."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["RateLimiter"]

_MAX_BUCKETS = 100_000


class RateLimiter:
    def __init__(
        self, rate_per_second: float, burst: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate_per_second
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """Spend one token of ``key``'s bucket: 0.0 if allowed, else the seconds until a token is back."""
        now = self._clock()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate
        if len(self._buckets) >= _MAX_BUCKETS and key not in self._buckets:
            # Full buckets carry no state worth keeping; forgetting them bounds memory.
            self._buckets = {
                k: v for k, v in self._buckets.items() if v[0] + (now - v[1]) * self.rate < self.burst
            }
        self._buckets[key] = (tokens - 1.0, now)
        return 0.0
