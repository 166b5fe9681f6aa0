"""Whatever valid entry a client sends comes back byte-for-byte equal through a real server and store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ServerThread, bearer, make_settings

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
entries = st.fixed_dictionaries(
    {"message": st.text(min_size=1, max_size=500).filter(str.strip)},
    optional={"metadata": st.dictionaries(st.text(max_size=30), values, max_size=6)},
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    data: Path = tmp_path_factory.mktemp("round-trip")
    running = ServerThread(make_settings(data)).start()
    with httpx.Client(base_url=running.url, timeout=10, headers=bearer(running.admin)) as c:
        yield c
    running.stop()


def deep_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((deep_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((deep_depth(v) for v in value), default=0)
    return 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entry=entries)
def test_message_and_metadata_round_trip_exactly(client: httpx.Client, entry: dict[str, Any]) -> None:
    body = json.dumps(entry, ensure_ascii=False).encode()
    response = client.post("/logs", content=body, headers={"Content-Type": "application/json"})
    if deep_depth(entry.get("metadata", {})) > 8:
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == "metadata"
        return
    assert response.status_code == 201, response.text
    stored = client.get(f"/logs/{response.json()['log_id']}").json()
    assert stored["message"] == entry["message"]
    assert stored["metadata"] == entry.get("metadata")
    assert json.dumps(stored["metadata"], sort_keys=True) == json.dumps(entry.get("metadata"), sort_keys=True)
