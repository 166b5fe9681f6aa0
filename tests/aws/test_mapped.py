"""The ingest function maps any JSON as POST /logs does: the query string of each event format carries the
mapping, the leftovers are metadata, and a scoped caller writing another service through it is refused."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from logsvc.aws.handlers import LambdaApp
from tests.aws.helpers import CHECKOUT_WRITER, FORMATS, body_of, ingest_event, read_event, set_query

QUERY = "message_field=log&time_field=time&service_field=kubernetes.labels.app&level_field=json.level"


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_kubernetes_log_is_mapped_and_read_back(lambda_app: LambdaApp, fmt: str) -> None:
    service = f"checkout-{uuid.uuid4().hex[:8]}"
    moment = datetime.now(UTC).replace(microsecond=250000)
    doc = {
        "log": "payment declined",
        "stream": "stderr",
        "time": moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z",
        "json": {"level": "error", "order": 42},
        "kubernetes": {"labels": {"app": service}, "pod_name": "checkout-7d9f-x2"},
    }
    event = ingest_event(fmt, [doc])
    set_query(event, QUERY)
    response = lambda_app.ingest(event, None)
    assert response["statusCode"] == 201, response

    page = lambda_app.read(read_event(fmt, "/logs/recent", f"service_name={service}"), None)
    [entry] = body_of(page)["logs"]
    assert (entry["message"], entry["level"]) == ("payment declined", "ERROR")
    assert entry["timestamp"] == moment.strftime("%Y-%m-%dT%H:%M:%S.250000Z")
    assert entry["metadata"] == {
        "stream": "stderr",
        "json": {"order": 42},
        "kubernetes": {"pod_name": "checkout-7d9f-x2"},
    }


@pytest.mark.parametrize("fmt", FORMATS)
def test_unknown_parameters_and_other_services_are_refused(lambda_app: LambdaApp, fmt: str) -> None:
    event = ingest_event(fmt, {"message": "m"})
    set_query(event, "source=x")
    response = lambda_app.ingest(event, None)
    assert response["statusCode"] == 400, response
    assert [e["field"] for e in body_of(response)["errors"]] == ["source"]

    docs = [{"log": "mine", "kubernetes": {"labels": {"app": "checkout-api"}}}]
    docs.append({"log": "theirs", "kubernetes": {"labels": {"app": "payments"}}})
    event = ingest_event(fmt, docs, caller=CHECKOUT_WRITER)
    set_query(event, QUERY)
    assert lambda_app.ingest(event, None)["statusCode"] == 403
