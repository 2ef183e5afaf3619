"""TELEGRAM_PROXY_URL carries Bot API calls only; feed fetching stays direct.

A small forwarding HTTP proxy on 127.0.0.1 stands in for the operator's proxy: it records
which paths went through it and forwards them to the fake Bot API.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import aiohttp
import pytest
from aiohttp import web

from bot.app import build_application
from bot.config import Settings
from bot.services.telegram_request import InstrumentedRequest
from bot.storage import reset_storage_service
from tests.helpers.bot_runner import running_bot
from tests.helpers.fake_bot_api import FakeBotAPI
from tests.helpers.feed_server import FeedServer
from tests.helpers.feeds import rss
from tests.helpers.local_server import LocalServer


class ForwardProxy(LocalServer):
    """A plain HTTP forward proxy: absolute-form requests are replayed to their target."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.paths.append(request.path)  # not logged: Bot API paths hold the token
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() in {"content-type"}}
        async with (
            aiohttp.ClientSession() as session,
            session.request(request.method, str(request.url), data=body, headers=headers) as up,
        ):
            payload = await up.read()
            return web.Response(
                status=up.status, body=payload, content_type=up.content_type or None
            )


async def test_bot_api_goes_through_the_proxy_and_feeds_do_not(
    fake_api: FakeBotAPI, bot_settings: Callable[..., Settings], feed_server: FeedServer
) -> None:
    feed_server.serve("/direct.xml", rss([{"title": "Direct story", "guid": "d1"}]))
    async with ForwardProxy() as proxy:
        settings = bot_settings(telegram_proxy_url=f"http://127.0.0.1:{proxy.port}")
        async with running_bot(settings):
            fake_api.send_command(f"/add {feed_server.url('/direct.xml')}", chat_id=7, user_id=7)
            [reply] = await fake_api.wait_for_messages(1, chat_id=7, timeout=15)
    via_proxy = {path.rsplit("/", 1)[-1] for path in proxy.paths}
    assert {"getMe", "getUpdates", "sendMessage"} <= via_proxy
    assert "Now following" in reply["plain"]
    assert feed_server.request_count("/direct.xml") == 1  # fetched, but not via the proxy
    assert not [p for p in proxy.paths if "direct.xml" in p]


@pytest.mark.parametrize(
    "proxy", ["socks5://127.0.0.1:1080", "socks5h://user:pw@127.0.0.1:1080", None]
)
def test_both_bot_api_transports_get_the_proxy(
    bot_settings: Callable[..., Settings], proxy: str | None
) -> None:
    reset_storage_service()  # build_application configures the storage singleton
    try:
        app = build_application(dataclasses.replace(bot_settings(), telegram_proxy_url=proxy))
    finally:
        reset_storage_service()
    transports = [app.bot._request[0], app.bot._request[1]]  # getUpdates, everything else
    for transport in transports:
        assert isinstance(transport, InstrumentedRequest)
        # PTB's HTTPXRequest keeps the arguments it built its httpx client with.
        assert transport._client_kwargs["proxy"] == proxy
