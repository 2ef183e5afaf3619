"""Settings added for operations: webhook mode, the Telegram proxy and Bot API base-URL forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import DEFAULT_API_BASE_URL, ConfigError, Settings, load_settings
from tests.helpers.bot_runner import make_settings, running_bot
from tests.helpers.fake_bot_api import FakeBotAPI

TOKEN = "123456789:" + "A" * 35


def load(**env: str) -> Settings:
    return load_settings({"TELEGRAM_BOT_TOKEN": TOKEN, **env}, env_file=None)


@pytest.mark.parametrize(
    ("given", "root"),
    [
        ("", DEFAULT_API_BASE_URL),
        ("https://api.telegram.org", DEFAULT_API_BASE_URL),
        ("https://api.telegram.org/", DEFAULT_API_BASE_URL),
        # PTB's own base_url form: today's "token rejected" trap.
        ("https://api.telegram.org/bot", DEFAULT_API_BASE_URL),
        ("https://api.telegram.org/bot/", DEFAULT_API_BASE_URL),
        ("http://127.0.0.1:8081", "http://127.0.0.1:8081"),
        ("http://127.0.0.1:8081/bot", "http://127.0.0.1:8081"),
        ("https://tg.example.net/api/bot", "https://tg.example.net/api"),
    ],
)
def test_api_base_url_accepts_the_root_and_ptbs_bot_form(given: str, root: str) -> None:
    settings = load(TELEGRAM_API_BASE_URL=given)
    assert settings.api_base_url == root
    assert settings.bot_base_url == f"{root}/bot"


def test_api_base_url_with_the_token_in_it_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as err:
        load(TELEGRAM_API_BASE_URL=f"https://api.telegram.org/bot{TOKEN}")
    assert str(err.value).startswith("TELEGRAM_API_BASE_URL:")
    assert TOKEN.split(":")[1] not in str(err.value)


def test_webhook_defaults_mean_polling() -> None:
    settings = load()
    assert settings.webhook_url is None
    assert (settings.webhook_listen, settings.webhook_port) == ("127.0.0.1", 8443)
    assert settings.webhook_secret is None
    assert settings.telegram_proxy_url is None


def test_webhook_settings_parsed() -> None:
    secret = "s3cret_-" * 4
    settings = load(
        TELEGRAM_WEBHOOK_URL="https://bot.example.org/telegram",
        WEBHOOK_LISTEN="0.0.0.0",
        WEBHOOK_PORT="9000",
        TELEGRAM_WEBHOOK_SECRET=secret,
    )
    assert settings.webhook_url == "https://bot.example.org/telegram"
    assert (settings.webhook_listen, settings.webhook_port) == ("0.0.0.0", 9000)
    assert settings.webhook_secret == secret
    assert secret in settings.secrets
    assert secret not in repr(settings)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"TELEGRAM_WEBHOOK_URL": "http://bot.example.org/hook"}, "TELEGRAM_WEBHOOK_URL"),
        ({"TELEGRAM_WEBHOOK_URL": "bot.example.org/hook"}, "TELEGRAM_WEBHOOK_URL"),
        ({"TELEGRAM_WEBHOOK_URL": "https://bot.example.org:9443/h"}, "TELEGRAM_WEBHOOK_URL"),
        ({"TELEGRAM_WEBHOOK_URL": "https://bot.example.org:x/h"}, "TELEGRAM_WEBHOOK_URL"),
        ({"TELEGRAM_WEBHOOK_URL": "https://u:p@bot.example.org/h"}, "TELEGRAM_WEBHOOK_URL"),
        ({"TELEGRAM_WEBHOOK_URL": f"https://bot.example.org/{TOKEN}"}, "TELEGRAM_WEBHOOK_URL"),
        ({"TELEGRAM_WEBHOOK_SECRET": "has space"}, "TELEGRAM_WEBHOOK_SECRET"),
        ({"TELEGRAM_WEBHOOK_SECRET": "x" * 257}, "TELEGRAM_WEBHOOK_SECRET"),
        ({"WEBHOOK_PORT": "0"}, "WEBHOOK_PORT"),
        ({"WEBHOOK_PORT": "http"}, "WEBHOOK_PORT"),
        (
            {"TELEGRAM_WEBHOOK_URL": "https://bot.example.org/h", "WEBHOOK_PORT": "8080"},
            "WEBHOOK_PORT",  # the same as HEALTH_PORT's default
        ),
        ({"TELEGRAM_PROXY_URL": "ftp://proxy.example:21"}, "TELEGRAM_PROXY_URL"),
        ({"TELEGRAM_PROXY_URL": "socks5://"}, "TELEGRAM_PROXY_URL"),
        ({"TELEGRAM_PROXY_URL": "socks5://proxy:99999"}, "TELEGRAM_PROXY_URL"),
    ],
)
def test_bad_operations_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(**env)
    message = str(err.value)
    assert message.startswith(f"{variable}:")
    assert "\n" not in message
    assert TOKEN.split(":")[1] not in message
    if variable == "TELEGRAM_WEBHOOK_SECRET":
        assert env[variable] not in message


def test_a_self_hosted_bot_api_allows_plain_http_webhooks_on_any_port() -> None:
    settings = load(
        TELEGRAM_API_BASE_URL="http://127.0.0.1:8081",
        TELEGRAM_WEBHOOK_URL="http://127.0.0.1:9443/hook",
    )
    assert settings.webhook_url == "http://127.0.0.1:9443/hook"


@pytest.mark.parametrize(
    "proxy",
    [
        "http://proxy.internal:3128",
        "https://proxy.internal:3129",
        "socks5://127.0.0.1:1080",
        "socks5h://user:pa55word@127.0.0.1:1080",
    ],
)
def test_proxy_schemes_ptb_supports_are_accepted(proxy: str) -> None:
    settings = load(TELEGRAM_PROXY_URL=proxy)
    assert settings.telegram_proxy_url == proxy
    assert proxy not in repr(settings)


def test_proxy_password_is_redacted_and_never_echoed() -> None:
    settings = load(TELEGRAM_PROXY_URL="socks5h://user:pa55word@127.0.0.1:1080")
    assert "pa55word" in settings.secrets
    with pytest.raises(ConfigError) as err:
        load(TELEGRAM_PROXY_URL="gopher://user:pa55word@127.0.0.1:1080")
    assert "pa55word" not in str(err.value)


async def test_the_bot_form_of_the_base_url_reaches_the_api(
    fake_api: FakeBotAPI, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, f"{fake_api.base_url}/bot/", fake_api.token)
    async with running_bot(settings) as app:
        fake_api.send_command("/start", chat_id=5, user_id=5)
        await fake_api.wait_for_messages(1, chat_id=5)
    assert app.bot.username == "newsbot_test_bot"  # getMe answered: no "token rejected"
