"""Process-wide logging: text or one JSON object per line, with the bot token always redacted.

The Bot API URL embeds the token (``/bot<token>/sendMessage``), and httpx, PTB and tracebacks
all like to print URLs. Rather than trusting every call site, redaction happens in the
formatter, on the final rendered line, so nothing that reaches a handler can carry it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

from bot.config import TOKEN_IN_TEXT_RE

REDACTED = "[REDACTED]"
# Attributes every LogRecord has; anything else came in through ``extra=`` and is structured data.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove every configured secret and anything token-shaped from ``text``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return TOKEN_IN_TEXT_RE.sub(REDACTED, text)  # token-shaped, even if not configured


def record_extras(record: logging.LogRecord) -> dict[str, Any]:
    """Return the structured fields a caller attached with ``extra=``."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


class RedactingTextFormatter(logging.Formatter):
    """Human-readable lines; structured extras are appended as ``key=value``."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        """Render, append extras, then redact the whole line (traceback included)."""
        line = super().format(record)
        extras = record_extras(record)
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in sorted(extras.items()))
        return redact(line, self._secrets)


class RedactingJsonFormatter(JsonFormatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message`` plus extras."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
        self._secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        """Render as JSON, then redact (a secret inside a string stays valid JSON)."""
        return redact(super().format(record), self._secrets)


def configure_logging(
    level: str = "INFO",
    fmt: str = "text",
    secrets: tuple[str, ...] = (),
    stream: TextIO | None = None,
) -> None:
    """Install one redacting handler on the root logger, replacing any earlier ones.

    httpx logs every request URL at INFO; those URLs contain the token, so httpx and httpcore
    are held at WARNING whatever ``level`` says (redaction would catch them anyway, but there
    is no point producing a line per long poll).
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter: logging.Formatter = (
        RedactingJsonFormatter(secrets) if fmt == "json" else RedactingTextFormatter(secrets)
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "apscheduler", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
