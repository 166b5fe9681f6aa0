"""Loki's push API at POST /loki/api/v1/push, sent by python-logging-loki (JSON, HTTP Basic with the key as
the password, and SigV4 through requests-aws4auth), by hand as Promtail sends it (a PushRequest built from
Loki's push.proto, snappy-compressed) and as JSON over httpx, then read back over GET /logs."""

from __future__ import annotations

import gzip
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import logging_loki
import pytest
from requests_aws4auth import AWS4Auth

from logsvc.auth.policy import Role
from tests.conftest import ServerThread, bearer, make_key, make_settings, read_service
from tests.loki_push import PROTOBUF, push_body, push_request, snappy

PUSH = "/loki/api/v1/push"


def _service() -> str:
    return f"loki-{uuid.uuid4().hex[:8]}"


def _us(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp).timestamp() * 1_000_000)


@pytest.fixture
def ingest_key(server: ServerThread) -> str:
    return make_key(server.settings, Role.INGEST).api_key


def _post(server: ServerThread, body: bytes, key: str | None, **headers: str) -> httpx.Response:
    sent = PROTOBUF | ({"Authorization": f"Bearer {key}"} if key else {}) | headers
    return httpx.post(f"{server.url}{PUSH}", content=body, headers=sent, timeout=10)


@pytest.fixture
def loki_logger(server: ServerThread, ingest_key: str) -> Iterator[tuple[logging.Logger, str]]:
    """A stdlib logger whose records python-logging-loki pushes, authenticated with HTTP Basic."""
    service = _service()
    handler = logging_loki.LokiHandler(
        url=f"{server.url}{PUSH}",
        tags={"service_name": service, "env": "test"},
        auth=("shipper", ingest_key),
        version="1",
    )
    logger = logging.getLogger(f"app.{service}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(handler)
    yield logger, service
    logger.removeHandler(handler)
    handler.close()


def test_python_logging_loki_pushes_with_basic_auth(
    server: ServerThread, loki_logger: tuple[logging.Logger, str]
) -> None:
    logger, service = loki_logger
    before_us = time.time_ns() // 1000
    logger.warning("payment declined", extra={"tags": {"order_id": "42"}})
    logger.error("gave up")
    logger.debug("cache miss")
    after_us = time.time_ns() // 1000

    stored = read_service(server, service)
    assert [(e["level"], e["message"]) for e in stored] == [
        ("DEBUG", "cache miss"),
        ("ERROR", "gave up"),
        ("WARN", "payment declined"),
    ]
    warning = stored[2]
    assert warning["service_name"] == service
    # python-logging-loki sends the level as the label `severity` and the logger's name as `logger`.
    assert warning["metadata"] == {"labels": {"env": "test", "logger": f"app.{service}", "order_id": "42"}}
    assert before_us - 1_000 <= _us(warning["timestamp"]) <= after_us + 1_000


def test_python_logging_loki_signed_with_sigv4(server: ServerThread) -> None:
    """The handler's ``auth`` is a requests auth: requests-aws4auth signs each push with SigV4."""
    key = make_key(server.settings, Role.INGEST)
    service = _service()
    signer = AWS4Auth(key.access_key_id, key.secret_access_key, "us-east-1", "execute-api")
    handler = logging_loki.LokiHandler(
        url=f"{server.url}{PUSH}", tags={"app": service}, auth=signer, version="1"
    )
    logger = logging.getLogger(f"signed.{service}")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("signed push")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert [(e["level"], e["message"]) for e in read_service(server, service)] == [("WARN", "signed push")]


def test_a_promtail_push_protobuf_and_snappy(server: ServerThread, ingest_key: str) -> None:
    service = _service()
    ns = 1_764_460_800_123_456_789  # 2025-11-30T00:00:00.123456789Z
    body = push_body(
        [
            (
                f'{{filename="/var/log/app.log", job="{service}", note="say \\"hi\\"\\n"}}',
                [
                    (ns, "ts=1 level=warn msg=slow", {"trace_id": "abc123", "pod": "web-1"}),
                    (ns + 1_000, '{"level": "error", "msg": "failed"}'),
                    (ns + 2_000, "plain line"),
                ],
            ),
            (f'{{job="{service}", level="fatal"}}', [(ns + 3_000, "level=debug but the label wins")]),
        ]
    )
    answer = _post(server, body, ingest_key)
    assert answer.status_code == 204, answer.text
    assert answer.content == b""
    assert "content-type" not in answer.headers

    latest, plain, failed, slow = read_service(server, service)
    assert (slow["level"], slow["message"], slow["timestamp"]) == (
        "WARN",
        "ts=1 level=warn msg=slow",
        "2025-11-30T00:00:00.123456Z",
    )
    assert slow["metadata"] == {
        "labels": {"filename": "/var/log/app.log", "note": 'say "hi"\n'},
        "structured_metadata": {"trace_id": "abc123", "pod": "web-1"},
    }
    assert (failed["level"], failed["timestamp"]) == ("ERROR", "2025-11-30T00:00:00.123457Z")
    assert (plain["level"], plain["message"]) == ("INFO", "plain line")
    assert (latest["level"], latest["metadata"]) == ("FATAL", None)
    assert {e["service_name"] for e in (latest, plain, failed, slow)} == {service}


def test_json_push_gzipped_over_httpx(server: ServerThread, ingest_key: str) -> None:
    service = _service()
    ns = time.time_ns()
    push = {
        "streams": [
            {
                "stream": {"app": service, "region": "eu"},
                "values": [[str(ns), "first", {"user": "u1"}], [str(ns + 1), "level=error second"]],
            }
        ]
    }
    answer = httpx.post(
        f"{server.url}{PUSH}",
        json=push,
        headers={"Authorization": f"Bearer {ingest_key}"},
        timeout=10,
    )
    assert answer.status_code == 204, answer.text
    zipped = httpx.post(
        f"{server.url}{PUSH}",
        content=gzip.compress(httpx.Request("POST", "/", json=push).content),
        headers={
            "Authorization": f"Bearer {ingest_key}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
        timeout=10,
    )
    assert zipped.status_code == 204, zipped.text
    second, first = read_service(server, service)  # the gzipped retry added nothing
    assert (first["message"], first["level"]) == ("first", "INFO")
    assert first["metadata"] == {"labels": {"region": "eu"}, "structured_metadata": {"user": "u1"}}
    assert (second["message"], second["level"]) == ("level=error second", "ERROR")
    assert _us(first["timestamp"]) == ns // 1000


def test_bytes_that_are_not_utf8_are_stored_as_replacement_characters(
    server: ServerThread, ingest_key: str
) -> None:
    """Agents send a file's bytes as they are, and Loki stores a line that is not UTF-8: the push is stored
    whole, each such byte as U+FFFD, rather than refused (which would lose the agent's batch)."""
    service = _service()
    ns = 1_764_460_800_000_000_000
    push = push_request(
        [
            (
                f'{{app="{service}", shop="caf_"}}',
                [(ns, "before"), (ns + 1_000, "caf_ au lait", {"menu": "caf_"}), (ns + 2_000, "after")],
            )
        ]
    )
    raw = push.SerializeToString()
    # The reference encoder writes only UTF-8: the byte goes in afterwards, in place of "_" (same length).
    assert raw.count(b"caf_") == 3
    answer = _post(server, snappy(raw.replace(b"caf_", b"caf\xe9")), ingest_key)
    assert answer.status_code == 204, answer.text

    after, middle, before = read_service(server, service)
    assert [e["message"] for e in (before, middle, after)] == ["before", "caf\ufffd au lait", "after"]
    assert middle["metadata"] == {
        "labels": {"shop": "caf\ufffd"},
        "structured_metadata": {"menu": "caf\ufffd"},
    }
    assert before["metadata"] == after["metadata"] == {"labels": {"shop": "caf\ufffd"}}


def test_content_types_and_encodings_as_loki_takes_them(server: ServerThread, ingest_key: str) -> None:
    service = _service()
    body = push_body([(f'{{app="{service}"}}', [(time.time_ns(), "snappy said twice")])])
    # Some clients say Content-Encoding: snappy of the protobuf body; Loki takes protobuf without a type.
    assert _post(server, body, ingest_key, **{"Content-Encoding": "snappy"}).status_code == 204
    untyped = httpx.post(
        f"{server.url}{PUSH}",
        content=push_body([(f'{{app="{service}"}}', [(time.time_ns(), "no content type")])]),
        headers={"Authorization": f"Bearer {ingest_key}"},
        timeout=10,
    )
    assert untyped.status_code == 204, untyped.text
    assert sorted(e["message"] for e in read_service(server, service)) == [
        "no content type",
        "snappy said twice",
    ]
    deflated = _post(
        server, b"{}", ingest_key, **{"Content-Type": "application/json", "Content-Encoding": "br"}
    )
    assert deflated.status_code == 415


def test_a_retried_batch_stores_each_entry_once(server: ServerThread, ingest_key: str) -> None:
    service = _service()
    ns = time.time_ns()
    entries = [(ns, "same line"), (ns, "same line"), (ns + 1, "same line"), (ns, "other line")]
    body = push_body([(f'{{app="{service}"}}', entries)])
    for _ in range(3):
        assert _post(server, body, ingest_key).status_code == 204
    # Identical entries of a stream (same nanosecond, same line) are one, as in Loki; a retry adds none.
    messages = sorted(e["message"] for e in read_service(server, service))
    assert messages == ["other line", "same line", "same line"]
    # The same entries re-batched differently (as an agent may after a restart) are still the same entries.
    resent = push_body([(f'{{app="{service}"}}', entries[2:]), (f'{{app="{service}"}}', entries[:1])])
    assert _post(server, resent, ingest_key).status_code == 204
    assert len(read_service(server, service)) == 3


def test_credentials_and_scopes(server: ServerThread, ingest_key: str) -> None:
    body = push_body([('{app="checkout-api"}', [(time.time_ns(), "mine")])])
    unauthenticated = _post(server, body, None)
    assert unauthenticated.status_code == 401
    assert "Basic" in unauthenticated.json()["detail"]
    wrong = httpx.post(f"{server.url}{PUSH}", content=body, headers=PROTOBUF, auth=("x", "wrong"), timeout=10)
    assert wrong.status_code == 401
    reader = make_key(server.settings, Role.READ).api_key
    assert _post(server, body, reader).status_code == 403

    scoped = make_key(server.settings, Role.INGEST, services=("checkout*",))
    assert _post(server, body, scoped.api_key).status_code == 204
    both = push_body(
        [('{app="checkout-api"}', [(time.time_ns(), "mine")]), ('{app="payments"}', [(time.time_ns(), "x")])]
    )
    refused = httpx.post(
        f"{server.url}{PUSH}", content=both, headers=PROTOBUF, auth=("shipper", scoped.api_key), timeout=10
    )
    assert refused.status_code == 403
    assert "payments" in refused.json()["detail"]
    assert read_service(server, "payments") == []
    assert [e["message"] for e in read_service(server, "checkout-api")] == ["mine"]


def test_malformed_pushes_are_400_naming_the_problem(server: ServerThread, ingest_key: str) -> None:
    def refused(body: bytes, **headers: str) -> str:
        answer = _post(server, body, ingest_key, **headers)
        assert answer.status_code == 400, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        detail: str = answer.json()["detail"]
        return detail

    as_json = {"Content-Type": "application/json"}
    assert "is not a Loki push (JSON)" in refused(b'{"streams": [', **as_json)
    assert "Expected `array`" in refused(b'{"streams": {"app": "x"}}', **as_json)
    assert "streams[0].values[0][0]: must be a string of epoch nanoseconds" in refused(
        b'{"streams": [{"stream": {"app": "x"}, "values": [["yesterday", "line"]]}]}', **as_json
    )
    assert "is not snappy-compressed data" in refused(b"\x0a\x05hello")
    assert "is not snappy-compressed data" in refused(b"")
    assert "is not a Loki PushRequest" in refused(snappy(b"\x0a\xff\xff\xff"))
    bad_nanos = push_request([('{app="x"}', [(time.time_ns(), "line")])])
    bad_nanos.streams[0].entries[0].timestamp.nanos = 2_000_000_000
    assert "streams[0].entries[0].timestamp.nanos: must be 0 to 999999999" in refused(
        snappy(bad_nanos.SerializeToString())
    )
    assert "is not valid gzip data" in refused(b"not gzip", **as_json, **{"Content-Encoding": "gzip"})
    unsupported = _post(server, b"{}", ingest_key, **{"Content-Type": "text/plain"})
    assert unsupported.status_code == 415


def test_refused_entries_are_named_and_the_others_stored(server: ServerThread, ingest_key: str) -> None:
    service = _service()
    ns = time.time_ns()
    body = push_body(
        [
            ('{app="x", app="y"}', [(ns, "duplicate label")]),
            (f'{{app="{service}"}}', [(ns, "kept"), (ns + 1, "   "), (ns + 7_200_000_000_000 * 2, "future")]),
            ("{}", [(ns, "no labels")]),
            ('{app="not a service!"}', [(ns, "bad service")]),
        ]
    )
    for _ in range(2):  # a retry is refused alike and stores nothing more
        answer = _post(server, body, ingest_key)
        assert answer.status_code == 400, answer.text
        problem = answer.json()
        assert problem["code"] == "entries_refused"
        assert problem["detail"].startswith("5 of 6 entries refused, the others stored: ")
        assert [str_error(e) for e in problem["errors"]] == [
            'streams[0]: labels: \'{app="x", app="y"}\' label app appears twice (its 1 entries refused)',
            "streams[2]: labels: a stream needs at least one label (its 1 entries refused)",
            "streams[1].entries[1]: message must not be blank",
            "streams[1].entries[2]: timestamp must not be more than 2 hours in the future",
            "streams[3].entries[0]: service_name must be 1-128 characters of A-Z a-z 0-9 . _ : / -",
        ]
    assert [e["message"] for e in read_service(server, service)] == ["kept"]


def str_error(error: dict[str, str]) -> str:
    return f"{error['field']}: {error['message']}"


def test_size_and_decompression_limits(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "data", max_batch_entries=3, max_body_bytes=64 * 1024, max_decompressed_bytes=256 * 1024
    )
    running = ServerThread(settings).start()
    try:
        key = make_key(running.settings, Role.INGEST).api_key
        ns = time.time_ns()
        too_many = push_body([('{app="a"}', [(ns + i, f"line {i}") for i in range(4)])])
        answer = _post(running, too_many, key)
        assert answer.status_code == 413
        assert "at most 3 entries" in answer.json()["detail"]
        assert _post(running, b"\x00" * (64 * 1024 + 1), key).status_code == 413
        # A snappy bomb: the header announces 1 GiB; refused from the header, before anything is inflated.
        bomb = bytes([0x80, 0x80, 0x80, 0x80, 0x04]) + b"\x00" * 100
        answer = _post(running, bomb, key)
        assert answer.status_code == 413
        assert "inflates to 1073741824 bytes" in answer.json()["detail"]
        # A real one: 1 MB of one repeated byte snappy-compresses to 48 KB.
        answer = _post(running, snappy(b"\x0a" * 1_000_000), key)
        assert answer.status_code == 413, answer.text
        zipped = gzip.compress(b'{"streams": [' + b" " * 1_000_000 + b"]}")
        answer = _post(
            running, zipped, key, **{"Content-Type": "application/json", "Content-Encoding": "gzip"}
        )
        assert answer.status_code == 413
        # 120 KB of empty entries: 60,000 entries, counted on the wire before any is parsed.
        labels = b'{app="a"}'
        stream = b"\x0a" + _varint(len(labels)) + labels + b"\x12\x00" * 60_000
        answer = _post(running, snappy(b"\x0a" + _varint(len(stream)) + stream), key)
        assert answer.status_code == 413, answer.text
        assert "at most 3 entries" in answer.json()["detail"]
        assert _post(running, push_body([('{app="a"}', [(ns, "fits")])]), key).status_code == 204
    finally:
        running.stop()


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes([*out, value])


def test_the_route_is_in_the_openapi_document(client: httpx.Client) -> None:
    operation = client.get("/openapi.json").json()["paths"][PUSH]["post"]
    assert set(operation["requestBody"]["content"]) == {"application/x-protobuf", "application/json"}
    assert {"204", "400", "401", "403", "413", "415"} <= set(operation["responses"])


def test_a_scoped_credential_reads_back_only_its_own(server: ServerThread) -> None:
    writer = make_key(server.settings, Role.INGEST)
    service = _service()
    assert (
        _post(
            server, push_body([(f'{{app="{service}"}}', [(time.time_ns(), "x")])]), writer.api_key
        ).status_code
        == 204
    )
    reader = make_key(server.settings, Role.READ, services=(service,))
    page = httpx.get(f"{server.url}/logs", headers=bearer(reader), timeout=10).json()
    assert [e["service_name"] for e in page["logs"]] == [service]


def test_a_flooding_agent_is_answered_429_with_retry_after(tmp_path: Path) -> None:
    """What Promtail and Alloy retry: the per-credential rate limit holds on this route as on every one."""
    running = ServerThread(
        make_settings(tmp_path / "data", rate_limit_per_second=2, rate_limit_burst=2)
    ).start()
    try:
        key = make_key(running.settings, Role.INGEST).api_key
        answers = [
            _post(running, push_body([('{app="a"}', [(time.time_ns(), f"line {n}")])]), key) for n in range(8)
        ]
        statuses = [answer.status_code for answer in answers]
        assert set(statuses) == {204, 429}, statuses
        limited = next(answer for answer in answers if answer.status_code == 429)
        assert int(limited.headers["retry-after"]) >= 1
    finally:
        running.stop()
