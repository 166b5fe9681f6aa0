"""The HTTP API against a real uvicorn server on 127.0.0.1 with a real SQLite file."""

from __future__ import annotations

import gzip
import json
import uuid
from typing import Any

import httpx
import pytest

from logsvc.domain.cursors import encode_cursor
from logsvc.domain.queries import MAX_PAGE_BYTES
from tests.conftest import ServerThread, bearer, make_settings

JSON = {"Content-Type": "application/json"}


def post(client: httpx.Client, body: Any, **headers: str) -> httpx.Response:
    return client.post("/logs", content=json.dumps(body), headers={**JSON, **headers})


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["code"] == code
    assert {"type", "title", "detail"} <= problem.keys()
    assert "Traceback" not in response.text
    return problem


class TestOlderClientContract:
    def test_post_then_recent(self, client: httpx.Client) -> None:
        created = []
        for i in range(3):
            response = post(
                client,
                {
                    "service_name": "test-service",
                    "log_type": "application",
                    "level": "INFO",
                    "message": f"message {i}",
                    "metadata": {"user_id": 12345, "ratio": 0.25, "big": 2**70, "nested": {"ok": True}},
                    "timestamp": f"2025-01-01T00:00:0{i}Z",
                },
            )
            assert response.status_code == 201
            body = response.json()
            assert body["message"] == "Log entry created successfully"
            assert uuid.UUID(body["log_id"])
            assert body["timestamp"] == f"2025-01-01T00:00:0{i}.000000Z"
            assert response.headers["location"] == f"/logs/{body['log_id']}"
            created.append(body["log_id"])
        post(client, {"service_name": "other", "message": "not mine"})

        response = client.get("/logs/recent", params={"service_name": "test-service", "limit": 10})
        assert response.status_code == 200
        page = response.json()
        assert page["count"] == 3
        assert [e["log_id"] for e in page["logs"]] == created[::-1]
        assert page["next_cursor"] is None
        first = page["logs"][0]
        assert first["metadata"] == {"user_id": 12345, "ratio": 0.25, "big": 2**70, "nested": {"ok": True}}
        assert isinstance(first["metadata"]["user_id"], int)
        assert first["level"] == "INFO"
        assert first["service_name"] == "test-service"

    def test_severity_shape(self, client: httpx.Client) -> None:
        for severity in ("info", "warning", "error"):
            assert post(client, {"severity": severity, "message": f"s {severity}"}).status_code == 201
        levels = [e["level"] for e in client.get("/logs").json()["logs"]]
        assert sorted(levels) == ["ERROR", "INFO", "WARN"]


class TestIngestShapes:
    def test_array_wrapper_and_ndjson(self, client: httpx.Client) -> None:
        response = post(client, [{"message": "a"}, {"message": "b"}])
        assert response.status_code == 201
        assert response.json()["count"] == 2
        assert len(response.json()["log_ids"]) == 2
        assert post(client, {"logs": [{"message": "c"}]}).json()["count"] == 1
        ndjson = b'{"message": "d"}\n{"message": "e", "level": "error"}\n'
        response = client.post("/logs", content=ndjson, headers={"Content-Type": "application/x-ndjson"})
        assert response.status_code == 201
        assert response.json()["count"] == 2
        assert client.get("/logs/recent").json()["count"] == 5

    def test_gzip(self, client: httpx.Client) -> None:
        body = gzip.compress(json.dumps([{"message": f"zipped {i}"} for i in range(100)]).encode())
        response = client.post("/logs", content=body, headers={**JSON, "Content-Encoding": "gzip"})
        assert response.status_code == 201
        assert response.json()["count"] == 100

    def test_gzip_of_several_members_stores_every_entry(self, client: httpx.Client) -> None:
        parts = [f'{{"message": "member {i}"}}\n'.encode() for i in range(3)]
        body = b"".join(gzip.compress(part) for part in parts)
        headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}
        response = client.post("/logs", content=body, headers=headers)
        assert response.status_code == 201
        assert response.json()["count"] == 3
        stored = {entry["message"] for entry in client.get("/logs/recent").json()["logs"]}
        assert {"member 0", "member 1", "member 2"} <= stored

    def test_batch_is_atomic_and_lists_every_bad_entry(self, client: httpx.Client) -> None:
        response = post(
            client, [{"message": "fine"}, {"message": ""}, {"message": "x", "level": "loud"}, "no"]
        )
        problem = assert_problem(response, 400, "validation_error")
        assert problem["errors"] == [
            {"field": "message", "message": "must not be blank", "index": 1},
            {
                "field": "level",
                "message": "must be one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL",
                "index": 2,
            },
            {"field": "", "message": "must be a JSON object", "index": 3},
        ]
        assert client.get("/logs/recent").json()["count"] == 0

    def test_idempotent_retry_with_client_log_id(self, client: httpx.Client) -> None:
        log_id = str(uuid.uuid4())
        for _ in range(3):
            response = post(client, {"message": "once", "log_id": log_id})
            assert response.status_code == 201
            assert response.json()["log_id"] == log_id
        response = post(client, [{"message": "once", "log_id": log_id}, {"message": "new"}])
        assert response.json()["log_ids"][0] == log_id
        assert [e["message"] for e in client.get("/logs").json()["logs"]].count("once") == 1

    def test_round_trip_is_exact(self, client: httpx.Client) -> None:
        message = 'line 1\nline 2\ttab \u00e9\u4e2d\U0001f600 "quoted" \\ back'
        metadata = {
            "float": 1e-300,
            "neg": -(2**63),
            "huge": 10**25,
            "list": [None, True, "x"],
            "é": {"k": []},
        }
        log_id = post(client, {"message": message, "metadata": metadata}).json()["log_id"]
        entry = client.get(f"/logs/{log_id}").json()
        assert entry["message"] == message
        assert entry["metadata"] == metadata


class TestIngestErrors:
    def test_malformed_json(self, client: httpx.Client) -> None:
        response = client.post("/logs", content=b'{"message": ', headers=JSON)
        problem = assert_problem(response, 400, "validation_error")
        assert problem["errors"][0]["field"] == "body"
        assert problem["detail"].startswith("body: is not valid JSON")

    def test_wrong_types(self, client: httpx.Client) -> None:
        problem = assert_problem(post(client, {"message": ["a"], "metadata": 3}), 400, "validation_error")
        assert {e["field"] for e in problem["errors"]} == {"message", "metadata"}

    def test_media_type_and_encoding(self, client: httpx.Client) -> None:
        response = client.post("/logs", content=b"message=hi", headers={"Content-Type": "text/plain"})
        assert "text/plain" in assert_problem(response, 415, "unsupported_media_type")["detail"]
        response = client.post("/logs", content=b"{}", headers={**JSON, "Content-Encoding": "br"})
        assert_problem(response, 415, "unsupported_media_type")
        response = client.post("/logs", content=b"not gzip", headers={**JSON, "Content-Encoding": "gzip"})
        assert assert_problem(response, 400, "validation_error")["detail"] == "body: is not valid gzip data"

    def test_json_nested_10000_deep(self, client: httpx.Client) -> None:
        response = client.post(
            "/logs", content=b'{"message": "x", "metadata": ' + b"[" * 10_000, headers=JSON
        )
        assert_problem(response, 400, "validation_error")
        response = client.post("/logs", content=b"[" * 10_000 + b"]" * 10_000, headers=JSON)
        assert "nested too deeply" in assert_problem(response, 400, "validation_error")["detail"]

    def test_message_too_large(self, client: httpx.Client) -> None:
        problem = assert_problem(post(client, {"message": "x" * (256 * 1024 + 1)}), 400, "validation_error")
        assert problem["detail"] == "message: must be at most 262144 bytes of UTF-8"

    def test_batch_over_limit(self, client: httpx.Client) -> None:
        response = post(client, [{"message": "m"}] * 10_001)
        assert (
            "at most 10000 entries; got 10001" in assert_problem(response, 400, "validation_error")["detail"]
        )


class TestLimits:
    @pytest.fixture
    def small(self, tmp_path: Any) -> Any:
        running = ServerThread(
            make_settings(tmp_path / "small", max_body_bytes=4096, max_decompressed_bytes=8192)
        ).start()
        yield running
        running.stop()

    def test_body_over_limit_gets_413_before_it_is_read(self, small: ServerThread) -> None:
        with httpx.Client(base_url=small.url, headers=bearer(small.admin)) as client:
            body = json.dumps({"message": "x" * 4100}).encode()
            assert_problem(client.post("/logs", content=body, headers=JSON), 413, "payload_too_large")
            exactly = json.dumps({"message": "x" * (4096 - 15)}).encode()
            assert len(exactly) == 4096
            assert client.post("/logs", content=exactly, headers=JSON).status_code == 201

            def chunks() -> Any:  # no Content-Length: the limit applies while streaming
                for _ in range(10):
                    yield b"x" * 1000

            assert_problem(client.post("/logs", content=chunks(), headers=JSON), 413, "payload_too_large")

    def test_gzip_bomb(self, small: ServerThread) -> None:
        bomb = gzip.compress(b"[" + b" " * 3_000_000 + b"]")
        assert len(bomb) < 4096
        with httpx.Client(base_url=small.url, headers=bearer(small.admin)) as client:
            response = client.post("/logs", content=bomb, headers={**JSON, "Content-Encoding": "gzip"})
            assert "inflates to more than" in assert_problem(response, 413, "payload_too_large")["detail"]


def ingest_fixture(client: httpx.Client) -> list[dict[str, Any]]:
    """Entries across services, levels and types with known timestamps, some sharing one timestamp."""
    entries = []
    levels = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
    for i in range(60):
        entries.append(
            {
                "service_name": f"svc-{i % 3}",
                "level": levels[i % 6],
                "log_type": "audit" if i % 5 == 0 else "application",
                "message": f"event {i} " + ("disk full on node" if i % 4 == 0 else "all good"),
                "timestamp": 1_735_689_600 + (i // 2),  # pairs share a timestamp: ties by arrival
            }
        )
    assert post(client, entries).status_code == 201
    return entries


class TestReads:
    def messages(self, client: httpx.Client, **params: Any) -> list[str]:
        response = client.get("/logs/recent", params=params)
        assert response.status_code == 200, response.text
        return [e["message"] for e in response.json()["logs"]]

    def test_newest_first_ties_by_arrival(self, client: httpx.Client) -> None:
        entries = ingest_fixture(client)
        got = self.messages(client, limit=1000)
        assert got == [e["message"] for e in reversed(entries)]

    def test_filters(self, client: httpx.Client) -> None:
        entries = ingest_fixture(client)

        def expect(predicate: Any) -> list[str]:
            return [e["message"] for e in reversed(entries) if predicate(e)]

        assert self.messages(client, service_name="svc-1", limit=1000) == expect(
            lambda e: e["service_name"] == "svc-1"
        )
        assert self.messages(client, level="warn", limit=1000) == expect(lambda e: e["level"] == "WARN")
        severe = {"ERROR", "FATAL"}
        assert self.messages(client, min_level="ERROR", limit=1000) == expect(lambda e: e["level"] in severe)
        assert (
            self.messages(client, min_level="ERROR", service_name="svc-2", limit=5)
            == expect(lambda e: e["level"] in severe and e["service_name"] == "svc-2")[:5]
        )
        assert self.messages(client, log_type="audit", limit=1000) == expect(
            lambda e: e["log_type"] == "audit"
        )
        since, until = 1_735_689_600 + 10, 1_735_689_600 + 20
        assert self.messages(client, since=since, until=until, limit=1000) == expect(
            lambda e: since <= e["timestamp"] < until
        )
        assert self.messages(client, since="2025-01-01T00:00:25Z", limit=1000) == expect(
            lambda e: e["timestamp"] >= 1_735_689_600 + 25
        )
        assert self.messages(client, q="disk", limit=1000) == expect(lambda e: "disk" in e["message"])
        assert self.messages(client, q='"full on" svc', limit=1000) == []
        assert self.messages(client, q='"full on"', min_level="warn", limit=1000) == expect(
            lambda e: "disk" in e["message"] and e["level"] in {"WARN", "ERROR", "FATAL"}
        )
        assert self.messages(client, hours=1) == []  # the fixture's timestamps are in 2025

    def test_hours_window(self, client: httpx.Client) -> None:
        post(client, {"message": "now"})
        post(client, {"message": "old", "timestamp": "2020-01-01T00:00:00Z"})
        assert self.messages(client, hours=1) == ["now"]

    @pytest.mark.parametrize("params", [{}, {"service_name": "svc-0"}, {"min_level": "warn"}, {"q": "event"}])
    def test_cursor_pages_cover_everything_once(self, client: httpx.Client, params: dict[str, str]) -> None:
        ingest_fixture(client)
        expected = self.messages(client, **params, limit=1000)
        seen: list[str] = []
        cursor = None
        while True:
            query = {**params, "limit": 7, **({"cursor": cursor} if cursor else {})}
            page = client.get("/logs/recent", params=query).json()
            seen += [e["message"] for e in page["logs"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            assert page["count"] == 7
        assert seen == expected

    def test_list_and_recent_are_the_same(self, client: httpx.Client) -> None:
        ingest_fixture(client)
        assert client.get("/logs", params={"limit": 5}).json() == client.get("/logs/recent?limit=5").json()

    def test_bad_queries(self, client: httpx.Client) -> None:
        for params, field in [
            ({"limit": "0"}, "limit"),
            ({"limit": "ten"}, "limit"),
            ({"level": "LOUD"}, "level"),
            ({"since": "tomorrow"}, "since"),
            ({"cursor": "garbage"}, "cursor"),
            ({"sevice_name": "x"}, "sevice_name"),
        ]:
            problem = assert_problem(client.get("/logs/recent", params=params), 400, "validation_error")
            assert problem["errors"][0]["field"] == field

    @pytest.mark.parametrize(
        ("query", "field"),
        [
            ("since=99999999999999999999999", "since"),
            ("since=1" + "0" * 400, "since"),
            ("until=1e300", "until"),
            ("since=-1e300", "since"),
            ("cursor=kwHP__________8F", "cursor"),
            (f"cursor={encode_cursor(5, 2**63)}", "cursor"),
            ("q=secret%00", "q"),
            ("limit=5_0", "limit"),
            ("limit=%2B5", "limit"),
            ("limit=%205", "limit"),
            ("limit=%C2%B2", "limit"),
            ("since=%C2%B2", "since"),
            ("hours=1_0", "hours"),
        ],
    )
    def test_bad_numbers_and_nul_are_400_naming_the_parameter(
        self, client: httpx.Client, query: str, field: str
    ) -> None:
        """These used to answer 500 (an overflow in the store), 503 (NUL in a full-text query) or 200."""
        post(client, {"message": "secret"})
        for path in ("/logs", "/logs/recent"):
            response = client.get(f"{path}?{query}")
            problem = assert_problem(response, 400, "validation_error")
            assert [e["field"] for e in problem["errors"]] == [field]
            assert "retry-after" not in response.headers

    @pytest.mark.parametrize("params", [{}, {"q": "bulky"}, {"min_level": "info"}])
    def test_pages_are_bounded_by_bytes_and_the_cursor_goes_on(
        self, client: httpx.Client, params: dict[str, str]
    ) -> None:
        """limit=1000 of 200 KiB entries would be 200 MB in one answer; a page stops at MAX_PAGE_BYTES."""
        size = 200 * 1024
        for batch in range(4):  # equal timestamps in pairs: the cursor must also split ties right
            entries = [
                {"message": f"bulky {n:02d} " + "x" * size, "timestamp": 1_735_689_600 + n // 2}
                for n in range(batch * 10, batch * 10 + 10)
            ]
            assert post(client, entries).status_code == 201
        seen: list[str] = []
        counts: list[int] = []
        cursor = None
        while True:
            response = client.get(
                "/logs", params={**params, "limit": 1000, **({"cursor": cursor} if cursor else {})}
            )
            assert response.status_code == 200, response.text
            assert len(response.content) < MAX_PAGE_BYTES + 2 * size
            page = response.json()
            counts.append(page["count"])
            seen += [e["message"][: len("bulky 00")] for e in page["logs"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(counts) >= 3
        assert seen == [f"bulky {n:02d}" for n in reversed(range(40))]  # each once, newest first

    def test_limit_is_clamped(self, client: httpx.Client) -> None:
        post(client, [{"message": f"m{i}"} for i in range(1005)])
        page = client.get("/logs/recent", params={"limit": 10**9}).json()
        assert page["count"] == 1000
        assert page["next_cursor"] is not None

    def test_get_by_id(self, client: httpx.Client) -> None:
        log_id = post(client, {"message": "find me"}).json()["log_id"]
        assert client.get(f"/logs/{log_id}").json()["message"] == "find me"
        assert_problem(client.get(f"/logs/{uuid.uuid4()}"), 404, "not_found")
        problem = assert_problem(client.get("/logs/not-a-uuid"), 400, "validation_error")
        assert problem["errors"][0]["field"] == "log_id"


class TestOperations:
    def test_health_and_readiness(self, client: httpx.Client) -> None:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ready"}

    def test_unknown_route_and_method(self, client: httpx.Client) -> None:
        assert_problem(client.get("/nope"), 404, "not_found")
        response = client.delete("/logs")
        assert_problem(response, 405, "method_not_allowed")
        # Every method of the path, not only the first route's (RFC 9110 section 15.5.6).
        assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
        response = client.put("/admin/keys")
        assert_problem(response, 405, "method_not_allowed")
        assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
        assert client.head("/logs/recent").status_code == 200
        assert client.head("/admin/keys").status_code == 200

    def test_metrics(self, client: httpx.Client) -> None:
        post(client, [{"message": "a"}, {"message": "b"}])
        post(client, [{"message": "a"}, {"message": ""}])
        client.get("/logs/recent")
        text = client.get("/metrics").text
        assert "logsvc_entries_ingested_total 2.0" in text
        assert "logsvc_entries_rejected_total 2.0" in text
        assert 'logsvc_http_requests_total{method="POST",route="/logs",status="201"} 1.0' in text
        assert 'logsvc_http_requests_total{method="POST",route="/logs",status="400"} 1.0' in text
        assert 'logsvc_http_request_duration_seconds_count{method="GET",route="/logs/recent"} 1.0' in text
        assert "logsvc_store_write_batch_entries_count 1.0" in text
        assert "logsvc_store_write_batch_entries_sum 2.0" in text

    def test_openapi_documents_every_route(self, server: ServerThread, client: httpx.Client) -> None:
        spec = client.get("/openapi.json").json()
        assert spec["openapi"].startswith("3.1")
        documented = {(path, method.upper()) for path, item in spec["paths"].items() for method in item}
        routed = {
            (route.path, method)
            for route in server.server.config.app.routes  # type: ignore[attr-defined]
            for method in route.methods - {"HEAD"}
        }
        assert documented == routed
        for name in ("LogEntry", "LogEntryIn", "Page", "Problem", "Created", "BatchCreated"):
            assert name in spec["components"]["schemas"]
