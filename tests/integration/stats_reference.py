"""The series bound of a histogram by service, written the slow and obvious way, for the brute-force tests:
count every service in the window; past the limit, keep the limit - 1 largest (ties by name) and add the
others' counts, bucket by bucket, under "(other)"."""

from __future__ import annotations

OTHER = "(other)"


def expected_limit(buckets: int) -> int:
    """At most 50 keys a bucket, and at most 10,000 keys in all buckets (but always room for one service and
    the others)."""
    return max(2, min(50, 10_000 // buckets))


def capped(counts: list[dict[str, int]]) -> tuple[list[dict[str, int]], int | None]:
    """Per-bucket counts by service as the answer gives them, and how many services are summed as others."""
    totals: dict[str, int] = {}
    for bucket in counts:
        for name, count in bucket.items():
            totals[name] = totals.get(name, 0) + count
    limit = expected_limit(len(counts))
    if len(totals) <= limit:
        return counts, None
    kept: list[str] = []
    for _ in range(limit - 1):
        best = min((name for name in totals if name not in kept), key=lambda name: (-totals[name], name))
        kept.append(best)
    answer: list[dict[str, int]] = []
    for bucket in counts:
        shown = {name: count for name, count in bucket.items() if name in kept}
        rest = sum(count for name, count in bucket.items() if name not in kept)
        if rest:
            shown[OTHER] = rest
        answer.append(shown)
    return answer, len(totals) - len(kept)
