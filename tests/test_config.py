from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings

TOKEN = "123456789:" + "A" * 35


def load(env: dict[str, str], tmp_path: Path | None = None) -> object:
    return load_settings(env, env_file=None)


def test_defaults_match_the_documented_table() -> None:
    s = load_settings({"TELEGRAM_BOT_TOKEN": TOKEN}, env_file=None)
    assert s.api_base_url == "https://api.telegram.org"
    assert s.bot_base_url == "https://api.telegram.org/bot"
    assert s.admin_ids == frozenset()
    assert (s.data_dir, s.backup_dir, s.backup_keep) == (Path("data"), Path("backups"), 10)
    assert s.default_feeds == ()
    assert s.feed_poll_interval_s == 600
    assert (s.news_rate_count, s.news_rate_window_s) == (5, 60)
    assert s.allow_private_feeds is False
    assert s.feed_max_bytes == 5 * 1024 * 1024
    assert (s.log_level, s.log_format) == ("INFO", "text")


def test_all_values_parsed() -> None:
    s = load_settings(
        {
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_API_BASE_URL": "http://127.0.0.1:8081/",
            "BOT_ADMIN_IDS": " 1, 22 ,333",
            "DATA_DIR": "/srv/newsbot/d",
            "BACKUP_DIR": "/srv/newsbot/b",
            "BACKUP_KEEP": "3",
            "DEFAULT_FEEDS": "https://a.example/rss, https://b.example/atom",
            "FEED_POLL_INTERVAL": "60",
            "NEWS_RATE_LIMIT": "10 / 30",
            "ALLOW_PRIVATE_FEEDS": "yes",
            "FEED_MAX_BYTES": "2MiB",
            "LOG_LEVEL": "debug",
            "LOG_FORMAT": "JSON",
        },
        env_file=None,
    )
    assert s.bot_base_url == "http://127.0.0.1:8081/bot"
    assert s.admin_ids == {1, 22, 333}
    assert s.default_feeds == ("https://a.example/rss", "https://b.example/atom")
    assert (s.news_rate_count, s.news_rate_window_s) == (10, 30)
    assert s.allow_private_feeds is True
    assert s.feed_max_bytes == 2 * 1024 * 1024
    assert (s.log_level, s.log_format) == ("DEBUG", "json")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "TELEGRAM_BOT_TOKEN"),
        ({"TELEGRAM_BOT_TOKEN": "nope"}, "TELEGRAM_BOT_TOKEN"),
        ({"BOT_ADMIN_IDS": "1,abc"}, "BOT_ADMIN_IDS"),
        ({"BACKUP_KEEP": "0"}, "BACKUP_KEEP"),
        ({"BACKUP_KEEP": "ten"}, "BACKUP_KEEP"),
        ({"FEED_POLL_INTERVAL": "59"}, "FEED_POLL_INTERVAL"),
        ({"NEWS_RATE_LIMIT": "5 per minute"}, "NEWS_RATE_LIMIT"),
        ({"NEWS_RATE_LIMIT": "0/60"}, "NEWS_RATE_LIMIT"),
        ({"ALLOW_PRIVATE_FEEDS": "maybe"}, "ALLOW_PRIVATE_FEEDS"),
        ({"FEED_MAX_BYTES": "lots"}, "FEED_MAX_BYTES"),
        ({"FEED_MAX_BYTES": "10"}, "FEED_MAX_BYTES"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"DEFAULT_FEEDS": "ftp://x/feed"}, "DEFAULT_FEEDS"),
        ({"TELEGRAM_API_BASE_URL": "api.telegram.org"}, "TELEGRAM_API_BASE_URL"),
        ({"DATA_DIR": "same", "BACKUP_DIR": "same"}, "BACKUP_DIR"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    full = {"TELEGRAM_BOT_TOKEN": TOKEN, **env}
    if variable == "TELEGRAM_BOT_TOKEN":
        full = env
    with pytest.raises(ConfigError) as err:
        load_settings(full, env_file=None)
    assert str(err.value).startswith(variable + ":")


def test_malformed_token_is_not_echoed() -> None:
    bad = "123:" + "s3cr3t" * 3
    with pytest.raises(ConfigError) as err:
        load_settings({"TELEGRAM_BOT_TOKEN": bad}, env_file=None)
    assert bad not in str(err.value)
    assert "s3cr3t" not in str(err.value)


def test_env_file_fills_gaps_and_real_env_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"TELEGRAM_BOT_TOKEN={TOKEN}\nBACKUP_KEEP=4\nLOG_FORMAT=json\n")
    s = load_settings({"BACKUP_KEEP": "7"}, env_file=env_file)
    assert s.token == TOKEN
    assert s.backup_keep == 7
    assert s.log_format == "json"


def test_token_not_in_repr() -> None:
    s = load_settings({"TELEGRAM_BOT_TOKEN": TOKEN}, env_file=None)
    assert TOKEN not in repr(s)
    assert "A" * 35 not in repr(s)


def test_settings_are_immutable() -> None:
    s = load_settings({"TELEGRAM_BOT_TOKEN": TOKEN}, env_file=None)
    with pytest.raises(AttributeError):
        s.backup_keep = 3  # type: ignore[misc]
