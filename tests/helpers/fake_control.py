"""The out-of-process half of the fake Bot API: the standalone server and its control API.

Container and load tests run the fake in another process::

    python -m tests.helpers.fake_bot_api --port 0 --token 123:ABC [--enforce-limits]

which prints ``READY http://127.0.0.1:<port>`` once bound and serves, beside the Bot API, a
small JSON control API under ``/_control/`` (:meth:`FakeControl.handle`) so the driving
process can queue updates, read what was sent and set behaviours. Answers are
``{"ok": true, "result": ...}``, or ``{"ok": false, "error": ...}`` with 400 for bad
arguments and 404 for an unknown control. Everything runs on the fake's event loop; no locks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from tests.helpers.fake_bot_api import FakeBotAPI

CONTROL_PREFIX = "/_control/"


def _dumps_control(value: Any) -> str:
    """JSON for the control API; uploaded file bytes are summarised, not dumped."""

    def summarise(obj: Any) -> Any:
        if isinstance(obj, bytes | bytearray):
            return f"<{len(obj)} bytes>"
        raise TypeError(f"not JSON serialisable: {type(obj).__name__}")

    return json.dumps(value, default=summarise)


class FakeControl:
    """The ``/_control/`` endpoints of one :class:`FakeBotAPI`."""

    def __init__(self, api: FakeBotAPI) -> None:
        self._api = api

    async def handle(self, request: web.Request) -> web.Response:
        """JSON control API for out-of-process drivers.

        ``POST /_control/updates`` (an update or a list) → ``{"update_ids": [...]}``;
        ``POST /_control/command`` (send_command's arguments) → ``{"update_id": n}``;
        ``GET /_control/sent[?chat_id=]``; ``GET /_control/calls[?method=]``;
        ``POST /_control/started`` ``{"user_ids": [...]}`` (start_private_chat for each);
        ``POST /_control/hang`` ``{"hang": bool}``; ``POST /_control/fail`` (fail_next's
        arguments); ``POST /_control/delay`` ``{"method": m, "seconds": s}``;
        ``POST /_control/limits`` (set_limits' arguments) and ``GET /_control/limits`` →
        ``{"enforce": bool, "limits": {...}, "hits": {"bot": n, "group": n, "chat": n}}``.
        """
        action = request.path.removeprefix(CONTROL_PREFIX)
        body: Any = None
        if request.method == "POST":
            try:
                body = await request.json()
            except ValueError:
                return web.json_response({"ok": False, "error": "invalid JSON"}, status=400)
        try:
            result = self._action(action, request.method, body, request.query)
        except (KeyError, TypeError, ValueError) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        if result is None:
            return web.json_response({"ok": False, "error": "unknown control"}, status=404)
        return web.json_response({"ok": True, "result": result}, dumps=_dumps_control)

    def _action(
        self, action: str, method: str, body: Any, query: Any
    ) -> dict[str, Any] | list[Any] | bool | None:
        api = self._api
        if (action, method) == ("updates", "POST"):
            updates = body if isinstance(body, list) else [body]
            if not all(isinstance(u, dict) for u in updates):
                raise TypeError("updates must be JSON objects")
            return {"update_ids": [api.add_update(u) for u in updates]}
        if (action, method) == ("command", "POST"):
            return {"update_id": api.send_command(**body)}
        if (action, method) == ("sent", "GET"):
            chat_id = int(query["chat_id"]) if "chat_id" in query else None
            return api.sent_messages(chat_id)
        if (action, method) == ("calls", "GET"):
            calls = api.calls_to(query["method"]) if "method" in query else api.calls
            return [
                {"method": c.method, "params": c.params, "time": c.time, "status": c.status}
                for c in calls
            ]
        if (action, method) == ("started", "POST"):
            for user_id in body["user_ids"]:
                api.start_private_chat(int(user_id))
            return True
        if (action, method) == ("hang", "POST"):
            api.hang(bool(body["hang"]))
            return True
        if (action, method) == ("fail", "POST"):
            api.fail_next(**body)
            return True
        if (action, method) == ("delay", "POST"):
            api.set_delay(str(body["method"]), float(body["seconds"]))
            return True
        if action == "limits" and method in ("GET", "POST"):
            if method == "POST":
                api.set_limits(**(body or {}))
            return {
                "enforce": api.enforce_limits,
                "limits": asdict(api.limits),
                "hits": dict(api.limit_hits_by_scope),
            }
        return None


# --------------------------------------------------------------------------- standalone


async def _serve_forever(token: str, host: str, port: int, enforce_limits: bool) -> None:
    from tests.helpers.fake_bot_api import FakeBotAPI  # noqa: PLC0415 - it imports this module

    fake = FakeBotAPI(token, host=host, port=port, enforce_limits=enforce_limits)
    await fake.start()
    print(f"READY {fake.base_url}", flush=True)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    try:
        await done.wait()
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the fake standalone until SIGTERM/SIGINT; print ``READY <base_url>`` when bound."""
    from tests.helpers.fake_bot_api import DEFAULT_TOKEN, valid_token  # noqa: PLC0415

    parser = argparse.ArgumentParser(description="Fake Telegram Bot API for tests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--token",
        default=os.environ.get("FAKE_BOT_TOKEN", DEFAULT_TOKEN),
        help="bot token to accept (default: $FAKE_BOT_TOKEN or the test token)",
    )
    parser.add_argument(
        "--enforce-limits",
        action="store_true",
        help="answer 429 like Telegram above 30 msg/s, 20/min per group, 1/s per chat",
    )
    args = parser.parse_args(argv)
    if not valid_token(args.token):
        parser.error("malformed --token")
    asyncio.run(_serve_forever(args.token, args.host, args.port, args.enforce_limits))
    return 0
