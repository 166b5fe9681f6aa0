"""Any JSON, mapped: POST /logs with message_field, time_field, service_field, level_field takes the bodies
of Fluent Bit's http output, Docker's json-file and Kubernetes logs, keeps what is not mapped as metadata,
and is read back over GET /logs. Without a mapping the body is as strict as ever."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from logsvc.auth.policy import Principal, Role
from logsvc.domain.entries import Limits
from logsvc.domain.mapping import parse_mapping
from logsvc.errors import Forbidden, ValidationFailed
from logsvc.service import LogService
from logsvc.storage.open import open_store
from tests.conftest import ServerThread, bearer, make_key, read_service

KUBERNETES = {"message_field": "log", "time_field": "time", "service_field": "kubernetes.labels.app"}


def _service() -> str:
    return f"mapped-{uuid.uuid4().hex[:8]}"


def _post(server: ServerThread, body: Any, params: dict[str, str], **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} | headers | bearer(server.admin)
    return httpx.post(f"{server.url}/logs", content=content, params=params, headers=headers, timeout=10)


def _errors(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 400, response.text
    errors: list[dict[str, Any]] = response.json()["errors"]
    return errors


def test_a_kubernetes_log_is_mapped_and_read_back(server: ServerThread) -> None:
    service = _service()
    moment = datetime.now(UTC).replace(microsecond=123456)
    doc = {
        "log": "payment declined: card expired",
        "stream": "stderr",
        # Docker writes nanoseconds; the entry keeps microseconds.
        "time": moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "789Z",
        "kubernetes": {
            "labels": {"app": service, "tier": "backend"},
            "pod_name": "checkout-7d9f-x2",
            "namespace_name": "shop",
        },
    }
    answer = _post(server, doc, KUBERNETES)
    assert answer.status_code == 201, answer.text
    [entry] = read_service(server, service)
    assert entry["log_id"] == answer.json()["log_id"]
    assert entry["message"] == "payment declined: card expired"
    assert entry["timestamp"] == moment.strftime("%Y-%m-%dT%H:%M:%S.123456Z")
    assert (entry["service_name"], entry["level"]) == (service, "INFO")
    # What was mapped is gone from the metadata; the rest is kept as it was sent.
    assert entry["metadata"] == {
        "stream": "stderr",
        "kubernetes": {
            "labels": {"tier": "backend"},
            "pod_name": "checkout-7d9f-x2",
            "namespace_name": "shop",
        },
    }


def test_fluent_bit_http_output_json_format(server: ServerThread) -> None:
    """Fluent Bit's `http` output with `Format json` sends an array of records, the time under `date` as
    epoch seconds (json_date_format double)."""
    service = _service()
    now = time.time()
    records = [
        {"date": now - 1.5, "log": "GET /cart 200", "level": {"name": "info"}, "kubernetes": {"labels": {}}},
        {"date": now, "log": "disk 91% full", "level": {"name": "warn"}, "host": "node-3"},
    ]
    params = {"message_field": "log", "time_field": "date", "level_field": "level.name"}
    answer = _post(server, records, params | {"service_field": "svc"})
    # No `svc` in the records: each takes the default service, which the admin may write.
    assert answer.status_code == 201, answer.text
    for record in records:
        record["svc"] = service
    answer = _post(server, records, params | {"service_field": "svc"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["count"] == 2
    logs = read_service(server, service)
    assert [(e["level"], e["message"]) for e in logs] == [
        ("WARN", "disk 91% full"),
        ("INFO", "GET /cart 200"),
    ]
    assert logs[0]["metadata"] == {"host": "node-3"}
    # An object emptied by the mapping is dropped; one that was empty already is kept.
    assert logs[1]["metadata"] == {"kubernetes": {"labels": {}}}
    assert abs(datetime.fromisoformat(logs[0]["timestamp"]).timestamp() - now) < 1e-5


def test_ndjson_and_logs_objects_and_other_types(server: ServerThread) -> None:
    service = _service()
    lines = [
        {"msg": {"event": "login", "ok": True}, "app": service, "log_id": str(uuid.uuid4())},
        {"msg": 42, "app": service, "logs": [1, 2], "metadata": {"a": 1}, "log_id": str(uuid.uuid4())},
    ]
    body = b"\n".join(json.dumps(line).encode() for line in lines)
    params = {"message_field": "msg", "service_field": "app"}
    answer = _post(server, body, params, **{"Content-Type": "application/x-ndjson"})
    assert answer.status_code == 201, answer.text
    # A top-level log_id keeps its meaning: the retry stores nothing twice.
    assert answer.json()["log_ids"][0] == lines[0]["log_id"]
    assert _post(server, body, params, **{"Content-Type": "application/x-ndjson"}).status_code == 201
    logs = read_service(server, service)
    assert sorted(e["message"] for e in logs) == ["42", '{"event":"login","ok":true}']
    # With a mapping an object with `logs` is one document, and `metadata` is a field like any other.
    assert {"logs": [1, 2], "metadata": {"a": 1}} in [e["metadata"] for e in logs]
    single = _post(server, {"logs": [{"msg": "x"}], "msg": "one", "app": service}, params)
    assert single.status_code == 201, single.text
    assert "log_id" in single.json()


def test_missing_and_wrong_fields_are_named_by_the_documents_names(server: ServerThread) -> None:
    params = {"message_field": "event.text", "level_field": "sev", "time_field": "at"}
    batch = [{"event": {"text": "ok"}}, {"event": {}}, {"event": {"text": "x"}, "sev": 3, "at": "yesterday"}]
    errors = _errors(_post(server, batch, params))
    assert [(e["index"], e["field"]) for e in errors] == [(1, "event.text"), (2, "sev"), (2, "at")]
    assert errors[0]["message"] == "is required"
    # Leftovers past the metadata limits refuse the document, naming them.
    deep: dict[str, Any] = {"event": {"text": "deep"}}
    node = deep
    for _ in range(8):
        node["d"] = {}
        node = node["d"]
    [error] = _errors(_post(server, [deep], params))
    assert (error["index"], error["field"]) == (0, "the fields left for metadata")
    assert "nested" in error["message"]


def test_query_parameters_and_strict_mode(server: ServerThread) -> None:
    service = _service()
    errors = _errors(_post(server, {"message": "m"}, {"source": "x", "message_field": "a..b"}))
    assert {e["field"] for e in errors} == {"source", "message_field"}
    assert "unknown parameter" in next(e["message"] for e in errors if e["field"] == "source")
    # Without a mapping, unknown fields are refused as before and {"logs": [...]} is a batch.
    [error] = _errors(_post(server, {"message": "m", "stream": "stderr"}, {}))
    assert error["field"] == "stream"
    assert "unknown field" in error["message"]
    answer = _post(server, {"logs": [{"message": "a", "service_name": service}]}, {})
    assert answer.status_code == 201, answer.text
    assert answer.json()["count"] == 1


def test_a_scoped_key_may_not_write_another_service_through_the_mapping(server: ServerThread) -> None:
    key = make_key(server.settings, Role.INGEST, services=("checkout*",)).api_key
    docs = [{"log": "mine", "app": "checkout-api"}, {"log": "theirs", "app": "payments"}]
    answer = httpx.post(
        f"{server.url}/logs",
        params={"message_field": "log", "service_field": "app"},
        json=docs,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert answer.status_code == 403, answer.text
    assert "payments" in answer.json()["detail"]
    assert read_service(server, "checkout-api") == []


def test_the_rules_directly(tmp_path: Path) -> None:
    """The mapping and the use case, without HTTP."""
    mapping = parse_mapping([("service_field", "k.app")])
    assert mapping is not None
    assert parse_mapping([]) is None
    doc = {"message": "m", "k": {"app": "a1", "b": 1}, "timestamp": 1, "level": "error", "log_type": "t"}
    assert mapping.documents([doc, 7]) == [
        {
            "message": "m",
            "timestamp": 1,
            "service_name": "a1",
            "level": "error",
            "metadata": {"k": {"b": 1}, "log_type": "t"},
        },
        7,
    ]
    assert doc["k"] == {"app": "a1", "b": 1}  # the document is left whole
    with pytest.raises(ValidationFailed, match="given more than once"):
        parse_mapping([("level_field", "a"), ("level_field", "b")])

    store = open_store(f"sqlite:///{tmp_path}/direct.db")
    service = LogService(store, Limits())
    scoped = Principal(id="w", roles=frozenset({Role.INGEST}), services=("a*",))
    headers = {"content-type": "application/json"}

    async def run() -> None:
        try:
            body = json.dumps({"text": "t", "svc": "b"}).encode()
            params = [("message_field", "text"), ("service_field", "svc")]
            with pytest.raises(Forbidden):
                await service.ingest(body, headers, principal=scoped, params=params)
            with pytest.raises(ValidationFailed, match="unknown field"):
                await service.ingest(body, headers, principal=scoped)
        finally:
            await store.close()

    asyncio.run(run())


def test_a_document_nested_past_python_s_recursion_is_a_400_not_a_500(server: ServerThread) -> None:
    """Only the objects on the mapped paths are copied: a deep document reaches validation, which refuses
    metadata nested past its depth, instead of failing the mapping."""
    body = b'{"log": "deep", "nested": ' + b'{"a": ' * 900 + b"{}" + b"}" * 900 + b"}"
    response = _post(server, body, {"message_field": "log"})
    assert response.status_code == 400, response.text
    assert "metadata" in response.text
