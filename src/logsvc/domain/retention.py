"""Retention: how long the entries of which services are kept."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from logsvc.domain.timestamps import DAY_US

__all__ = ["RetentionRule", "retention_rules"]


class RetentionRule(msgspec.Struct, frozen=True):
    """Entries of services matching ``include`` (every service when empty) and none of ``exclude`` are
    kept ``days`` days by event time."""

    include: tuple[str, ...]
    exclude: tuple[str, ...]
    days: float

    def cutoff_us(self, now_us: int) -> int:
        return now_us - round(self.days * DAY_US)

    @property
    def scope(self) -> str:
        return "services " + ", ".join(self.include) if self.include else "every other service"


def retention_rules(default_days: float, by_service: Mapping[str, float]) -> list[RetentionRule]:
    """The rules in force: per-service patterns first (first match wins), then the default; 0 days keeps
    forever, so it makes no rule but still shields its services from the rules after it."""
    rules: list[RetentionRule] = []
    before: list[str] = []
    for pattern, days in by_service.items():
        rules.append(RetentionRule((pattern,), tuple(before), days))
        before.append(pattern)
    rules.append(RetentionRule((), tuple(before), default_days))
    return [rule for rule in rules if rule.days > 0]
