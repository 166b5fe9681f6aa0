"""Token buckets: per credential, as API Gateway throttles (a steady rate with a burst allowance), and per
client address for failed authentications."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable

__all__ = ["FailedAuthThrottle", "RateLimiter"]

_MAX_BUCKETS = 100_000


class RateLimiter:
    """Buckets for at most ``max_keys`` keys: past that, full buckets are forgotten (they carry no state),
    then the least recently used quarter, so that memory stays bounded whoever sends the keys."""

    def __init__(
        self,
        rate_per_second: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = _MAX_BUCKETS,
    ) -> None:
        self.rate = rate_per_second
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def _tokens(self, key: str, now: float) -> float:
        tokens, last = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - last) * self.rate)

    def delay(self, key: str) -> float:
        """Seconds until ``key``'s bucket holds a token (0.0: now), spending nothing."""
        tokens = self._tokens(key, self._clock())
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def take(self, key: str) -> float:
        """Spend one token of ``key``'s bucket: 0.0 if allowed, else the seconds until a token is back."""
        now = self._clock()
        tokens = self._tokens(key, now)
        # Re-inserted on every use, so that the dict's order is the order of last use.
        known = self._buckets.pop(key, None) is not None
        if not known and len(self._buckets) >= self.max_keys:
            self._forget(now)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens - 1.0, now)
        return 0.0

    def _forget(self, now: float) -> None:
        self._buckets = {
            k: v for k, v in self._buckets.items() if v[0] + (now - v[1]) * self.rate < self.burst
        }
        excess = len(self._buckets) - self.max_keys * 3 // 4
        if excess > 0:
            for key in list(self._buckets)[:excess]:
                del self._buckets[key]


def _client_key(address: str) -> str:
    """The bucket of a client address: an IPv6 client usually holds a whole /64, so that is one client."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


class FailedAuthThrottle:
    """At most ``per_minute`` failed authentications per client address and minute, with as many at once:
    past that, the address is refused for a while before its credentials are even checked (``delay``).
    A request that authenticates costs nothing, so a client with good credentials is refused only while
    its address is over the limit. ``per_minute = 0`` turns it off."""

    def __init__(
        self,
        per_minute: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = _MAX_BUCKETS,
    ) -> None:
        self.per_minute = per_minute
        # False until an authentication fails: until then no address is refused, and the server skips
        # even finding the caller's address (every request with credentials asks).
        self.anyone_failed = False
        self._buckets = (
            RateLimiter(per_minute / 60, max(1.0, per_minute), clock=clock, max_keys=max_addresses)
            if per_minute > 0
            else None
        )

    def delay(self, address: str) -> float:
        """Seconds ``address`` must wait before its next attempt (0.0: it may try now)."""
        if self._buckets is None or not len(self._buckets):
            return 0.0  # nobody has failed: every request pays nothing for this
        return self._buckets.delay(_client_key(address))

    def failed(self, address: str) -> None:
        if self._buckets is not None:
            self.anyone_failed = True
            self._buckets.take(_client_key(address))

    def __len__(self) -> int:
        """How many addresses it remembers (at most ``max_addresses``)."""
        return len(self._buckets) if self._buckets is not None else 0
