"""GET /logs/stats, GET /services and GET /logs/{log_id}/context over HTTP, on a real server: the answers'
shapes, empty buckets, widening, bad parameters named, and credentials held to their services."""

from __future__ import annotations

import itertools
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from logsvc.auth.policy import Role
from logsvc.domain.timestamps import format_timestamp, parse_timestamp
from tests.conftest import ServerThread, bearer, make_key

MINUTE_US = 60_000_000


def _service() -> str:
    return f"svc-{uuid.uuid4().hex[:8]}"


def _store(client: httpx.Client, entries: list[dict[str, Any]]) -> list[str]:
    answer = client.post("/logs", json=entries)
    assert answer.status_code == 201, answer.text
    log_ids: list[str] = answer.json()["log_ids"]
    return log_ids


def _ago(us: int) -> str:
    return format_timestamp(time.time_ns() // 1000 - us)


def _fields(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    return [error["field"] for error in answer.json()["errors"]]


def test_a_histogram_by_level_with_its_empty_buckets(client: httpx.Client) -> None:
    service = _service()
    _store(
        client,
        [
            *({"service_name": service, "level": "error", "message": "e", "timestamp": _ago(30 * MINUTE_US)},)
            * 2,
            *({"service_name": service, "message": "i", "timestamp": _ago(10 * MINUTE_US)},) * 3,
        ],
    )
    answer = client.get("/logs/stats", params={"hours": 1, "interval": "5m", "service_name": service})
    assert answer.status_code == 200, answer.text
    stats = answer.json()
    assert set(stats) == {"interval", "by", "since", "until", "buckets"}
    assert (stats["interval"], stats["by"]) == ("5m", "level")
    starts = [parse_timestamp(bucket["start"]) for bucket in stats["buckets"]]
    assert starts == sorted(starts)
    assert {b - a for a, b in itertools.pairwise(starts)} == {5 * MINUTE_US}
    assert starts[0] == parse_timestamp(stats["since"])
    assert parse_timestamp(stats["until"]) == starts[-1] + 5 * MINUTE_US
    assert len(starts) in (12, 13)  # an hour, widened to whole five minutes
    counted = [bucket["counts"] for bucket in stats["buckets"] if bucket["counts"]]
    assert counted == [{"ERROR": 2}, {"INFO": 3}]
    assert sum(1 for bucket in stats["buckets"] if bucket["counts"] == {}) == len(starts) - 2


def test_without_parameters_the_last_day_in_about_a_hundred_buckets(client: httpx.Client) -> None:
    service = _service()
    _store(client, [{"service_name": service, "message": "x", "timestamp": _ago(3_600 * 1_000_000)}])
    stats = client.get("/logs/stats").json()
    window = parse_timestamp(stats["until"]) - parse_timestamp(stats["since"])
    assert 24 * 3_600 * 1_000_000 <= window <= 25 * 3_600 * 1_000_000
    assert stats["interval"] == "15m"
    assert len(stats["buckets"]) <= 100
    assert "requested_interval" not in stats
    by_service = client.get("/logs/stats", params={"by": "service_name"}).json()
    assert sum(bucket["counts"].get(service, 0) for bucket in by_service["buckets"]) == 1


def test_a_window_needing_too_many_buckets_is_widened_and_says_so(client: httpx.Client) -> None:
    stats = client.get("/logs/stats", params={"hours": 24, "interval": "10s"}).json()
    assert (stats["interval"], stats["requested_interval"]) == ("2m", "10s")
    assert len(stats["buckets"]) <= 1000
    seven_days = client.get("/logs/stats", params={"hours": 168, "interval": "1m"}).json()
    assert (seven_days["interval"], seven_days["requested_interval"]) == ("15m", "1m")


@pytest.mark.parametrize(
    "params",
    [
        {"since": "2000-01-01T00:00:00Z", "until": "9999-12-31T23:59:59Z"},
        {"since": "9999-12-01T00:00:00Z", "until": "9999-12-31T23:59:59Z", "interval": "36600d"},
        {"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59.999999Z", "interval": "7d"},
    ],
)
def test_a_window_up_to_the_year_9999_is_answered_in_times_given_back_as_parameters(
    client: httpx.Client, params: dict[str, str]
) -> None:
    stats = client.get("/logs/stats", params=params).json()
    since, until = datetime.fromisoformat(stats["since"]), datetime.fromisoformat(stats["until"])
    assert since < until <= datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert since <= max(datetime.fromisoformat(params["since"]), datetime(1970, 1, 1, tzinfo=UTC))
    assert stats["buckets"][-1]["start"] < stats["until"]  # the last bucket, cut at the end of time, is kept
    given_back = {"since": stats["since"], "until": stats["until"], "interval": stats["interval"]}
    again = client.get("/logs/stats", params=given_back)
    assert again.status_code == 200, again.text
    assert (again.json()["until"], again.json()["interval"]) == (stats["until"], stats["interval"])


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"interval": "0s"}, ["interval"]),
        ({"interval": "5x"}, ["interval"]),
        ({"interval": "1.5m"}, ["interval"]),
        ({"interval": "m"}, ["interval"]),
        ({"interval": "99999d"}, ["interval"]),
        ({"interval": "5M"}, ["interval"]),
        ({"by": "message"}, ["by"]),
        ({"by": "level", "interval": "-1h"}, ["interval"]),
        ({"limit": "10"}, ["limit"]),
        ({"cursor": "abc"}, ["cursor"]),
        ({"interval": "1h", "by": "host", "level": "LOUD"}, ["level", "by"]),
        ({"since": "2024-01-02T00:00:00Z", "until": "2024-01-01T00:00:00Z"}, ["until"]),
        ({"since": "2999-01-01T00:00:00Z"}, ["since"]),
        ({"hours": "0"}, ["hours"]),
    ],
)
def test_bad_parameters_are_named(client: httpx.Client, params: dict[str, str], fields: list[str]) -> None:
    assert sorted(_fields(client.get("/logs/stats", params=params))) == sorted(fields)


def test_a_repeated_parameter_is_refused(client: httpx.Client) -> None:
    assert _fields(client.get("/logs/stats?interval=1m&interval=5m")) == ["interval"]
    assert _fields(client.get("/logs/stats?by=level&by=level")) == ["by"]


def test_services_with_their_counts_and_newest_entry(client: httpx.Client) -> None:
    first, second = sorted([_service(), _service()])
    newest = _ago(5_000_000)
    _store(
        client,
        [
            {"service_name": second, "message": "a", "timestamp": _ago(60_000_000)},
            {"service_name": second, "message": "b", "timestamp": newest},
            {"service_name": first, "message": "c"},
        ],
    )
    services = client.get("/services").json()["services"]
    names = [service["service_name"] for service in services]
    assert names == sorted(names)
    mine = {s["service_name"]: s for s in services if s["service_name"] in (first, second)}
    assert mine[second] == {"service_name": second, "count": 2, "newest": newest}
    assert mine[first]["count"] == 1
    assert _fields(client.get("/services", params={"prefix": "svc"})) == ["prefix"]


def _many_services(client: httpx.Client, count: int) -> dict[str, int]:
    """``count`` services of 1 to 12 entries each (many ties), all in the last hour: their sizes by name."""
    tag = uuid.uuid4().hex[:6]
    sizes = {f"many-{tag}-{i:03d}": 1 + (i * 37 % count) // 10 for i in range(count)}
    entries = [
        {"service_name": name, "message": f"m{n}", "timestamp": _ago((n * 7 % 55 + 1) * MINUTE_US)}
        for name, size in sizes.items()
        for n in range(size)
    ]
    _store(client, entries)
    return sizes


@pytest.mark.parametrize(("interval", "series"), [("5m", 50), ("10s", 13)])
def test_by_service_the_loudest_are_named_and_the_rest_summed_as_other(
    client: httpx.Client, interval: str, series: int
) -> None:
    """120 services: at most 50 keys a bucket (13 at 721 buckets: at most 10,000 in all), the services with
    the most entries in the window by name (ties by name), the others summed under "(other)", exactly."""
    sizes = _many_services(client, 120)
    answer = client.get("/logs/stats", params={"by": "service_name", "hours": 2, "interval": interval})
    assert answer.status_code == 200, answer.text
    stats = answer.json()
    assert "requested_interval" not in stats
    buckets = stats["buckets"]
    keys = {name for bucket in buckets for name in bucket["counts"]}
    assert len(keys) == series
    assert len(buckets) * len(keys) <= 10_000
    ranked = sorted(sizes, key=lambda name: (-sizes[name], name))
    assert keys == {*ranked[: series - 1], "(other)"}
    assert stats["other_services"] == 120 - (series - 1)
    for name in ranked[: series - 1]:
        assert sum(bucket["counts"].get(name, 0) for bucket in buckets) == sizes[name]
    others = sum(sizes[name] for name in ranked[series - 1 :])
    assert sum(bucket["counts"].get("(other)", 0) for bucket in buckets) == others
    assert sum(sum(bucket["counts"].values()) for bucket in buckets) == sum(sizes.values())
    # The same window by level has no "(other)" and says nothing of services.
    by_level = client.get("/logs/stats", params={"hours": 2, "interval": interval}).json()
    assert "other_services" not in by_level
    assert sum(sum(bucket["counts"].values()) for bucket in by_level["buckets"]) == sum(sizes.values())


def test_few_services_are_all_named(client: httpx.Client) -> None:
    sizes = _many_services(client, 50)
    stats = client.get("/logs/stats", params={"by": "service_name", "hours": 2}).json()
    assert {name for bucket in stats["buckets"] for name in bucket["counts"]} == set(sizes)
    assert "other_services" not in stats


def test_services_are_paged_by_name(client: httpx.Client) -> None:
    sizes = _many_services(client, 120)
    names = sorted(sizes)
    everything = client.get("/services").json()
    assert "next_after" not in everything
    assert [s["service_name"] for s in everything["services"]] == names
    assert [s["count"] for s in everything["services"]] == [sizes[name] for name in names]
    seen: list[str] = []
    pages, after = 0, None
    while True:
        params: dict[str, Any] = {"limit": 7} | ({"after": after} if after else {})
        page = client.get("/services", params=params).json()
        pages += 1
        assert 1 <= len(page["services"]) <= 7
        seen += [s["service_name"] for s in page["services"]]
        if "next_after" not in page:
            break
        after = page["next_after"]
        assert after == seen[-1]
    assert seen == names  # every service exactly once, in order
    assert pages == 18  # 17 pages of 7, then the last one
    exact = client.get("/services", params={"limit": 120}).json()
    assert len(exact["services"]) == 120
    assert "next_after" not in exact
    short = client.get("/services", params={"limit": 119}).json()
    assert short["next_after"] == names[118]
    last = client.get("/services", params={"after": names[-1]}).json()
    assert last == {"services": []}
    # after need not be a service that exists: the names sorting after it.
    assert (
        client.get("/services", params={"after": names[0] + "-", "limit": 1}).json()["services"][0][
            "service_name"
        ]
        == names[1]
    )


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("limit=0", ["limit"]),
        ("limit=1001", ["limit"]),
        ("limit=-1", ["limit"]),
        ("limit=ten", ["limit"]),
        ("limit=1.5", ["limit"]),
        ("limit=", ["limit"]),
        ("after=", ["after"]),
        ("after=a%20b", ["after"]),
        ("after=" + "a" * 129, ["after"]),
        ("after=(other)", ["after"]),
        ("limit=5&limit=6", ["limit"]),
        ("after=a&after=b", ["after"]),
        ("cursor=abc&limit=0", ["cursor", "limit"]),
    ],
)
def test_bad_services_parameters_are_named(client: httpx.Client, query: str, fields: list[str]) -> None:
    assert sorted(_fields(client.get(f"/services?{query}"))) == sorted(fields)


def test_an_entry_with_the_entries_around_it(client: httpx.Client) -> None:
    service, other = f"m-{uuid.uuid4().hex[:6]}", f"o-{uuid.uuid4().hex[:6]}"
    entries = [
        {"service_name": name, "message": f"{name[:1]}{i}", "timestamp": _ago((40 - i) * 1_000_000)}
        for name in (service, other)
        for i in range(30)
    ]
    ids = _store(client, entries)
    answer = client.get(f"/logs/{ids[15]}/context", params={"before": 3, "after": 2})
    assert answer.status_code == 200, answer.text
    context = answer.json()
    assert set(context) == {"entry", "before", "after"}
    assert context["entry"]["message"] == "m15"
    assert [e["message"] for e in context["before"]] == ["m12", "m13", "m14"]
    assert [e["message"] for e in context["after"]] == ["m16", "m17"]
    assert context["entry"] == client.get(f"/logs/{ids[15]}").json()
    default = client.get(f"/logs/{ids[15]}/context").json()
    assert (len(default["before"]), len(default["after"])) == (10, 10)
    named = client.get(f"/logs/{ids[15]}/context", params={"service_name": service, "after": 0}).json()
    assert (len(named["before"]), named["after"]) == (10, [])
    assert client.get(f"/logs/{ids[15]}/context", params={"service_name": other}).status_code == 404
    assert client.get(f"/logs/{uuid.uuid4()}/context").status_code == 404
    assert _fields(client.get("/logs/not-a-uuid/context")) == ["log_id"]
    assert _fields(client.get(f"/logs/{ids[0]}/context", params={"before": 101})) == ["before"]
    assert _fields(client.get(f"/logs/{ids[0]}/context", params={"after": "-1", "q": "x"})) == ["q", "after"]


def test_credentials_see_only_their_services(server: ServerThread) -> None:
    mine, theirs = f"team-a-{uuid.uuid4().hex[:6]}", f"team-b-{uuid.uuid4().hex[:6]}"
    with httpx.Client(base_url=server.url, headers=bearer(server.admin), timeout=10) as admin:
        ids = _store(admin, [{"service_name": name, "message": "x"} for name in (mine, theirs)])
    reader = make_key(server.settings, Role.READ, services=("team-a-*",))
    writer = make_key(server.settings, Role.INGEST)
    with httpx.Client(base_url=server.url, headers=bearer(reader), timeout=10) as client:
        stats = client.get("/logs/stats", params={"by": "service_name"}).json()
        assert {name for bucket in stats["buckets"] for name in bucket["counts"]} == {mine}
        assert client.get("/logs/stats", params={"service_name": theirs}).status_code == 403
        assert [s["service_name"] for s in client.get("/services").json()["services"]] == [mine]
        assert client.get(f"/logs/{ids[0]}/context").status_code == 200
        assert client.get(f"/logs/{ids[1]}/context").status_code == 404
        assert client.get(f"/logs/{ids[1]}/context", params={"service_name": theirs}).status_code == 403
    for path in ("/logs/stats", "/services", f"/logs/{ids[0]}/context"):
        assert httpx.get(server.url + path, timeout=10).status_code == 401
        assert httpx.get(server.url + path, headers=bearer(writer), timeout=10).status_code == 403


def test_the_routes_are_in_the_openapi_document(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    stats = paths["/logs/stats"]["get"]
    names = {parameter["name"] for parameter in stats["parameters"]}
    assert names == {
        "service_name",
        "level",
        "severity",
        "min_level",
        "log_type",
        "since",
        "until",
        "hours",
        "q",
    } | {
        "interval",
        "by",
    }
    assert {p["name"] for p in paths["/logs/{log_id}/context"]["get"]["parameters"]} == {
        "log_id",
        "before",
        "after",
        "service_name",
    }
    assert {p["name"] for p in paths["/services"]["get"]["parameters"]} == {"limit", "after"}
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert "other_services" in schemas["Stats"]["properties"]
    assert "next_after" in schemas["ServiceList"]["properties"]
