"""The cost of ``LogHandler`` on the application's thread: microseconds per ``log.info`` call while the
handler sends to a real server in the background. Part of ``make bench``; alone (about 30 s):
``python -m benchmarks.sdk_handler``.

Each round logs ``calls`` records in a tight loop and divides the time by the calls (the mean, which is
what the application pays; the thread's CPU time too, which other processes on a busy machine do not
inflate); a second pass times every call to see the tail, where the sending thread
holds the GIL. The same loop with a ``logging.NullHandler`` is the cost of ``logging`` itself, so the
handler's own share is the difference. The queue is large enough that nothing is dropped (a dropped
record costs less and would flatter the figure); after each round the handler is flushed, untimed, and
the records delivered per second from the round's start to the end of its flush are noted.
"""

from __future__ import annotations

import logging
import statistics
import time
from typing import Any

from logsvc.client import LogHandler

TARGET_US = 20.0
_EXTRA = {"user_id": 42, "path": "/api/orders", "elapsed_ms": 12.5}


def _mean_us(log: logging.Logger, calls: int, extra: dict[str, Any] | None) -> tuple[float, float]:
    """Wall-clock and CPU microseconds of the application's thread per call."""
    started, cpu = time.perf_counter_ns(), time.thread_time_ns()
    for n in range(calls):
        log.info("request %d served", n, extra=extra)
    return (time.perf_counter_ns() - started) / calls / 1000, (time.thread_time_ns() - cpu) / calls / 1000


def _p99_us(log: logging.Logger, calls: int) -> float:
    timer = time.perf_counter_ns
    samples = []
    for n in range(calls):
        started = timer()
        log.info("request %d served", n)
        samples.append(timer() - started)
    return statistics.quantiles(samples, n=100)[98] / 1000


def measure(url: str, api_key: str, *, calls: int = 50_000, rounds: int = 5) -> dict[str, Any]:
    log = logging.getLogger("benchmarks.sdk_handler")
    log.propagate = False
    log.setLevel(logging.INFO)
    null = logging.NullHandler()
    log.addHandler(null)
    baseline = [_mean_us(log, calls, None) for _ in range(rounds)]
    log.removeHandler(null)
    handler = LogHandler(url, service="bench-sdk", api_key=api_key, queue_size=2 * calls, flush_timeout=120)
    log.addHandler(handler)
    plain, plain_cpu, extra, tail, delivery = [], [], [], [], []
    try:
        for _ in range(rounds):
            for costs, fields in ((plain, None), (extra, _EXTRA)):
                started = time.perf_counter()
                wall, cpu = _mean_us(log, calls, fields)
                costs.append(wall)
                if fields is None:
                    plain_cpu.append(cpu)
                if not handler.flush():
                    raise RuntimeError(f"the server did not take {calls} records within 120 s")
                delivery.append(calls / (time.perf_counter() - started))
            tail.append(_p99_us(log, calls))
            handler.flush()
        if handler.dropped or handler.rejected:
            raise RuntimeError(f"{handler.dropped} dropped and {handler.rejected} refused: not comparable")
    finally:
        log.removeHandler(handler)
        handler.close()
    info_us = round(statistics.median(plain), 2)
    return {
        "calls_per_round": calls,
        "rounds": rounds,
        "null_handler_us": round(statistics.median(wall for wall, _ in baseline), 2),
        "null_handler_cpu_us": round(statistics.median(cpu for _, cpu in baseline), 2),
        "log_info_us": info_us,
        "log_info_cpu_us": round(statistics.median(plain_cpu), 2),
        "log_info_extra_us": round(statistics.median(extra), 2),
        "log_info_p99_us": round(statistics.median(tail), 2),
        "delivered_per_s": round(statistics.median(delivery)),
        "target_us": TARGET_US,
        "met": info_us <= TARGET_US,
    }


def describe(figures: dict[str, Any]) -> str:
    return (
        f"log.info with LogHandler: {figures['log_info_us']:.1f} µs a call (target <= {TARGET_US:g}; "
        f"{figures['log_info_cpu_us']:.1f} µs of CPU), "
        f"{figures['log_info_extra_us']:.1f} µs with 3 extra fields, "
        f"p99 {figures['log_info_p99_us']:.1f} µs; "
        f"logging itself (NullHandler) {figures['null_handler_us']:.1f} µs "
        f"({figures['null_handler_cpu_us']:.1f} µs of CPU); "
        f"delivered {figures['delivered_per_s']:,} records/s"
    )


def main() -> None:
    import tempfile
    from pathlib import Path

    from benchmarks.run import PROFILES, Suite, console

    with tempfile.TemporaryDirectory(prefix="logsvc-bench-") as scratch:
        suite = Suite(PROFILES["quick"], Path(scratch))
        suite.sdk_handler_cost()
    if suite.failures:
        console.print(f"[bold red]failed:[/] {suite.failures[0]}")


if __name__ == "__main__":
    main()
