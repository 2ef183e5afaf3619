import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.logging_setup import REDACTED, configure_logging

TOKEN = "987654321:" + "Zz_-" * 9


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_text_lines_redact_token_in_message_args_and_traceback(restore_root: None) -> None:
    out = io.StringIO()
    configure_logging("DEBUG", "text", secrets=(TOKEN,), stream=out)
    log = logging.getLogger("t")
    log.info("calling https://api.telegram.org/bot%s/getMe", TOKEN)
    try:
        raise RuntimeError(f"failed url /bot{TOKEN}/sendMessage")
    except RuntimeError:
        log.exception("boom")
    log.info("event", extra={"event": "x", "url": f"/bot{TOKEN}/x"})
    text = out.getvalue()
    assert TOKEN not in text
    assert text.count(REDACTED) >= 3
    assert "event=x" in text


def test_unconfigured_token_shapes_are_redacted_too(restore_root: None) -> None:
    out = io.StringIO()
    configure_logging("INFO", "text", stream=out)
    other = "111222333:" + "q" * 35
    logging.getLogger("t").warning("leak %s", other)
    assert other not in out.getvalue()


def test_json_one_object_per_line_with_extras(restore_root: None) -> None:
    out = io.StringIO()
    configure_logging("INFO", "json", secrets=(TOKEN,), stream=out)
    logging.getLogger("bot.handlers.news").warning(
        "news rate limited",
        extra={"event": "news_rate_limited", "user_id": 7, "chat_id": -100, "token": TOKEN},
    )
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "news_rate_limited"
    assert record["user_id"] == 7
    assert record["level"] == "WARNING"
    assert record["logger"] == "bot.handlers.news"
    assert record["token"] == REDACTED


def test_httpx_request_lines_are_silenced(restore_root: None) -> None:
    out = io.StringIO()
    configure_logging("DEBUG", "text", secrets=(TOKEN,), stream=out)
    logging.getLogger("httpx").info("HTTP Request: POST https://x/bot%s/getUpdates", TOKEN)
    assert out.getvalue() == ""
