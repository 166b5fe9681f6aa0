"""Start-up warnings an operator must not miss."""

from __future__ import annotations

import logging

import pytest

from logsvc.server import _warn_about_exposure
from logsvc.settings import load_settings


@pytest.mark.parametrize(
    ("overrides", "warning"),
    [
        ({"host": "0.0.0.0"}, "without TLS"),
        ({"host": "192.0.2.10"}, "without TLS"),
        ({"host": "example.internal"}, "without TLS"),
        ({"allow_anonymous": True}, "ANONYMOUS ACCESS IS ON"),
    ],
)
def test_exposure_is_warned_about(
    caplog: pytest.LogCaptureFixture, overrides: dict[str, object], warning: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="logsvc.server"):
        _warn_about_exposure(load_settings(environ={}, overrides=overrides))
    assert warning in caplog.text


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_loopback_without_tls_is_quiet(caplog: pytest.LogCaptureFixture, host: str) -> None:
    with caplog.at_level(logging.WARNING, logger="logsvc.server"):
        _warn_about_exposure(load_settings(environ={}, overrides={"host": host}))
    assert caplog.text == ""


def test_tls_quiets_the_warning(caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(
        environ={}, overrides={"host": "0.0.0.0", "tls_cert": "c.pem", "tls_key": "k.pem"}
    )
    with caplog.at_level(logging.WARNING, logger="logsvc.server"):
        _warn_about_exposure(settings)
    assert caplog.text == ""
