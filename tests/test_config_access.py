"""Private-mode allow-lists and the per-chat feed limit in the configuration."""

from __future__ import annotations

import pytest

from bot.config import DEFAULT_MAX_FEEDS_PER_CHAT, ConfigError, load_settings

TOKEN = "123456789:" + "A" * 35


def test_defaults_serve_everyone_with_50_feeds_per_chat() -> None:
    s = load_settings({"TELEGRAM_BOT_TOKEN": TOKEN}, env_file=None)
    assert (s.allowed_users, s.allowed_chats) == (frozenset(), frozenset())
    assert s.max_feeds_per_chat == DEFAULT_MAX_FEEDS_PER_CHAT == 50


def test_lists_and_limit_are_parsed() -> None:
    s = load_settings(
        {
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "BOT_ALLOWED_USERS": " 11, 22 ,",
            "BOT_ALLOWED_CHATS": "-1001234567890,-42",
            "MAX_FEEDS_PER_CHAT": "200",
        },
        env_file=None,
    )
    assert s.allowed_users == frozenset({11, 22})
    assert s.allowed_chats == frozenset({-1001234567890, -42})
    assert s.max_feeds_per_chat == 200


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BOT_ALLOWED_USERS": "11,@bob"}, "BOT_ALLOWED_USERS: expected comma-separated user ids"),
        ({"BOT_ALLOWED_CHATS": "@channel"}, "BOT_ALLOWED_CHATS: expected comma-separated chat"),
        ({"MAX_FEEDS_PER_CHAT": "0"}, "MAX_FEEDS_PER_CHAT: must be between 1 and 10000"),
        ({"MAX_FEEDS_PER_CHAT": "many"}, "MAX_FEEDS_PER_CHAT: expected a whole number"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings({"TELEGRAM_BOT_TOKEN": TOKEN, **env}, env_file=None)
