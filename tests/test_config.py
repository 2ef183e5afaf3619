import os
from pathlib import Path

import pytest

from bot.__main__ import EXIT_CONFIG, main
from bot.config import ConfigError, load_settings
from bot.models import Delivery

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
    assert s.feed_poll_concurrency == 8
    assert (s.news_rate_count, s.news_rate_window_s) == (5, 60)
    assert (s.add_rate_count, s.add_rate_window_s) == (10, 600)
    assert s.allow_private_feeds is False
    assert s.feed_max_bytes == 5 * 1024 * 1024
    assert (s.log_level, s.log_format) == ("INFO", "text")
    assert s.digest_min_interval_s == 900
    assert s.default_delivery == Delivery()
    assert s.parser_processes == 2


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
            "FEED_POLL_CONCURRENCY": "32",
            "NEWS_RATE_LIMIT": "10 / 30",
            "ADD_RATE_LIMIT": "3/120",
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
    assert s.feed_poll_concurrency == 32
    assert (s.add_rate_count, s.add_rate_window_s) == (3, 120)
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
        ({"FEED_POLL_CONCURRENCY": "0"}, "FEED_POLL_CONCURRENCY"),
        ({"FEED_POLL_CONCURRENCY": "many"}, "FEED_POLL_CONCURRENCY"),
        ({"NEWS_RATE_LIMIT": "5 per minute"}, "NEWS_RATE_LIMIT"),
        ({"NEWS_RATE_LIMIT": "0/60"}, "NEWS_RATE_LIMIT"),
        ({"ADD_RATE_LIMIT": "10"}, "ADD_RATE_LIMIT"),
        ({"ADD_RATE_LIMIT": "10/0"}, "ADD_RATE_LIMIT"),
        ({"ADD_RATE_LIMIT": "10/86401"}, "ADD_RATE_LIMIT"),
        ({"ALLOW_PRIVATE_FEEDS": "maybe"}, "ALLOW_PRIVATE_FEEDS"),
        ({"FEED_MAX_BYTES": "lots"}, "FEED_MAX_BYTES"),
        ({"FEED_MAX_BYTES": "10"}, "FEED_MAX_BYTES"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"DEFAULT_FEEDS": "ftp://x/feed"}, "DEFAULT_FEEDS"),
        ({"TELEGRAM_API_BASE_URL": "api.telegram.org"}, "TELEGRAM_API_BASE_URL"),
        ({"DATA_DIR": "same", "BACKUP_DIR": "same"}, "BACKUP_DIR"),
        ({"DIGEST_MIN_INTERVAL": "59"}, "DIGEST_MIN_INTERVAL"),
        ({"DIGEST_MIN_INTERVAL": "0"}, "DIGEST_MIN_INTERVAL"),
        ({"DIGEST_MIN_INTERVAL": "604801"}, "DIGEST_MIN_INTERVAL"),
        ({"DIGEST_MIN_INTERVAL": "15m"}, "DIGEST_MIN_INTERVAL"),
        ({"DEFAULT_DELIVERY": "weekly"}, "DEFAULT_DELIVERY"),
        ({"DEFAULT_DELIVERY": "show"}, "DEFAULT_DELIVERY"),
        ({"DEFAULT_DELIVERY": "at 25:00"}, "DEFAULT_DELIVERY"),
        ({"DEFAULT_DELIVERY": "every 5m"}, "DEFAULT_DELIVERY"),
        ({"DEFAULT_DELIVERY": "every 8d"}, "DEFAULT_DELIVERY"),
        ({"DEFAULT_DELIVERY": "every 2m", "DIGEST_MIN_INTERVAL": "180"}, "DEFAULT_DELIVERY"),
        ({"PARSER_PROCESSES": "-1"}, "PARSER_PROCESSES"),
        ({"PARSER_PROCESSES": "17"}, "PARSER_PROCESSES"),
        ({"PARSER_PROCESSES": "two"}, "PARSER_PROCESSES"),
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


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, (900, Delivery(), 2)),
        ({"DIGEST_MIN_INTERVAL": "60"}, (60, Delivery(), 2)),
        ({"DIGEST_MIN_INTERVAL": "604800"}, (604800, Delivery(), 2)),
        ({"DEFAULT_DELIVERY": "instant"}, (900, Delivery(), 2)),
        ({"DEFAULT_DELIVERY": "every 1h"}, (900, Delivery("every", interval_s=3600), 2)),
        ({"DEFAULT_DELIVERY": " EVERY 2 hours "}, (900, Delivery("every", interval_s=7200), 2)),
        ({"DEFAULT_DELIVERY": "at 8:00"}, (900, Delivery("at", at="08:00"), 2)),
        (
            {"DEFAULT_DELIVERY": "every 1m", "DIGEST_MIN_INTERVAL": "60"},
            (60, Delivery("every", interval_s=60), 2),
        ),
        ({"PARSER_PROCESSES": "0"}, (900, Delivery(), 0)),
        ({"PARSER_PROCESSES": "16"}, (900, Delivery(), 16)),
    ],
)
def test_delivery_settings(env: dict[str, str], expected: tuple[int, Delivery, int]) -> None:
    s = load_settings({"TELEGRAM_BOT_TOKEN": TOKEN, **env}, env_file=None)
    assert (s.digest_min_interval_s, s.default_delivery, s.parser_processes) == expected


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DIGEST_MIN_INTERVAL": "30"}, "DIGEST_MIN_INTERVAL"),
        ({"DEFAULT_DELIVERY": "hourly"}, "DEFAULT_DELIVERY"),
        ({"DEFAULT_DELIVERY": "every 10m"}, "DEFAULT_DELIVERY"),
        ({"PARSER_PROCESSES": "100"}, "PARSER_PROCESSES"),
    ],
)
def test_bad_delivery_settings_exit_2_with_one_line(
    env: dict[str, str],
    variable: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env file here
    data = tmp_path / "data"
    full = {"TELEGRAM_BOT_TOKEN": TOKEN, "DATA_DIR": str(data), **env}
    monkeypatch.setattr(os, "environ", full)
    assert main() == EXIT_CONFIG == 2
    out, err = capsys.readouterr()
    assert out == ""
    [line] = err.strip().splitlines()
    assert line.startswith(f"newsbot: configuration error: {variable}:")
    assert TOKEN not in err
    assert not data.exists()  # nothing was started
