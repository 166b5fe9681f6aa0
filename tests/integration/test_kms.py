"""The data key wrapped by AWS KMS, against moto's server mode on 127.0.0.1 (a stand-in for KMS: this was
not run against AWS)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from logsvc.crypto import store_key
from logsvc.crypto.keys import write_key_file
from logsvc.errors import ConfigError
from tests.conftest import ServerThread, bearer, make_settings


@pytest.fixture(scope="module")
def kms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """The endpoint and two key ids of a moto KMS server."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server._server.server_port}"
    client = boto3.client(
        "kms",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    first = client.create_key()["KeyMetadata"]["KeyId"]
    second = client.create_key()["KeyMetadata"]["KeyId"]
    yield endpoint, first, second
    server.stop()


@pytest.fixture(autouse=True)
def _aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def test_kms_wraps_the_data_key(kms: tuple[str, str, str], tmp_path: Path) -> None:
    endpoint, first, second = kms
    settings = make_settings(tmp_path / "data", master_key_kms=first, aws_endpoint_url=endpoint)
    server = ServerThread(settings).start()
    try:
        with httpx.Client(base_url=server.url, headers=bearer(server.admin)) as client:
            assert client.post("/logs", json={"message": "wrapped by kms"}).status_code == 201
    finally:
        server.stop()
    keyring = json.loads((tmp_path / "data" / "keyring.json").read_text())
    assert (keyring["algorithm"], keyring["kms_key_id"]) == ("AWS-KMS", first)
    assert not Path(settings.master_key_file).exists(), "no local master key when KMS holds it"
    key = store_key(settings)
    assert key is not None
    assert key.hex() not in json.dumps(keyring)

    restarted = ServerThread(settings).start()
    try:
        with httpx.Client(base_url=restarted.url, headers=bearer(server.admin)) as client:
            assert client.get("/logs").json()["logs"][0]["message"] == "wrapped by kms"
    finally:
        restarted.stop()

    with pytest.raises(ConfigError, match=rf"AWS KMS key {second} does not open"):
        store_key(make_settings(tmp_path / "data", master_key_kms=second, aws_endpoint_url=endpoint))
    local = make_settings(tmp_path / "data")
    with pytest.raises(ConfigError, match="does not exist"):
        store_key(local)
    write_key_file(Path(local.master_key_file), secrets.token_bytes(32))
    with pytest.raises(ConfigError, match="was not made with a local master key"):
        store_key(local)
