"""The webhook half of the fake Bot API: ``setWebhook``/``deleteWebhook``/``getWebhookInfo``
and pushing queued updates to the bot the way Telegram does.

Once a webhook is set, every update queued on the fake (``send_command``, ``add_update``, ...)
is POSTed to the recorded URL with ``X-Telegram-Bot-Api-Secret-Token``, in order, one at a
time; a 2xx answer removes it from the queue, anything else is retried (Telegram keeps
trying too) and recorded. So tests written for polling work unchanged in webhook mode.
:meth:`FakeWebhook.post` sends one raw request with any secret, to test the refusals.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from tests.helpers.fake_text import ApiError

if TYPE_CHECKING:
    from tests.helpers.fake_bot_api import FakeBotAPI

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Telegram's answer to getUpdates while a webhook is set.
GET_UPDATES_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
_RETRY_DELAY_S = 0.1
_USE_RECORDED = object()


@dataclass
class Delivery:
    """One push attempt: which update, and what the bot answered (0: connection failed)."""

    update_id: int
    status: int


class FakeWebhook:
    """Webhook state of one :class:`FakeBotAPI`; all on the fake's event loop, no locks."""

    def __init__(self, api: FakeBotAPI) -> None:
        self._api = api
        self.url = ""
        self.secret_token: str | None = None
        self.allowed_updates: list[str] | None = None
        self.set_calls: list[dict[str, Any]] = []
        self.deliveries: list[Delivery] = []
        self.last_error: tuple[int, str] | None = None
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ Bot API methods

    async def set(self, params: dict[str, Any]) -> bool:
        """``setWebhook``: record url/secret/allowed_updates and start pushing."""
        url = str(params.get("url") or "")
        if not url.startswith(("http://", "https://")):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided")
        self.set_calls.append(dict(params))
        self.url = url
        self.secret_token = params.get("secret_token")
        allowed = params.get("allowed_updates")
        self.allowed_updates = allowed if isinstance(allowed, list) else None
        if isinstance(allowed, list):
            self._api._allowed_updates = frozenset(allowed) if allowed else None
        if params.get("drop_pending_updates") is True:
            self._api._updates.clear()
        self.last_error = None
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._push_loop(), name="fake-webhook-push")
        self._api._pulse()
        return True

    async def delete(self, params: dict[str, Any]) -> bool:
        """``deleteWebhook``: stop pushing (updates stay queued for getUpdates)."""
        self.url = ""
        self.secret_token = None
        self._api._pulse()
        return True

    async def info(self, params: dict[str, Any]) -> dict[str, Any]:
        """``getWebhookInfo``."""
        result: dict[str, Any] = {
            "url": self.url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._api._deliverable()),
        }
        if self.allowed_updates is not None:
            result["allowed_updates"] = self.allowed_updates
        if self.last_error is not None:
            result["last_error_date"], result["last_error_message"] = self.last_error
        return result

    # ------------------------------------------------------------------ test knobs

    def replace(self, url: str) -> None:
        """Change the webhook as another process with the same token would ("" deletes)."""
        self.url = url
        self.secret_token = "someone-elses-secret" if url else None
        self._api._pulse()

    async def post(
        self, update: dict[str, Any], *, secret: Any = _USE_RECORDED, url: str | None = None
    ) -> tuple[int, str]:
        """POST one update as given (no update_id added) and return (status, body).

        Args:
            update: the JSON body.
            secret: the secret header to send; default the recorded one, ``None`` for none.
            url: where to post; default the recorded webhook URL.

        """
        token = self.secret_token if secret is _USE_RECORDED else secret
        headers = {} if token is None else {SECRET_HEADER: str(token)}
        async with (
            aiohttp.ClientSession() as session,
            session.post(url or self.url, json=update, headers=headers) as response,
        ):
            return response.status, await response.text()

    async def stop(self) -> None:
        """Stop pushing (the fake's shutdown)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------------ pushing

    async def _push_loop(self) -> None:
        api = self._api
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while self.url and not api._stopping.is_set():
                await api._wait_until(lambda: bool(api._deliverable()) or not self.url, 1.0)
                pending = api._deliverable()
                if not self.url or not pending:
                    continue
                update = pending[0]
                status = await self._push(session, update)
                self.deliveries.append(Delivery(update["update_id"], status))
                if 200 <= status < 300:
                    api._updates = [u for u in api._updates if u is not update]
                else:
                    self.last_error = (
                        int(time.time()),
                        f"Wrong response from the webhook: {status}",
                    )
                    await asyncio.sleep(_RETRY_DELAY_S)
                api._pulse()

    async def _push(self, session: aiohttp.ClientSession, update: dict[str, Any]) -> int:
        headers = {SECRET_HEADER: self.secret_token} if self.secret_token else {}
        try:
            async with session.post(self.url, json=update, headers=headers) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, TimeoutError):
            return 0
