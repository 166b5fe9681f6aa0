"""The read function answers GET /logs/stats, GET /services and GET /logs/{log_id}/context from DynamoDB (in
moto's server mode), in every event format, with the scopes of the callers."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from logsvc.aws.handlers import LambdaApp
from tests.aws.helpers import (
    CHECKOUT_READER,
    FORMATS,
    READ_CALLER,
    body_of,
    ingest_event,
    load_event,
    set_path,
    set_query,
    with_caller,
)


def get(
    app: LambdaApp, fmt: str, path: str, template: str, query: str = "", *, caller: str = READ_CALLER
) -> dict[str, Any]:
    """The read function's answer to a GET of ``path``, routed by API Gateway to ``template``."""
    event = load_event(f"{fmt}_iam_recent")
    params = {"log_id": path.split("/")[2]} if "{log_id}" in template else None
    set_path(event, path, template, params)
    set_query(event, query)
    return app.read(with_caller(event, caller), None)


@pytest.mark.parametrize("fmt", FORMATS)
def test_stats_services_and_context_on_lambda(lambda_app: LambdaApp, fmt: str) -> None:
    checkout, payments = f"checkout-{uuid.uuid4().hex[:6]}", f"payments-{uuid.uuid4().hex[:6]}"
    batch = [{"service_name": checkout, "level": "error", "message": f"c{i}"} for i in range(5)]
    batch += [{"service_name": payments, "message": f"p{i}"} for i in range(3)]
    log_ids = body_of(lambda_app.ingest(ingest_event(fmt, batch), None))["log_ids"]

    answer = get(lambda_app, fmt, "/logs/stats", "/logs/stats", "hours=1&interval=5m&by=service_name")
    assert answer["statusCode"] == 200, answer
    stats = body_of(answer)
    totals: dict[str, int] = {}
    for bucket in stats["buckets"]:
        for name, count in bucket["counts"].items():
            totals[name] = totals.get(name, 0) + count
    assert (totals[checkout], totals[payments]) == (5, 3)
    assert stats["interval"] == "5m"

    scoped = body_of(get(lambda_app, fmt, "/logs/stats", "/logs/stats", caller=CHECKOUT_READER))
    seen = {name for bucket in scoped["buckets"] for name in bucket["counts"]}
    assert seen == {"ERROR"}  # by level, of the checkout services only

    services = body_of(get(lambda_app, fmt, "/services", "/services"))["services"]
    counts = {s["service_name"]: s["count"] for s in services}
    assert (counts[checkout], counts[payments]) == (5, 3)
    mine = body_of(get(lambda_app, fmt, "/services", "/services", caller=CHECKOUT_READER))["services"]
    assert all(s["service_name"].startswith("checkout") for s in mine)

    path = f"/logs/{log_ids[2]}/context"
    context = body_of(get(lambda_app, fmt, path, "/logs/{log_id}/context", "before=1&after=5"))
    assert context["entry"]["message"] == "c2"
    assert len(context["before"]) == 1
    assert {e["service_name"] for e in [*context["before"], *context["after"]]} == {checkout}
    hidden = get(
        lambda_app, fmt, f"/logs/{log_ids[6]}/context", "/logs/{log_id}/context", caller=CHECKOUT_READER
    )
    assert hidden["statusCode"] == 404
    bad = get(lambda_app, fmt, "/logs/stats", "/logs/stats", "interval=soon")
    assert bad["statusCode"] == 400
    assert body_of(bad)["errors"][0]["field"] == "interval"
