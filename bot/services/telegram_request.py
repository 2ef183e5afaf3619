"""A PTB request backend that reports Bot API outcomes to the health state and metrics.

Subclassing :class:`telegram.request.HTTPXRequest` and wrapping only ``do_request`` sees every
call the bot makes (``getUpdates`` long polls included) at the one point where the raw HTTP
status is known, without changing what PTB does with the answer: the status and body are
returned, and exceptions are re-raised as they came.

The request URL contains the bot token, so nothing here logs URLs; an exception whose text
happens to contain a token-shaped string is re-raised as the same type with it redacted.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, HTTPXRequest, RequestData

from bot.config import TOKEN_IN_TEXT_RE
from bot.services.health import HealthState
from bot.services.metrics import Metrics

logger = logging.getLogger(__name__)

_REDACTED = "<redacted>"
_MAX_DESCRIPTION = 200
HTTP_CONFLICT = 409

_KIND_BY_STATUS: dict[int, str] = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    429: "rate_limited",
}


def error_kind_for_status(status: int) -> str | None:
    """Map a Bot API HTTP status to a ``telegram_api_errors`` kind; ``None`` for 2xx."""
    if 200 <= status <= 299:
        return None
    if status >= 500:
        return "server_error"
    return _KIND_BY_STATUS.get(status, "other")


class InstrumentedRequest(HTTPXRequest):
    """:class:`HTTPXRequest` that feeds :class:`HealthState` and :class:`Metrics`.

    * Any HTTP answer below 500 proves the API is reachable: ``health.record_api_success()``.
      Except 401: Telegram is reachable but the token was revoked, so the bot is useless and
      must turn unhealthy rather than look alive.
    * Non-2xx answers count in ``metrics.telegram_api_errors`` by kind (429 ``rate_limited``,
      403 ``forbidden``, 400 ``bad_request``, 404 ``not_found``, 409 ``conflict``, 5xx
      ``server_error``, else ``other``) and go to ``health.record_api_error``.
    * A 409 Conflict (another process receives this bot's updates) goes to
      ``health.record_conflict`` with Telegram's description; the next 2xx answer to the same
      method clears it (``health.clear_conflict``).
    * :class:`telegram.error.TimedOut` counts as ``timeout``, other
      :class:`telegram.error.NetworkError` as ``network``, anything else as ``other``.
    """

    def __init__(self, health: HealthState, metrics: Metrics, **kwargs: Any) -> None:
        """Wrap a normal HTTPXRequest.

        Args:
            health: receives successes and error kinds.
            metrics: ``telegram_api_errors`` is incremented per failure.
            **kwargs: passed unchanged to :class:`HTTPXRequest` (pool size, timeouts, ...).

        """
        super().__init__(**kwargs)
        self._health = health
        self._metrics = metrics

    def _record_error(self, kind: str) -> None:
        self._metrics.telegram_api_errors.labels(kind=kind).inc()
        self._health.record_api_error(kind)

    async def do_request(  # noqa: PLR0917  (the parent's signature, positional by design)
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        # PTB types these as ODVInput[float] from a private module; Any keeps the override
        # compatible without importing PTB internals.
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Do the request as :class:`HTTPXRequest` does, recording the outcome.

        Returns:
            The HTTP status code and body, unchanged.

        Raises:
            TimedOut, NetworkError, RuntimeError: as the parent raises them (same type; the
                message only differs if it contained a token-shaped string, now redacted).

        """
        try:
            status, payload = await super().do_request(
                url=url,
                method=method,
                request_data=request_data,
                read_timeout=read_timeout,
                write_timeout=write_timeout,
                connect_timeout=connect_timeout,
                pool_timeout=pool_timeout,
            )
        except NetworkError as exc:  # TimedOut is a NetworkError too
            self._record_error("timeout" if isinstance(exc, TimedOut) else "network")
            if _has_token(exc):
                raise _redacted(exc) from None
            raise
        except Exception as exc:
            self._record_error("other")
            if _has_token(exc):
                raise RuntimeError(TOKEN_IN_TEXT_RE.sub(_REDACTED, str(exc))) from None
            raise
        if status < 500 and status != 401:
            self._health.record_api_success()
        kind = error_kind_for_status(status)
        if kind is not None:
            self._record_error(kind)
        # The method is the URL's last segment; the token before it is never looked at.
        api_method = url.rsplit("/", 1)[-1]
        if status == HTTP_CONFLICT:
            self._health.record_conflict(api_method, _description(payload))
        elif kind is None:
            self._health.clear_conflict(api_method)
        return status, payload


def _description(payload: bytes) -> str:
    """Telegram's ``description`` from an error body, short and token-free, for logs."""
    try:
        text = str(json.loads(payload).get("description") or "")
    except (ValueError, AttributeError):
        text = ""
    return TOKEN_IN_TEXT_RE.sub(_REDACTED, text)[:_MAX_DESCRIPTION] or "no description"


def _has_token(exc: BaseException) -> bool:
    return bool(TOKEN_IN_TEXT_RE.search(str(exc)))


def _redacted(exc: NetworkError) -> NetworkError:
    """Rebuild ``exc`` as the same PTB exception type with token-shaped text replaced."""
    return type(exc)(TOKEN_IN_TEXT_RE.sub(_REDACTED, exc.message))
