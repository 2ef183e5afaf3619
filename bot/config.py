"""Typed, immutable settings read once from the environment.

Every tunable lives here so that the rest of the code never touches ``os.environ``.
A bad value stops the process at start (exit code 2) with one line naming the variable,
rather than surfacing later as a confusing runtime error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values

from bot.models import Delivery
from bot.services.schedule import ScheduleError, parse_delivery

DEFAULT_API_BASE_URL = "https://api.telegram.org"
MIN_POLL_INTERVAL_S = 60
MIN_DIGEST_INTERVAL_S = 60  # DIGEST_MIN_INTERVAL may not go below this
# Feeds fetched at once by a poll cycle. 8 keeps /news p99 under 50 ms on one core while
# 10,000 feeds that all answer at once are parsed (16: 54 ms, see benchmarks/README.md);
# against real servers fetches mostly wait on the network, so 8 still polls ~16 feeds/s at
# 0.5 s a fetch (9,600 per 10-minute interval): raise it for more feeds or slower ones.
DEFAULT_POLL_CONCURRENCY = 8
# MAX_FEEDS_PER_CHAT: how many feeds one chat may follow (each costs polls and storage).
DEFAULT_MAX_FEEDS_PER_CHAT = 50
MAX_MAX_FEEDS_PER_CHAT = 10_000
# Telegram tokens look like "123456789:AAH...": a numeric bot id, a colon, 30+ url-safe chars.
# The one definition of that shape: TELEGRAM_BOT_TOKEN must match it whole (fullmatch), and
# logs, errors and settings are searched for it anywhere (logging_setup, telegram_request).
TOKEN_IN_TEXT_RE = re.compile(r"\d{3,20}:[A-Za-z0-9_-]{30,100}")
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
# Telegram's rule for setWebhook's secret_token: 1-256 characters from this set.
WEBHOOK_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
# Ports api.telegram.org delivers webhooks to; a self-hosted Bot API server allows any.
TELEGRAM_WEBHOOK_PORTS = frozenset({80, 88, 443, 8443})
PROXY_SCHEMES = frozenset({"http", "https", "socks5", "socks5h"})
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

LogFormat = Literal["text", "json"]


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the bot can be configured with; see the README's configuration table."""

    token: str = field(repr=False)
    api_base_url: str = DEFAULT_API_BASE_URL
    admin_ids: frozenset[int] = frozenset()
    # Private mode (bot/handlers/access.py): when either set is non-empty, only updates from
    # these users or in these chats are served (operators always are). Both empty: everyone.
    allowed_users: frozenset[int] = frozenset()
    allowed_chats: frozenset[int] = frozenset()
    max_feeds_per_chat: int = DEFAULT_MAX_FEEDS_PER_CHAT
    data_dir: Path = Path("data")
    backup_dir: Path = Path("backups")
    backup_keep: int = 10
    backup_interval_s: int = 6 * 3600
    default_feeds: tuple[str, ...] = ()
    feed_poll_interval_s: int = 600
    feed_poll_concurrency: int = DEFAULT_POLL_CONCURRENCY
    news_rate_count: int = 5
    news_rate_window_s: int = 60
    # /add and /import share one per-user budget: each command costs fetches.
    add_rate_count: int = 10
    add_rate_window_s: int = 600
    allow_private_feeds: bool = False
    feed_max_bytes: int = 5 * 1024 * 1024
    feed_timeout_s: int = 20
    log_level: str = "INFO"
    log_format: LogFormat = "text"
    health_host: str = "127.0.0.1"
    health_port: int = 8080
    health_max_api_silence_s: int = 120
    digest_min_interval_s: int = 15 * 60
    default_delivery: Delivery = field(default_factory=Delivery)
    parser_processes: int = 2
    # Webhook mode when webhook_url is set (see bot/webhook.py); long polling otherwise.
    webhook_url: str | None = None
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = 8443
    webhook_secret: str | None = field(default=None, repr=False)
    # Used for Bot API calls only; feed fetching always connects directly.
    telegram_proxy_url: str | None = field(default=None, repr=False)

    @property
    def bot_base_url(self) -> str:
        """The URL PTB puts the token after (``<root>/bot<token>/<method>``)."""
        return f"{self.api_base_url}/bot"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values the log formatter must redact: the token, the webhook secret, proxy password."""
        proxy_password = urlsplit(self.telegram_proxy_url or "").password
        return tuple(value for value in (self.token, self.webhook_secret, proxy_password) if value)


def _ids(env: Mapping[str, str], name: str, what: str) -> frozenset[int]:
    """A comma-separated list of Telegram ids (users, or chats such as ``-100…``)."""
    ids: set[int] = set()
    for part in filter(None, (p.strip() for p in env.get(name, "").split(","))):
        if not re.fullmatch(r"-?\d{1,20}", part):
            raise ConfigError(f"{name}: expected comma-separated {what}, got {part!r}")
        ids.add(int(part))
    return frozenset(ids)


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}: must be between {lo} and {hi}, got {value}")
    return value


def _rate(env: Mapping[str, str], name: str, default: str) -> tuple[int, int]:
    """A per-user budget ``COUNT/SECONDS`` (at least 1 request, a window of 1 s to 1 day)."""
    raw = env.get(name, "").strip() or default
    rate = _RATE_RE.match(raw)
    if not rate or int(rate.group(1)) < 1 or not 1 <= int(rate.group(2)) <= 86400:
        raise ConfigError(f"{name}: expected COUNT/SECONDS like {default}, got {raw!r}")
    return int(rate.group(1)), int(rate.group(2))


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"{name}: expected true/false (1/0, yes/no, on/off), got {raw!r}")


def _size(env: Mapping[str, str], name: str, default: int) -> int:
    """Parse a byte size such as ``5242880``, ``512KiB`` or ``5MiB``."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    match = re.fullmatch(r"(\d+)\s*(B|KB|KIB|MB|MIB|K|M)?", raw.upper())
    if not match:
        raise ConfigError(f"{name}: expected a size like 5242880 or 5MiB, got {raw!r}")
    scale = {
        "": 1,
        "B": 1,
        "K": 1024,
        "KB": 1024,
        "KIB": 1024,
        "M": 1 << 20,
        "MB": 1 << 20,
        "MIB": 1 << 20,
    }[match.group(2) or ""]
    value = int(match.group(1)) * scale
    if not 1024 <= value <= 100 * (1 << 20):
        raise ConfigError(f"{name}: must be between 1KiB and 100MiB, got {raw!r}")
    return value


def _url(name: str, raw: str) -> str:
    if not re.match(r"^https?://[^\s/]+", raw):
        raise ConfigError(f"{name}: expected an http(s) URL, got {raw!r}")
    return raw


def _api_base_url(env: Mapping[str, str]) -> str:
    """The Bot API root; PTB's form (``.../bot``) is accepted too and cut back to the root.

    Without this, ``https://api.telegram.org/bot`` became ``.../bot/bot<token>``, every call
    answered 404, and PTB reported it as a rejected token.
    """
    raw = env.get("TELEGRAM_API_BASE_URL", "").strip().rstrip("/")
    if TOKEN_IN_TEXT_RE.search(raw):
        raise ConfigError("TELEGRAM_API_BASE_URL: must not contain the bot token")
    root = raw.removesuffix("/bot").rstrip("/") or DEFAULT_API_BASE_URL
    return _url("TELEGRAM_API_BASE_URL", root)


def _proxy_url(env: Mapping[str, str]) -> str | None:
    """``TELEGRAM_PROXY_URL``; never echoed, as it may carry a password."""
    raw = env.get("TELEGRAM_PROXY_URL", "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme.lower() not in PROXY_SCHEMES or not parts.hostname:
        raise ConfigError(
            "TELEGRAM_PROXY_URL: expected http://, https://, socks5:// or socks5h:// "
            "followed by a host (e.g. socks5://127.0.0.1:1080)"
        )
    try:
        _ = parts.port
    except ValueError:
        raise ConfigError("TELEGRAM_PROXY_URL: the port is not a number in 1-65535") from None
    return raw


def _webhook_url(env: Mapping[str, str], api_base_url: str) -> str | None:
    """``TELEGRAM_WEBHOOK_URL``: HTTPS on a port Telegram delivers to, no token in it.

    A self-hosted Bot API server (any other ``TELEGRAM_API_BASE_URL``) also delivers over
    plain HTTP and to any port, so those rules apply only to api.telegram.org.
    """
    raw = env.get("TELEGRAM_WEBHOOK_URL", "").strip()
    if not raw:
        return None
    name = "TELEGRAM_WEBHOOK_URL"
    if TOKEN_IN_TEXT_RE.search(raw):
        raise ConfigError(
            f"{name}: must not contain the bot token; the secret token authenticates "
            "Telegram, use a plain path such as /telegram"
        )
    parts = urlsplit(raw)
    official = api_base_url == DEFAULT_API_BASE_URL
    schemes = {"https"} if official else {"https", "http"}
    if parts.scheme not in schemes or not parts.hostname or parts.fragment or parts.username:
        wanted = "an https://host/path URL" if official else "an http(s)://host/path URL"
        raise ConfigError(f"{name}: expected {wanted}, got {raw!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ConfigError(f"{name}: the port is not a number in 1-65535, got {raw!r}") from None
    if official and port not in TELEGRAM_WEBHOOK_PORTS:
        raise ConfigError(f"{name}: Telegram delivers only to ports 443, 80, 88 or 8443")
    return raw


def _webhook_secret(env: Mapping[str, str]) -> str | None:
    raw = env.get("TELEGRAM_WEBHOOK_SECRET", "").strip()
    if raw and not WEBHOOK_SECRET_RE.match(raw):
        # Not echoed: it is a secret even when malformed.
        raise ConfigError(
            "TELEGRAM_WEBHOOK_SECRET: expected 1-256 characters from A-Z, a-z, 0-9, _ and -"
        )
    return raw or None


def _token(env: Mapping[str, str]) -> str:
    raw = env.get("TELEGRAM_BOT_TOKEN", "").strip()
    if not raw:
        raise ConfigError("TELEGRAM_BOT_TOKEN: is required (get one from @BotFather)")
    if not TOKEN_IN_TEXT_RE.fullmatch(raw):
        # Never echo the value: a malformed token is still probably a secret.
        raise ConfigError(
            "TELEGRAM_BOT_TOKEN: malformed (expected '<digits>:<30+ letters, digits, _ or ->')"
        )
    return raw


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
) -> Settings:
    """Build :class:`Settings` from the environment, with ``env_file`` filling the gaps.

    Real environment variables win over the ``.env`` file, as in docker and most tools.

    Raises:
        ConfigError: naming the first variable that is missing or malformed.
    """
    env: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        env.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    env.update(os.environ if environ is None else environ)

    api = _api_base_url(env)
    admin_ids = _ids(env, "BOT_ADMIN_IDS", "user ids")
    feeds = tuple(
        _url("DEFAULT_FEEDS", p)
        for p in filter(None, (p.strip() for p in env.get("DEFAULT_FEEDS", "").split(",")))
    )
    news_rate = _rate(env, "NEWS_RATE_LIMIT", "5/60")
    add_rate = _rate(env, "ADD_RATE_LIMIT", "10/600")
    log_level = env.get("LOG_LEVEL", "").strip().upper() or "INFO"
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ConfigError(
            f"LOG_LEVEL: expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got {log_level!r}"
        )
    log_format = env.get("LOG_FORMAT", "").strip().lower() or "text"
    if log_format not in {"text", "json"}:
        raise ConfigError(f"LOG_FORMAT: expected text or json, got {log_format!r}")
    data_dir = Path(env.get("DATA_DIR", "").strip() or "data")
    backup_dir = Path(env.get("BACKUP_DIR", "").strip() or "backups")
    if data_dir.resolve() == backup_dir.resolve():
        raise ConfigError("BACKUP_DIR: must differ from DATA_DIR")
    health_port = _int(env, "HEALTH_PORT", 8080, 0, 65535)
    webhook_port = _int(env, "WEBHOOK_PORT", 8443, 1, 65535)
    webhook_url = _webhook_url(env, api)
    if webhook_url and webhook_port == health_port:
        raise ConfigError("WEBHOOK_PORT: must differ from HEALTH_PORT")

    min_interval = _int(env, "DIGEST_MIN_INTERVAL", 15 * 60, MIN_DIGEST_INTERVAL_S, 7 * 86400)
    default_raw = env.get("DEFAULT_DELIVERY", "").strip() or "instant"
    try:
        parsed_delivery = parse_delivery(default_raw.split(), min_interval)
        if parsed_delivery is None:  # "show" is a /digest word, not a delivery mode
            raise ScheduleError(default_raw)
        default_delivery = parsed_delivery
    except ScheduleError:
        raise ConfigError(
            "DEFAULT_DELIVERY: expected instant, 'every <interval>' (e.g. every 1h) or "
            f"'at HH:MM', at least DIGEST_MIN_INTERVAL apart; got {default_raw!r}"
        ) from None

    return Settings(
        token=_token(env),
        api_base_url=api,
        admin_ids=admin_ids,
        allowed_users=_ids(env, "BOT_ALLOWED_USERS", "user ids"),
        allowed_chats=_ids(env, "BOT_ALLOWED_CHATS", "chat ids (e.g. -1001234567890)"),
        max_feeds_per_chat=_int(
            env, "MAX_FEEDS_PER_CHAT", DEFAULT_MAX_FEEDS_PER_CHAT, 1, MAX_MAX_FEEDS_PER_CHAT
        ),
        data_dir=data_dir,
        backup_dir=backup_dir,
        backup_keep=_int(env, "BACKUP_KEEP", 10, 1, 1000),
        backup_interval_s=_int(env, "BACKUP_INTERVAL", 6 * 3600, 60, 7 * 86400),
        default_feeds=feeds,
        feed_poll_interval_s=_int(env, "FEED_POLL_INTERVAL", 600, MIN_POLL_INTERVAL_S, 86400),
        feed_poll_concurrency=_int(env, "FEED_POLL_CONCURRENCY", DEFAULT_POLL_CONCURRENCY, 1, 256),
        news_rate_count=news_rate[0],
        news_rate_window_s=news_rate[1],
        add_rate_count=add_rate[0],
        add_rate_window_s=add_rate[1],
        allow_private_feeds=_bool(env, "ALLOW_PRIVATE_FEEDS"),
        feed_max_bytes=_size(env, "FEED_MAX_BYTES", 5 * 1024 * 1024),
        feed_timeout_s=_int(env, "FEED_TIMEOUT", 20, 1, 300),
        log_level=log_level,
        log_format="json" if log_format == "json" else "text",
        health_host=env.get("HEALTH_HOST", "").strip() or "127.0.0.1",
        health_port=health_port,
        health_max_api_silence_s=_int(env, "HEALTH_MAX_API_SILENCE", 120, 15, 86400),
        digest_min_interval_s=min_interval,
        default_delivery=default_delivery,
        parser_processes=_int(env, "PARSER_PROCESSES", 2, 0, 16),
        webhook_url=webhook_url,
        webhook_listen=env.get("WEBHOOK_LISTEN", "").strip() or "127.0.0.1",
        webhook_port=webhook_port,
        webhook_secret=_webhook_secret(env),
        telegram_proxy_url=_proxy_url(env),
    )
