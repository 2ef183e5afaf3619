"""The part every fake server shares: one aiohttp app on 127.0.0.1 and its lifecycle.

Subclasses implement :meth:`LocalServer._handle` (a catch-all route) and may extend
:meth:`LocalServer._on_stop` to release requests they hold open. There is no access log:
the fake Bot API's paths contain the bot token.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self

from aiohttp import web


class LocalServer:
    """Start, stop, ``port`` and ``async with`` for an aiohttp test server."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._requested_port = port
        self._runner: web.AppRunner | None = None
        self._bound_port: int | None = None
        # Set by stop(), so slow or long-polling handlers can end at once.
        self._stopping = asyncio.Event()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    def _on_stop(self) -> None:
        """Hook for subclasses: wake whatever their handlers wait on."""

    async def start(self) -> None:
        """Bind ``host:port`` (port 0 = any free port) and start serving."""
        if self._runner is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._stopping.clear()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        await web.TCPSite(runner, self._host, self._requested_port).start()
        self._runner = runner
        self._bound_port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Release waiting handlers, then shut the server down (idempotent)."""
        if self._runner is None:
            return
        self._stopping.set()
        self._on_stop()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._bound_port is None:
            raise RuntimeError(f"{type(self).__name__} not started")
        return self._bound_port

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
