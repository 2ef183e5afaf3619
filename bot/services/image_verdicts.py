"""What Telegram said lately about the image URLs of ``full`` posts, so a fan-out asks once.

A ``full`` post of one item goes to every chat following the feed with the same image URL.
When Telegram cannot use that image (a broken URL, not an image, unprocessable), each chat
would otherwise cost a refused ``sendPhoto`` and then the text post: two calls per chat,
against rate limits shared by every chat. :class:`ImageVerdicts` remembers, for a while,
whether Telegram accepted or refused each URL, and lets only the first send of an unknown
URL ask (single flight): concurrent sends of the same image wait for that answer, then go as
a photo or straight to text. A broken image thus costs one ``sendPhoto`` per fan-out.

A verdict is kept for ``ttl_s`` (1 h: a site fixing its image gets it shown again) and at
most ``max_urls`` (1,000) are kept, oldest dropped first: bounded memory whatever the feeds
post. An answer that says nothing about the image (the chat vanished, its topic is closed,
the chat forbids photos, a network error) leaves the URL unknown: the next send asks again.
Per process; only the delivery path uses it, from the event loop: no lock needed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal

logger = logging.getLogger(__name__)

VERDICT_TTL_S = 3600.0
VERDICT_MAX_URLS = 1000
ASK_WAIT_S = 10.0  # longest a send waits for another send's answer about the same image
Turn = Literal["photo", "text", "ask"]


class ImageVerdicts:
    """Recent verdicts of Telegram on image URLs, and the sends asking for one right now."""

    def __init__(
        self,
        *,
        ttl_s: float = VERDICT_TTL_S,
        max_urls: int = VERDICT_MAX_URLS,
        wait_s: float = ASK_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._max_urls = max_urls
        self._wait_s = wait_s
        self._clock = clock
        # url -> (accepted, expires at), oldest first.
        self._verdicts: OrderedDict[str, tuple[bool, float]] = OrderedDict()
        self._asking: dict[str, asyncio.Event] = {}  # url -> set when its ask is answered

    def __len__(self) -> int:
        return len(self._verdicts)

    async def turn(self, url: str) -> Turn:
        """How to send a post with this image: as a ``photo``, as ``text``, or ``ask``.

        ``ask``: the caller asks Telegram about ``url`` now and must call :meth:`settle` when
        it knows (also on failure: others wait for it). While another send asks, this waits
        for its answer, at most ``wait_s`` (that send may be queued behind a chat's rate
        limit); then it asks too.
        """
        while True:
            verdict = self._verdict(url)
            if verdict is not None:
                return "photo" if verdict else "text"
            asking = self._asking.get(url)
            if asking is None:
                self._asking[url] = asyncio.Event()
                return "ask"
            try:
                async with asyncio.timeout(self._wait_s):
                    await asking.wait()
            except TimeoutError:
                return "ask"  # the first ask is slow (rate limits): ask too rather than stall

    def settle(self, url: str, accepted: bool | None) -> None:
        """The answer of an ``ask``: accepted, refused, or None (said nothing of the image)."""
        if accepted is not None:
            now = self._clock()
            verdicts = self._verdicts
            verdicts.pop(url, None)
            verdicts[url] = (accepted, now + self._ttl_s)
            # One TTL for all: insertion order is expiry order, so the expired are in front.
            while verdicts and (
                len(verdicts) > self._max_urls or next(iter(verdicts.values()))[1] <= now
            ):
                verdicts.popitem(last=False)
        asking = self._asking.pop(url, None)
        if asking is not None:
            asking.set()

    def _verdict(self, url: str) -> bool | None:
        found = self._verdicts.get(url)
        if found is None:
            return None
        accepted, expires = found
        if self._clock() >= expires:
            del self._verdicts[url]
            return None
        return accepted
