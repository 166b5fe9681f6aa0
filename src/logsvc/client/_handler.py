"""``LogHandler`` (the ``logging`` module) and ``LogProcessor`` (structlog): records to entries, to a
``Shipper`` that sends them without blocking the application."""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from logsvc.client._auth import AwsCredentials, CredentialSource
from logsvc.client._client import Client
from logsvc.client._records import event_entry, json_safe, record_entry
from logsvc.client._shipper import Shipper
from logsvc.domain.entries import SERVICE_RULE, is_service_name

__all__ = ["LogHandler", "LogProcessor"]


class _Sending:
    """What the handler and the processor share: the options, the shipper, and the counters."""

    def __init__(
        self,
        url: str,
        *,
        service: str,
        api_key: str | None = None,
        aws_credentials: AwsCredentials | CredentialSource | None = None,
        token: str | Callable[[], str] | None = None,
        region: str | None = None,
        log_type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        queue_size: int = 10_000,
        flush_timeout: float = 5.0,
        timeout: float = 10.0,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        verify: bool | ssl.SSLContext = True,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        # Checked here, not at the first batch: a bad name would otherwise have every record refused.
        if not is_service_name(service):
            raise ValueError(f"service {service!r} {SERVICE_RULE}")
        self._base: dict[str, Any] = {"service_name": service}
        if log_type is not None:
            self._base["log_type"] = log_type
        self._defaults = json_safe(dict(metadata), 1) if metadata else None

        def client() -> Client:
            return Client(
                url,
                api_key=api_key,
                aws_credentials=aws_credentials,
                token=token,
                region=region,
                timeout=timeout,
                verify=verify,
                headers=headers,
            )

        self._shipper = Shipper(
            client,
            batch_size=batch_size,
            flush_interval=flush_interval,
            queue_size=queue_size,
            flush_timeout=flush_timeout,
            backoff=backoff,
            max_backoff=max_backoff,
        )

    @property
    def dropped(self) -> int:
        """Records dropped because the queue was full."""
        return self._shipper.dropped

    @property
    def rejected(self) -> int:
        """Records the service refused as invalid (e.g. a blank message, metadata over 64 KiB), or that could
        not be sent for a reason retrying cannot mend (a credential refused)."""
        return self._shipper.rejected

    @property
    def delivered(self) -> int:
        """Records the service acknowledged as stored."""
        return self._shipper.delivered

    @property
    def pending(self) -> int:
        """Records queued or being sent."""
        return self._shipper.pending


class LogHandler(_Sending, logging.Handler):
    """A ``logging.Handler`` that sends records to logsvc in the background; it never blocks the
    application, and a record is never stored twice.

    ``logging.getLogger().addHandler(LogHandler(url, service="api", api_key=key))``

    Each record becomes an entry: its time, ``levelname`` as the level (custom levels as the standard one
    below them), the message (``getMessage()``: a formatter is not applied, since the level, logger and
    the rest are fields of their own, and ``basicConfig`` sets one on every handler) and metadata
    with ``logger``, ``module``, ``function``, ``line``, ``thread``, ``process``, ``exception`` (the
    formatted traceback) and ``stack`` when there are, and every ``extra=`` field made JSON-safe; the
    handler's own ``metadata`` comes under those. docs/sdk.md describes every option and the guarantees.
    """

    def __init__(
        self,
        url: str,
        *,
        service: str,
        api_key: str | None = None,
        aws_credentials: AwsCredentials | CredentialSource | None = None,
        token: str | Callable[[], str] | None = None,
        region: str | None = None,
        level: int | str = logging.NOTSET,
        log_type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        queue_size: int = 10_000,
        flush_timeout: float = 5.0,
        timeout: float = 10.0,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        verify: bool | ssl.SSLContext = True,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        logging.Handler.__init__(self, level)
        _Sending.__init__(
            self,
            url,
            service=service,
            api_key=api_key,
            aws_credentials=aws_credentials,
            token=token,
            region=region,
            log_type=log_type,
            metadata=metadata,
            batch_size=batch_size,
            flush_interval=flush_interval,
            queue_size=queue_size,
            flush_timeout=flush_timeout,
            timeout=timeout,
            backoff=backoff,
            max_backoff=max_backoff,
            verify=verify,
            headers=headers,
        )

    def emit(self, record: logging.LogRecord) -> None:
        if threading.get_ident() == self._shipper.sender_ident:
            return  # httpx logging the handler's own requests: sending that would never end
        try:
            self._shipper.put(record_entry(record, self._base, self._defaults))
        except Exception:
            self.handleError(record)

    def flush(self, timeout: float | None = None) -> bool:  # type: ignore[override]
        """Wait until every record logged before the call is delivered (or refused as invalid); False if
        that took longer than ``timeout`` seconds (default: the ``flush_timeout`` option). Returning a
        value where logging.Handler returns None is what the ignore is for."""
        return self._shipper.flush(timeout)

    def close(self) -> None:
        """Deliver what is queued (up to ``flush_timeout``), then stop; called by ``logging.shutdown`` and
        at interpreter exit."""
        self._shipper.close()
        logging.Handler.close(self)


class LogProcessor(_Sending):
    """A structlog processor that sends each event to logsvc in the background and passes it on unchanged,
    so that the processors after it (a renderer) still see it.

    ``structlog.configure(processors=[..., LogProcessor(url, service="api", api_key=key), renderer])``

    An event becomes an entry: ``event`` is the message; ``level`` (from ``add_log_level``) or the method
    name the level; ``exception`` (as ``format_exc_info`` renders it) or ``exc_info`` (formatted here) and
    ``stack`` go to metadata with every other key made JSON-safe. The options are ``LogHandler``'s.
    """

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        if threading.get_ident() != self._shipper.sender_ident:
            self._shipper.put(event_entry(event_dict, method_name, self._base, self._defaults))
        return event_dict

    def flush(self, timeout: float | None = None) -> bool:
        """As ``LogHandler.flush``."""
        return self._shipper.flush(timeout)

    def close(self) -> None:
        """Deliver what is queued (up to ``flush_timeout``), then stop (also done at interpreter exit)."""
        self._shipper.close()
