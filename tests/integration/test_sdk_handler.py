"""LogHandler and LogProcessor against real servers: every record arrives exactly once, also across a server
that is killed and started again; the queue bound holds and drops are counted; retries honour 429; records
the service refuses do not hold the others back; what is queued goes out at exit and from a forked child."""

from __future__ import annotations

import configparser
import contextlib
import datetime
import io
import json
import logging
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from logsvc.auth.policy import Role
from logsvc.client import Client, Entry, LogHandler, LogProcessor
from tests.conftest import ServerProcess, ServerThread, eventually, make_key, make_settings

ROOT = Path(__file__).resolve().parents[2]
# Short waits between retries, so that a test recovers in a fraction of a second once the server is back.
FAST = {"flush_interval": 0.05, "backoff": 0.05, "max_backoff": 0.2}


def every_entry(url: str, api_key: str, service: str) -> list[Entry]:
    with Client(url, api_key=api_key) as client:
        return [e for page in client.pages(service_name=service, limit=1000) for e in page.logs]


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A logger of its own that does not reach the root logger; its handlers are closed afterwards."""
    log = logging.getLogger(f"test.sdk.{threading.get_ident()}.{id(object())}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


def test_a_thousand_records_arrive_exactly_once(server: ServerThread, logger: logging.Logger) -> None:
    handler = LogHandler(server.url, service="thousand", api_key=server.admin.api_key, batch_size=100)
    logger.addHandler(handler)
    for n in range(1000):
        logger.info("record %d", n, extra={"n": n})
    assert handler.flush(60)
    assert (handler.delivered, handler.dropped, handler.rejected, handler.pending) == (1000, 0, 0, 0)
    entries = every_entry(server.url, server.admin.api_key, "thousand")
    assert len(entries) == 1000
    assert len({e.log_id for e in entries}) == 1000
    assert sorted(e.metadata["n"] for e in entries if e.metadata) == list(range(1000))
    assert {e.message for e in entries} == {f"record {n}" for n in range(1000)}


def test_records_map_to_entries(server: ServerThread, logger: logging.Logger) -> None:
    handler = LogHandler(
        server.url,
        service="mapped",
        api_key=server.admin.api_key,
        log_type="audit",
        metadata={"env": "test", "region": "eu"},
    )
    logger.addHandler(handler)
    logging.addLevelName(25, "NOTICE")
    when = datetime.datetime(2026, 5, 4, 3, 2, 1, tzinfo=datetime.UTC)
    logger.warning(
        "odd values",
        extra={
            "user": {"id": 5, "roles": ("admin",), "groups": {"ops"}},
            "when": when,
            "big": 2**70,
            "thing": object(),
            "raw": b"\xffbytes",
            "deep": [[[[[[[[["too deep"]]]]]]]]],
            "region": "us",
        },
    )
    logger.log(25, "a custom level")
    logger.critical("the end")
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        logger.exception("it failed")
    logger.debug("with a stack", stack_info=True)
    assert handler.flush(30)
    by_message = {e.message: e for e in every_entry(server.url, server.admin.api_key, "mapped")}
    odd = by_message["odd values"]
    assert odd.level == "WARN"
    assert odd.log_type == "audit"
    assert odd.metadata is not None
    assert odd.metadata["logger"] == logger.name
    assert (odd.metadata["module"], odd.metadata["function"]) == (
        "test_sdk_handler",
        "test_records_map_to_entries",
    )
    assert isinstance(odd.metadata["line"], int)
    assert odd.metadata["thread"] == threading.current_thread().name
    assert isinstance(odd.metadata["process"], int)
    assert odd.metadata["user"]["id"] == 5
    assert odd.metadata["user"]["roles"] == ["admin"]
    assert odd.metadata["user"]["groups"] == ["ops"]
    assert odd.metadata["when"] == "2026-05-04T03:02:01+00:00"
    assert odd.metadata["big"] == 2**70
    assert odd.metadata["thing"].startswith("<object object at")
    assert odd.metadata["raw"] == "\\xffbytes"
    # Nesting past the service's 8 levels (the metadata object is the first) is sent as text.
    assert odd.metadata["deep"][0][0][0][0][0] == ["[[['too deep']]]"]
    assert odd.metadata["env"] == "test"
    assert odd.metadata["region"] == "us"  # extra= wins over the handler's own metadata
    assert by_message["a custom level"].level == "INFO"
    assert by_message["the end"].level == "FATAL"
    failed = by_message["it failed"]
    assert failed.level == "ERROR"
    assert failed.metadata is not None
    assert "ZeroDivisionError: division by zero" in failed.metadata["exception"]
    assert "Traceback (most recent call last)" in failed.metadata["exception"]
    stacked = by_message["with a stack"]
    assert stacked.level == "DEBUG"
    assert stacked.metadata is not None
    assert stacked.metadata["stack"].startswith("Stack (most recent call last)")


def _admin_key(process: ServerProcess) -> str:
    profiles = configparser.ConfigParser(interpolation=None)
    profiles.read(process.credentials_file)
    return profiles["default"]["api_key"]


@pytest.mark.timeout(240)
def test_records_logged_while_the_server_is_down_arrive_once_it_is_back(
    server_process: ServerProcess, logger: logging.Logger, capfd: pytest.CaptureFixture[str]
) -> None:
    server_process.start()
    url, key = server_process.url, _admin_key(server_process)
    handler = LogHandler(url, service="outage", api_key=key, batch_size=20, **FAST)
    logger.addHandler(handler)
    for n in range(300):
        logger.info("before %d", n)
    # Killed while batches are going out: one may be stored with its answer lost, and is sent again.
    assert eventually(lambda: handler.delivered >= 40)
    server_process.kill()
    for n in range(300):
        logger.info("during %d", n)
    assert not handler.flush(2)  # down for at least this long: nothing gets through
    assert eventually(lambda: "cannot deliver log records yet" in capfd.readouterr().err)
    server_process.start(port=int(url.rsplit(":", 1)[1]))
    assert server_process.url == url
    assert handler.flush(120)
    assert (handler.delivered, handler.dropped, handler.rejected) == (600, 0, 0)
    entries = every_entry(url, key, "outage")
    messages = sorted(e.message for e in entries)
    assert messages == sorted([f"before {n}" for n in range(300)] + [f"during {n}" for n in range(300)])
    assert len({e.log_id for e in entries}) == 600


@pytest.mark.timeout(240)
def test_the_queue_bound_holds_and_drops_are_counted(
    server_process: ServerProcess, logger: logging.Logger
) -> None:
    server_process.start()
    url, key = server_process.url, _admin_key(server_process)
    server_process.kill()
    # Sent only when the queue is full (the interval is long): then one batch goes out, and stays out
    # while the server is down, and the queue fills again behind it.
    handler = LogHandler(
        url, service="bounded", api_key=key, queue_size=100, batch_size=50, flush_interval=600, backoff=0.05
    )
    logger.addHandler(handler)
    most = 0
    # The handler's own stderr lines, read from a stream of this test's (not through pytest's capture,
    # which one run of the whole suite under load saw empty here).
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        for n in range(1000):
            logger.info("record %d", n)
            most = max(most, handler.pending)
    assert most <= 100 + 50  # the queue, and one batch in flight
    assert handler.dropped >= 850
    assert handler.dropped + handler.pending == 1000
    warnings = [line for line in stderr.getvalue().splitlines() if "dropped" in line]
    assert len(warnings) == 1, warnings  # said once, not for each record
    assert "the queue of 100 was full" in warnings[0]
    server_process.start(port=int(url.rsplit(":", 1)[1]))
    assert handler.flush(120)
    entries = every_entry(url, key, "bounded")
    assert len(entries) == handler.delivered == 1000 - handler.dropped
    assert len({e.message for e in entries}) == len(entries)


def test_429_is_retried_after_the_time_it_names(tmp_path: Path, logger: logging.Logger) -> None:
    settings = make_settings(tmp_path / "data", rate_limit_per_second=4, rate_limit_burst=1)
    server = ServerThread(settings).start()
    try:
        sender = make_key(settings, Role.INGEST)  # its own rate-limit bucket, apart from the reader's
        handler = LogHandler(server.url, service="throttled", api_key=sender.api_key, batch_size=5, **FAST)
        logger.addHandler(handler)
        for n in range(30):
            logger.info("record %d", n)
        assert handler.flush(120)
        assert (handler.delivered, handler.rejected) == (30, 0)
        assert len(every_entry(server.url, server.admin.api_key, "throttled")) == 30
    finally:
        server.stop()


def test_refused_records_do_not_hold_back_the_others(
    server: ServerThread, logger: logging.Logger, capfd: pytest.CaptureFixture[str]
) -> None:
    handler = LogHandler(server.url, service="refused", api_key=server.admin.api_key, batch_size=100)
    logger.addHandler(handler)
    logger.info("first")
    logger.info("   ")  # a blank message: the service refuses it
    logger.info("huge metadata", extra={"blob": "x" * 70_000})  # over 64 KiB of metadata
    logger.info("last")
    assert handler.flush(30)
    assert (handler.delivered, handler.rejected) == (2, 2)
    assert sorted(e.message for e in every_entry(server.url, server.admin.api_key, "refused")) == [
        "first",
        "last",
    ]
    assert "log records refused so far" in capfd.readouterr().err
    scoped = LogHandler(server.url, service="not-mine", api_key="lsk_wrong", batch_size=10)
    logger.addHandler(scoped)
    logger.info("refused as unauthenticated")
    assert scoped.flush(30)
    assert scoped.rejected >= 1


def test_a_batch_too_large_for_the_server_is_split(tmp_path: Path, logger: logging.Logger) -> None:
    server = ServerThread(make_settings(tmp_path / "data", max_body_bytes=4096)).start()
    try:
        handler = LogHandler(server.url, service="split", api_key=server.admin.api_key, batch_size=100)
        logger.addHandler(handler)
        for n in range(100):
            logger.info("record %03d %s", n, "x" * 150)
        logger.info("alone too large %s", "y" * 5000)
        assert handler.flush(60)
        assert (handler.delivered, handler.rejected) == (100, 1)
        entries = every_entry(server.url, server.admin.api_key, "split")
        assert sorted(e.message[:10] for e in entries) == [f"record {n:03d}" for n in range(100)]
    finally:
        server.stop()


def test_batches_larger_than_the_service_takes_are_split(tmp_path: Path, logger: logging.Logger) -> None:
    server = ServerThread(make_settings(tmp_path / "data", max_batch_entries=10)).start()
    try:
        handler = LogHandler(server.url, service="small", api_key=server.admin.api_key, batch_size=50)
        logger.addHandler(handler)
        for n in range(100):
            logger.info("record %d", n)
        logger.info("")  # refused alone, once its batch is small enough for the service to name it
        assert handler.flush(60)
        assert (handler.delivered, handler.rejected) == (100, 1)
        assert len(every_entry(server.url, server.admin.api_key, "small")) == 100
    finally:
        server.stop()


def test_the_handler_does_not_send_what_its_own_requests_log(server: ServerThread) -> None:
    """httpx logs each request at INFO; with the handler on the root logger that must not come back."""
    root = logging.getLogger()
    level = root.level
    handler = LogHandler(server.url, service="rooted", api_key=server.admin.api_key)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        for n in range(10):
            logging.getLogger("app").info("app %d", n)
        assert handler.flush(30)
        assert handler.flush(30)
        assert handler.delivered == 10
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()
    assert len(every_entry(server.url, server.admin.api_key, "rooted")) == 10


def test_the_structlog_processor(server: ServerThread) -> None:
    rendered = io.StringIO()
    processor = LogProcessor(server.url, service="structured", api_key=server.admin.api_key)
    log = structlog.wrap_logger(
        structlog.PrintLogger(rendered),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            processor,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    ).bind(request_id="r-1")
    log.info("user logged in", user={"id": 7}, at=datetime.date(2026, 1, 1))
    log.warning("slow", ms=950.5)
    try:
        {}["missing"]
    except KeyError:
        log.exception("lookup failed")
    log.msg("plain")
    assert processor.flush(30)
    processor.close()
    by_message = {e.message: e for e in every_entry(server.url, server.admin.api_key, "structured")}
    assert set(by_message) == {"user logged in", "slow", "lookup failed", "plain"}
    assert by_message["user logged in"].metadata == {
        "request_id": "r-1",
        "user": {"id": 7},
        "at": "2026-01-01",
    }
    assert (by_message["slow"].level, by_message["slow"].metadata) == (
        "WARN",
        {"request_id": "r-1", "ms": 950.5},
    )
    failed = by_message["lookup failed"]
    assert failed.level == "ERROR"
    assert failed.metadata is not None
    assert "KeyError: 'missing'" in failed.metadata["exception"]
    assert by_message["plain"].level == "INFO"
    # Passed on unchanged: the renderer after it still printed every event.
    printed = [json.loads(line) for line in rendered.getvalue().splitlines()]
    assert [line["event"] for line in printed] == ["user logged in", "slow", "lookup failed", "plain"]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
        check=False,
    )


def test_what_is_queued_is_sent_at_exit(server: ServerThread) -> None:
    """Nothing is sent before the program ends (a long interval, a large batch): the exit sends it all."""
    done = _run(
        f"""
        import logging
        from logsvc.client import LogHandler
        handler = LogHandler({server.url!r}, service="at-exit", api_key={server.admin.api_key!r},
                             flush_interval=600, batch_size=10_000)
        logging.basicConfig(level=logging.INFO, handlers=[handler])
        for n in range(500):
            logging.info("record %d", n)
        print(handler.delivered)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"
    assert len(every_entry(server.url, server.admin.api_key, "at-exit")) == 500


def test_a_forked_child_sends_its_own_records(server: ServerThread) -> None:
    done = _run(
        f"""
        import logging, os, sys
        from logsvc.client import LogHandler
        handler = LogHandler({server.url!r}, service="forked", api_key={server.admin.api_key!r},
                             flush_interval=600)
        log = logging.getLogger("forked")
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        for n in range(10):
            log.info("parent before the fork %d", n)
        child = os.fork()
        if child == 0:
            for n in range(10):
                log.info("child %d", n)
            sys.exit(0 if handler.flush(30) else 3)
        for n in range(10):
            log.info("parent after the fork %d", n)
        _, status = os.waitpid(child, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
        """
    )
    assert done.returncode == 0, done.stderr
    messages = sorted(e.message for e in every_entry(server.url, server.admin.api_key, "forked"))
    assert messages == sorted(
        [f"parent before the fork {n}" for n in range(10)]
        + [f"child {n}" for n in range(10)]
        + [f"parent after the fork {n}" for n in range(10)]
    )
