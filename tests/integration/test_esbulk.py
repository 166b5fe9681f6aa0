"""Elasticsearch's bulk API at POST /_bulk and /{index}/_bulk, with bodies as Filebeat and Fluent Bit's `es`
output send them (tests/fixtures/esbulk), read back over GET /logs; the handshake routes the agents call
before they send; the same rules as POST /logs, item by item."""

from __future__ import annotations

import asyncio
import gzip
import uuid
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from logsvc.auth.policy import Principal, Role
from logsvc.domain.entries import Limits
from logsvc.domain.esbulk import bulk_items, entry_document
from logsvc.errors import Forbidden, PayloadTooLarge, ValidationFailed
from logsvc.service import LogService
from logsvc.storage.open import open_store
from tests.conftest import ServerThread, make_key, make_settings, read_service

FIXTURES = Path(__file__).parent.parent / "fixtures" / "esbulk"
NDJSON = {"Content-Type": "application/x-ndjson"}


@pytest.fixture
def ingest_key(server: ServerThread) -> str:
    return make_key(server.settings, Role.INGEST).api_key


def _fixture(name: str, service: str) -> bytes:
    """A fixture body with its index (and service) renamed, so that each test reads only its own entries."""
    return (FIXTURES / name).read_bytes().replace(b'"checkout-api"', f'"{service}"'.encode())


def _service(prefix: str = "es") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _bulk(lines: list[Any]) -> bytes:
    return b"".join(msgspec.json.encode(line) + b"\n" for line in lines)


def _post(
    server: ServerThread, body: bytes, key: str, path: str = "/_bulk", **headers: str
) -> httpx.Response:
    sent = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"} | headers
    return httpx.post(f"{server.url}{path}", content=body, headers=sent, timeout=10)


def test_a_filebeat_bulk_is_stored_with_its_ecs_fields(server: ServerThread, ingest_key: str) -> None:
    service = _service()
    # Filebeat sends its bulks gzipped (compression_level 1), as application/json, with a filter_path.
    body = gzip.compress(_fixture("filebeat-8.ndjson", service))
    answer = _post(
        server,
        body,
        ingest_key,
        path="/_bulk?filter_path=errors,items.*.error,items.*.status",
        **{"Content-Encoding": "gzip"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-elastic-product"] == "Elasticsearch"
    result = answer.json()
    assert result["errors"] is False
    assert isinstance(result["took"], int)
    assert [item["create"]["status"] for item in result["items"]] == [201, 201, 201]
    assert all(item["create"]["_index"] == service for item in result["items"])
    ids = {item["create"]["_id"] for item in result["items"]}

    second, first = read_service(server, service)
    assert {first["log_id"], second["log_id"]} <= ids
    assert (first["level"], first["message"], first["timestamp"]) == (
        "INFO",
        "order 42 paid",
        "2024-05-01T12:00:00.123000Z",
    )
    assert first["metadata"]["log"] == {"offset": 0, "file": {"path": "/var/log/checkout/app.log"}}
    assert first["metadata"]["host"] == {"name": "web-3"}
    assert first["metadata"]["agent"]["type"] == "filebeat"
    assert "@timestamp" not in first["metadata"]
    assert "message" not in first["metadata"]
    assert (second["level"], second["message"]) == ("ERROR", "card declined")
    assert second["metadata"]["error.code"] == "card_declined"
    assert "log.level" not in second["metadata"]

    # service.name names the service over the index; a level that names none of ours stays in metadata.
    (payments,) = read_service(server, "payments")
    assert (payments["level"], payments["message"]) == ("INFO", "settlement batch closed")
    assert payments["metadata"]["log"]["level"] == "notice"
    assert "service" not in payments["metadata"]


def test_a_fluent_bit_bulk_over_basic_auth_and_its_retry(server: ServerThread, ingest_key: str) -> None:
    """Fluent Bit's `es` output sends NDJSON with HTTP_User/HTTP_Passwd (Basic: the key is the password), and
    retries a whole bulk when an answer is lost: the `_id`s make the retry store nothing twice."""
    service = _service("fb")
    body = _fixture("fluent-bit-es.ndjson", service)
    for _ in range(2):
        answer = httpx.post(
            f"{server.url}/_bulk", content=body, headers=NDJSON, auth=("elastic", ingest_key), timeout=10
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["errors"] is False
        assert [i["create"]["_id"] for i in answer.json()["items"]] == [
            "9c0a6b3e-1f2d-4c5b-8e7a-6d5c4b3a2f10",
            "3e2f1d0c-9b8a-4765-a4b3-c2d1e0f9a8b7",
        ]
    second, first = read_service(server, service)
    assert (first["log_id"], first["message"], first["level"]) == (
        "9c0a6b3e-1f2d-4c5b-8e7a-6d5c4b3a2f10",
        "GET /health 200 1ms",
        "INFO",
    )
    assert first["metadata"] == {"stream": "stdout", "time": "2024-05-01T12:00:03.000000000Z"}
    assert (second["message"], second["level"], second["timestamp"]) == (
        "POST /orders 500 12ms",
        "WARN",
        "2024-05-01T12:00:04.000000Z",
    )


def test_ids_that_are_not_uuids_make_a_retry_store_nothing_twice(
    server: ServerThread, ingest_key: str
) -> None:
    """Filebeat's fingerprint processor and Logstash's document_id give ids of their own making."""
    service = _service()
    body = _bulk(
        [
            {"index": {"_id": "f0e4c2f76c58916ec258f246851bea091d14d4247a2fc3e18694461b1816e13b"}},
            {"@timestamp": "2024-05-01T12:00:00Z", "message": "one"},
            {"create": {"_id": "order-42"}},
            {"@timestamp": "2024-05-01T12:00:01Z", "message": "two"},
        ]
    )
    answers = [_post(server, body, ingest_key, path=f"/{service}/_bulk") for _ in range(2)]
    assert answers[0].json() | {"took": 0} == answers[1].json() | {"took": 0}
    assert [i["index" if n == 0 else "create"]["_id"] for n, i in enumerate(answers[0].json()["items"])] == [
        "f0e4c2f76c58916ec258f246851bea091d14d4247a2fc3e18694461b1816e13b",
        "order-42",
    ]
    stored = read_service(server, service)
    assert [e["message"] for e in stored] == ["two", "one"]
    # The same _id in another index is another entry.
    other = _service()
    assert _post(server, body, ingest_key, path=f"/{other}/_bulk").json()["errors"] is False
    assert {e["log_id"] for e in read_service(server, other)}.isdisjoint({e["log_id"] for e in stored})


def test_invalid_items_are_refused_one_by_one_and_the_others_stored(
    server: ServerThread, ingest_key: str
) -> None:
    service = _service()
    body = b"".join(
        [
            _bulk([{"create": {}}, {"message": "kept", "log.level": "debug"}]),
            _bulk([{"create": {}}, {"message": "  "}]),
            _bulk([{"delete": {"_id": "x"}}]),
            _bulk([{"update": {"_id": "x"}}, {"doc": {"message": "changed"}}]),
            _bulk([{"index": {}}]) + b"{not json\n",
            _bulk([{"index": {}}, ["an", "array"]]),
            _bulk([{"create": {}}, {"message": "bad service", "service.name": "no spaces allowed"}]),
            _bulk([{"create": {}}, {"message": "kept too", "@timestamp": 1714564800000}]),
        ]
    )
    answer = _post(server, body, ingest_key, path=f"/{service}/_bulk")
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["errors"] is True
    statuses = [(action, item["status"]) for entry in result["items"] for action, item in entry.items()]
    assert statuses == [
        ("create", 201),
        ("create", 400),
        ("delete", 400),
        ("update", 400),
        ("index", 400),
        ("index", 400),
        ("create", 400),
        ("create", 201),
    ]
    errors = [next(iter(entry.values())).get("error") for entry in result["items"]]
    assert errors[1] == {"type": "mapper_parsing_exception", "reason": "message must not be blank"}
    assert errors[2]["type"] == "illegal_argument_exception"
    assert "not supported" in errors[3]["reason"]
    assert "parse" in errors[4]["reason"]
    assert "service_name" in errors[6]["reason"]
    stored = read_service(server, service)
    assert [(e["message"], e["level"]) for e in stored] == [("kept", "DEBUG"), ("kept too", "INFO")]
    assert stored[1]["timestamp"] == "2024-05-01T12:00:00.000000Z"


def test_times_in_the_forms_elasticsearch_accepts(server: ServerThread, ingest_key: str) -> None:
    """Elasticsearch's default date format (strict_date_optional_time||epoch_millis): no zone is UTC, an
    offset may have no colon, the time or its parts may be left out, epoch milliseconds may be digits."""
    service = _service()
    sent = {
        "no zone": "2026-11-30T10:00:00.000",
        "offset without colon": "2026-11-30T10:00:00.000+0000",
        "offset of hours": "2026-11-30T12:30:00+0230",
        "date only": "2026-11-30",
        "minutes only": "2026-11-30T10:07",
        "comma fraction": "2026-11-30T10:00:00,250Z",
        "millis as digits": "1764496800123",
        "rfc 3339": "2026-11-30T10:00:00.5Z",
    }
    body = b"".join(
        _bulk([{"create": {}}, {"@timestamp": time, "message": message}]) for message, time in sent.items()
    ) + _bulk([{"create": {}}, {"@timestamp": "2026-11-30T25:00:00", "message": "no such hour"}])
    answer = _post(server, body, ingest_key, path=f"/{service}/_bulk")
    assert answer.status_code == 200, answer.text
    items = [item["create"] for item in answer.json()["items"]]
    assert [item["status"] for item in items] == [201] * len(sent) + [400]
    # The refused item had no _id and was given none: null, as Elasticsearch answers such an item.
    assert items[-1]["_id"] is None
    assert items[-1]["error"]["type"] == "mapper_parsing_exception"
    stored = {e["message"]: e["timestamp"] for e in read_service(server, service)}
    assert stored == {
        "no zone": "2026-11-30T10:00:00.000000Z",
        "offset without colon": "2026-11-30T10:00:00.000000Z",
        "offset of hours": "2026-11-30T10:00:00.000000Z",
        "date only": "2026-11-30T00:00:00.000000Z",
        "minutes only": "2026-11-30T10:07:00.000000Z",
        "comma fraction": "2026-11-30T10:00:00.250000Z",
        "millis as digits": "2025-11-30T10:00:00.123000Z",
        "rfc 3339": "2026-11-30T10:00:00.500000Z",
    }


def test_refusals_of_the_whole_request(server: ServerThread, ingest_key: str) -> None:
    service = _service()
    body = _bulk([{"create": {"_index": service}}, {"message": "m"}])
    unauthenticated = httpx.post(f"{server.url}/_bulk", content=body, headers=NDJSON, timeout=10)
    assert unauthenticated.status_code == 401
    assert httpx.get(f"{server.url}/", timeout=10).status_code == 401
    reader = make_key(server.settings, Role.READ).api_key
    assert _post(server, body, reader).status_code == 403

    # A key scoped to some services is refused the whole request for an item of another, as on POST /logs.
    scoped = make_key(server.settings, Role.INGEST, services=("checkout*",)).api_key
    mine = _bulk([{"create": {"_index": "checkout-es"}}, {"message": "mine"}])
    assert _post(server, mine, scoped).status_code == 200
    mixed = mine + _bulk([{"create": {}}, {"message": "not mine", "service": {"name": service}}])
    refused = _post(server, mixed, scoped)
    assert refused.status_code == 403, refused.text
    assert service in refused.json()["detail"]
    assert read_service(server, service) == []
    assert len(read_service(server, "checkout-es")) == 1

    for malformed in (
        b"",
        b"{not json}\n",
        _bulk([{"create": {}, "index": {}}, {"message": "m"}]),
        _bulk([{"upsert": {}}, {"message": "m"}]),
        _bulk([{"create": {}}]),
        _bulk([{"create": {"_id": 7}}, {"message": "m"}]),
    ):
        answer = _post(server, malformed, ingest_key)
        assert answer.status_code == 400, (malformed, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    assert _post(server, body, ingest_key, **{"Content-Type": "text/csv"}).status_code == 415


def test_more_items_than_a_batch_may_hold_is_a_413(tmp_path: Path) -> None:
    running = ServerThread(make_settings(tmp_path / "data", max_batch_entries=2)).start()
    try:
        key = make_key(running.settings, Role.INGEST).api_key
        three = _bulk([{"create": {"_index": "limits"}}, {"message": "m"}] * 3)
        refused = _post(running, three, key)
        assert refused.status_code == 413, refused.text
        assert "at most 2 items" in refused.json()["detail"]
        # Deletes are one line each: counted as items once the lines are read.
        assert _post(running, _bulk([{"delete": {"_id": "x"}}] * 3), key).status_code == 413
        two = _bulk([{"create": {"_index": "limits"}}, {"message": "m"}] * 2)
        assert _post(running, two, key).json()["errors"] is False
    finally:
        running.stop()


def test_the_handshake_routes_answer_as_elasticsearch_does(server: ServerThread, ingest_key: str) -> None:
    auth = {"Authorization": f"Bearer {ingest_key}"}
    version = httpx.get(f"{server.url}/", headers=auth, timeout=10)
    assert version.status_code == 200
    assert version.headers["x-elastic-product"] == "Elasticsearch"
    document = version.json()
    assert document["name"] == "logsvc"
    assert document["version"]["number"].startswith("8.")
    assert document["version"]["build_flavor"] == "default"
    assert document["tagline"] == "You Know, for Search"
    # Logstash and Vector probe with HEAD / first.
    assert httpx.head(f"{server.url}/", headers=auth, timeout=10).status_code == 200
    license_answer = httpx.get(f"{server.url}/_license", params={"human": "false"}, headers=auth, timeout=10)
    assert license_answer.json()["license"] | {"uid": ""} == {
        "uid": "",
        "type": "basic",
        "mode": "basic",
        "status": "active",
    }
    health = httpx.get(f"{server.url}/_cluster/health", headers=auth, timeout=10)
    assert health.json()["status"] == "green"


def test_the_mapping_of_ecs_fields() -> None:
    doc = entry_document(
        {
            "@timestamp": "2024-05-01T12:00:00Z",
            "timestamp": "ignored: @timestamp comes first",
            "message": "m",
            "log": {"level": "WARNING"},
            "service.name": "api",
            "labels": {"env": "prod"},
        },
        "some-index",
        None,
    )
    assert doc == {
        "timestamp": "2024-05-01T12:00:00Z",
        "message": "m",
        "level": "WARNING",
        "service_name": "api",
        "metadata": {"timestamp": "ignored: @timestamp comes first", "labels": {"env": "prod"}},
    }
    # Vector's own timestamp field; an index that is no service name gives the default service.
    doc = entry_document({"timestamp": "2024-05-01T12:00:00Z", "message": "m"}, "logs 2024", None)
    assert doc == {"timestamp": "2024-05-01T12:00:00Z", "message": "m"}
    # An _id that is a UUID is the entry's id; any other is made one, the same each time, per index.
    assert entry_document({}, "a", "9C0A6B3E-1F2D-4C5B-8E7A-6D5C4B3A2F10")["log_id"] == (
        "9C0A6B3E-1F2D-4C5B-8E7A-6D5C4B3A2F10"
    )
    made = entry_document({}, "a", "order-42")["log_id"]
    assert (
        made == entry_document({}, "a", "order-42")["log_id"] != entry_document({}, "b", "order-42")["log_id"]
    )
    assert uuid.UUID(made).version == 5


def test_the_service_rules_directly(tmp_path: Path) -> None:
    """The use case, without HTTP: items refused one by one, the scope rule and the limits whole."""
    store = open_store(f"sqlite:///{tmp_path}/direct.db")
    service = LogService(store, Limits(max_batch_entries=2))
    scoped = Principal(id="w", roles=frozenset({Role.INGEST}), services=("a*",))
    headers = {"content-type": "application/x-ndjson"}

    async def run() -> None:
        try:
            ok = await service.ingest_bulk(
                _bulk([{"create": {}}, {"message": "m"}, {"delete": {}}]),
                headers,
                index="ab",
                principal=scoped,
            )
            assert [(o.log_id != "", o.error_type) for o in ok.outcomes] == [
                (True, ""),
                (False, "illegal_argument_exception"),
            ]
            with pytest.raises(Forbidden):
                await service.ingest_bulk(
                    _bulk([{"create": {}}, {"message": "m"}]), headers, index="b", principal=scoped
                )
            with pytest.raises(PayloadTooLarge):
                await service.ingest_bulk(
                    _bulk([{"create": {}}, {"message": "m"}] * 3), headers, index="ab", principal=scoped
                )
            with pytest.raises(ValidationFailed, match="bulk line 1"):
                await service.ingest_bulk(b"[]\n", headers, index="ab", principal=scoped)
        finally:
            await store.close()

    asyncio.run(run())


def test_lines_are_counted_before_any_is_decoded() -> None:
    """Five lines for a limit of two items is refused without decoding one (the last is not even JSON);
    a body of more JSON values than POST /logs admits is refused as there."""
    with pytest.raises(PayloadTooLarge, match="at most 2 items"):
        bulk_items(b"{}\n" * 4 + b"{", path_index=None, limits=Limits(max_batch_entries=2))
    tiny = _bulk([{"create": {}}, {"message": "m", "v": [0] * 40_000}])
    with pytest.raises(PayloadTooLarge, match="JSON values"):
        bulk_items(tiny, path_index=None, limits=Limits(max_batch_entries=2))
