"""Telegram's side for the benchmarks: an in-memory Bot API transport, ``/news`` updates, and
the fake Bot API in its own process.

* :class:`InMemoryRequest` answers Bot API calls inside the bot's process (no HTTP), so a
  benchmark measures the bot and PTB, not a server.
* :class:`FakeBotProcess` runs ``python -m tests.helpers.fake_bot_api`` in another process
  (optionally enforcing Telegram's flood limits), so the fake's CPU does not count against
  the bot; it is driven through its ``/_control/`` endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
from telegram import Bot, Update
from telegram.request import BaseRequest, RequestData

from benchmarks._common import pin_process

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
# A made-up token of the right shape: only ever shown to local fakes.
TOKEN = "123456789:" + "B" * 35
# Never contacted when InMemoryRequest is the transport.
API_BASE_URL = "http://127.0.0.1:9"
BOT_USER: dict[str, Any] = {
    "id": 123456789,
    "is_bot": True,
    "first_name": "NewsBot Bench",
    "username": "newsbot_bench_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
NEWS_MARK = "📰 Latest"
START_TIMEOUT_S = 30.0
MessageKey = tuple[int, int]  # (chat id, message id of the command it answers; 0 if none)


class InMemoryRequest(BaseRequest):
    """A Bot API transport that answers in memory and timestamps every ``sendMessage``.

    Answers ``getMe``, ``sendMessage`` (a valid Message) and anything else with ``true``, as
    Telegram would, so PTB's request/response code runs in full; only the HTTP round trip is
    missing. Replies are keyed by ``(chat_id, reply_parameters.message_id)``: the bot quotes
    the command it answers in groups. Messages that quote nothing (deliveries) are counted in
    ``unquoted``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sent_at: dict[MessageKey, float] = {}
        self.texts: dict[MessageKey, str] = {}
        self.calls: Counter[str] = Counter()
        self.unquoted = 0
        self._message_ids: Counter[int] = Counter()
        self._wanted = 0
        self._enough: asyncio.Event | None = None

    @property
    def read_timeout(self) -> float:
        """Nothing here ever waits, but PTB asks."""
        return 5.0

    async def initialize(self) -> None:
        """Nothing to open."""

    async def shutdown(self) -> None:
        """Nothing to close."""

    def expect(self, total_replies: int) -> asyncio.Event:
        """An event set once ``total_replies`` quoted replies have been sent in all."""
        self._wanted = total_replies
        self._enough = asyncio.Event()
        if len(self.sent_at) >= total_replies:
            self._enough.set()
        return self._enough

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        # PTB types these as ODVInput[float] from a private module.
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Answer one Bot API call with a Telegram-shaped JSON body."""
        endpoint = url.rsplit("/", 1)[-1].lower()
        self.calls[endpoint] += 1
        params = request_data.parameters if request_data is not None else {}
        result: Any = True
        if endpoint == "getme":
            result = BOT_USER
        elif endpoint == "sendmessage":
            result = self._send(params)
        return 200, json.dumps({"ok": True, "result": result}).encode()

    def _send(self, params: dict[str, Any]) -> dict[str, Any]:
        now = time.perf_counter()
        chat_id = int(params["chat_id"])
        quoted = params.get("reply_parameters")
        if isinstance(quoted, dict):
            key = (chat_id, int(quoted["message_id"]))
            self.sent_at.setdefault(key, now)
            self.texts.setdefault(key, str(params.get("text", "")))
            if self._enough is not None and len(self.sent_at) >= self._wanted:
                self._enough.set()
        else:
            self.unquoted += 1
        self._message_ids[chat_id] += 1
        return {
            "message_id": 1_000_000 + self._message_ids[chat_id],
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "group", "title": group_title(chat_id)},
            "from": BOT_USER,
            "text": str(params.get("text", "")),
        }


def group_title(chat_id: int) -> str:
    """The title the benchmarks give a group (stored chats and updates must agree)."""
    return f"Bench group {-chat_id}"


def news_update_data(chat_id: int, user_id: int, message_id: int) -> dict[str, Any]:
    """A ``/news`` message from ``user_id`` in group ``chat_id`` (no ``update_id``)."""
    return {
        "message": {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "group", "title": group_title(chat_id)},
            "from": {"id": user_id, "is_bot": False, "first_name": f"U{user_id}"},
            "text": "/news",
            "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
        }
    }


def news_update(bot: Bot, update_id: int, chat_id: int, user_id: int, message_id: int) -> Update:
    """The same ``/news`` as a PTB ``Update`` (to put on ``app.update_queue``)."""
    data = {"update_id": update_id, **news_update_data(chat_id, user_id, message_id)}
    update = Update.de_json(data, bot)
    assert update is not None
    return update


class FakeBotProcess:
    """``python -m tests.helpers.fake_bot_api`` in its own process, pinned to ``cpu``.

    Use as ``async with FakeBotProcess(tmp, enforce_limits=True) as fake:``; ``fake.base_url``
    is the API base URL for the bot and ``fake.http`` an httpx client for ``/_control/``.
    """

    def __init__(self, log_dir: Path, *, enforce_limits: bool = False, cpu: int | None = None):
        self.log_dir = log_dir
        self.enforce_limits = enforce_limits
        self.cpu = cpu
        self.base_url = ""
        self._proc: asyncio.subprocess.Process | None = None
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        """A client for the fake's control endpoints."""
        if self._http is None:
            raise RuntimeError("fake Bot API not started")
        return self._http

    @property
    def pid(self) -> int:
        """The fake's process id."""
        if self._proc is None:
            raise RuntimeError("fake Bot API not started")
        return self._proc.pid

    async def start(self) -> None:
        """Start the process and wait for its ``READY <base_url>`` line."""
        env = {**os.environ, "FAKE_BOT_TOKEN": TOKEN, "PYTHONPATH": str(REPO_ROOT)}
        argv = [sys.executable, "-m", "tests.helpers.fake_bot_api", "--port", "0"]
        if self.enforce_limits:
            argv.append("--enforce-limits")
        with (self.log_dir / "fake.log").open("wb") as log:
            self._proc = await asyncio.create_subprocess_exec(
                *argv, cwd=REPO_ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=log
            )
        pin_process(self._proc.pid, self.cpu)
        assert self._proc.stdout is not None
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), START_TIMEOUT_S)
        except TimeoutError:
            line = b""
        text = line.decode().strip()
        if not text.startswith("READY "):
            await self.stop()
            raise RuntimeError(f"fake Bot API did not start (said {text!r}); see its fake.log")
        self.base_url = text.removeprefix("READY ")
        self._http = httpx.AsyncClient(base_url=self.base_url, trust_env=False, timeout=60)

    async def control(self, action: str, **params: str) -> Any:
        """``GET /_control/<action>`` → its ``result``."""
        response = await self.http.get(f"/_control/{action}", params=params)
        response.raise_for_status()
        return response.json()["result"]

    async def post(self, action: str, body: Any) -> Any:
        """``POST /_control/<action>`` with a JSON body → its ``result``."""
        response = await self.http.post(f"/_control/{action}", json=body)
        response.raise_for_status()
        return response.json()["result"]

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; close the control client."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
