"""What summaries and images cost the parse step: one 20-item feed, with and without them.

The parse step (:func:`bot.services.feed_parser.parse_feed`) runs in a worker process, so
this is CPU the parser pool spends per poll of a feed, not time on the event loop; still, at
10,000 feeds per cycle it must stay lean. Measured on one core, in this process, for:

* ``rss``: RSS 2.0 read by the fast reader (the usual case);
* ``rss-feedparser``: the same document through feedparser (the fallback reader);
* ``json``: the same items as a JSON Feed.

Each with the conversion off (``FeedItem.summary``/``image`` left empty: the parse step as it
was before) and on. Items carry realistic bodies: ``content:encoded`` of ``--body-bytes``
(~1.5 KB) of paragraphs, links, emphasis, a list, an image, a script and entities, plus a
short ``description`` and a ``media:content`` image.

Usage::

    .venv/bin/python -m benchmarks.bench_parse                   # 20 items, 200 rounds
    .venv/bin/python -m benchmarks.bench_parse --items 50 --rounds 50
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock
from xml.sax.saxutils import escape

from benchmarks._common import pinned_to_one_core, positive_int, print_table
from bot.services import fast_feed, feed_parser
from bot.services.feed_parser import parse_feed
from bot.telegram_html import visible_len

logger = logging.getLogger(__name__)

FEED_URL = "https://bench.example/feed"
_BASE_TIME = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)
_PARAGRAPH = (
    "<p>The <a href='/city/council'>city council</a> voted <strong>7&ndash;2</strong> on "
    "Tuesday to approve the plan, which <em>critics</em> say will raise rents &amp; push "
    "families out. &ldquo;It&rsquo;s a start,&rdquo; said the mayor.</p>"
)
_EXTRAS = (
    "<ul><li>First point</li><li>Second <code>point</code></li></ul>"
    "<img src='/photos/{n}.jpg' width='640' height='360' alt='photo'>"
    "<script>trackPageView({n});</script><blockquote>A quote from someone.</blockquote>"
)


def _body(n: int, size: int) -> str:
    parts = [_EXTRAS.format(n=n)]
    while sum(map(len, parts)) < size:
        parts.append(_PARAGRAPH)
    return "".join(parts)


def _items(count: int, body_bytes: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"urn:bench:{n}",
            "title": f"Story {n}: council approves the housing plan",
            "url": f"https://bench.example/news/{n}",
            "date": _BASE_TIME - timedelta(minutes=n),
            "teaser": f"Story {n} in brief: the council approved the plan.",
            "body": _body(n, body_bytes),
            "image": f"https://cdn.bench.example/{n}.jpg",
        }
        for n in range(count)
    ]


def rss_document(items: list[dict[str, Any]]) -> bytes:
    """RSS 2.0 with ``content:encoded`` (CDATA), ``description`` and ``media:content``."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:media="http://search.yahoo.com/mrss/"><channel><title>Bench news</title>'
        "<link>https://bench.example/</link><description>d</description>"
    ]
    for item in items:
        parts.append(
            f"<item><title>{escape(item['title'])}</title><link>{item['url']}</link>"
            f'<guid isPermaLink="false">{item["id"]}</guid>'
            f"<pubDate>{item['date'].strftime('%a, %d %b %Y %H:%M:%S GMT')}</pubDate>"
            f"<description>{escape(item['teaser'])}</description>"
            f"<content:encoded><![CDATA[{item['body']}]]></content:encoded>"
            f'<media:content url="{item["image"]}" medium="image"/></item>'
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode()


def json_document(items: list[dict[str, Any]]) -> bytes:
    """The same items as a JSON Feed 1.1."""
    return json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "Bench news",
            "items": [
                {
                    "id": item["id"],
                    "url": item["url"],
                    "title": item["title"],
                    "summary": item["teaser"],
                    "content_html": item["body"],
                    "image": item["image"],
                    "date_published": item["date"].isoformat(),
                }
                for item in items
            ],
        }
    ).encode()


@contextmanager
def _conversion(enabled: bool) -> Iterator[None]:
    if enabled:
        yield
        return
    with mock.patch.object(feed_parser, "_with_text", lambda item, _entry: item):
        yield


@contextmanager
def _reader(name: str) -> Iterator[None]:
    if name != "rss-feedparser":
        yield
        return
    with mock.patch.object(fast_feed, "extract", return_value=None):
        yield


def _parse_job(document: bytes, known: frozenset[str]) -> Callable[[], object]:
    return lambda: parse_feed(document, FEED_URL, known_ids=known)


def _median_ms(parse: Callable[[], object], rounds: int) -> float:
    parse()  # warm caches (imports, regex compilation) outside the timing
    times = []
    for _ in range(rounds):
        started = time.process_time()
        parse()
        times.append(time.process_time() - started)
    return statistics.median(times) * 1000


def build_parser() -> argparse.ArgumentParser:
    """Command-line options (sizes and rounds)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=positive_int, default=20, help="items per feed")
    parser.add_argument(
        "--body-bytes", type=positive_int, default=1500, help="HTML body size per item"
    )
    parser.add_argument("--rounds", type=positive_int, default=200, help="parses per figure")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Measure every reader with conversion off and on; print and return the figures."""
    args = build_parser().parse_args(argv)
    items = _items(args.items, args.body_bytes)
    documents = {"rss": rss_document(items), "rss-feedparser": rss_document(items)}
    documents["json"] = json_document(items)
    result: dict[str, Any] = {"items": args.items, "readers": {}}
    with pinned_to_one_core(not args.no_pin) as pinning:
        result["pinning"] = pinning
        for name, document in documents.items():
            figures: dict[str, Any] = {"document_bytes": len(document)}
            # A poll that finds one new item: the others are in the log, named as known.
            known = frozenset(item["id"] for item in items[1:])
            with _reader(name):
                for label, enabled, skip in (
                    ("off_ms", False, frozenset()),
                    ("on_ms", True, frozenset()),
                    ("one_new_ms", True, known),
                ):
                    with _conversion(enabled):
                        figures[label] = _median_ms(_parse_job(document, skip), args.rounds)
                parsed = parse_feed(document, FEED_URL)
            figures["summaries"] = sum(1 for item in parsed.items if item.summary)
            figures["images"] = sum(1 for item in parsed.items if item.image)
            figures["summary_chars"] = statistics.mean(
                visible_len(item.summary) for item in parsed.items
            )
            figures["summary_bytes"] = statistics.mean(
                len(item.summary.encode()) for item in parsed.items
            )
            figures["per_item_ms"] = (figures["on_ms"] - figures["off_ms"]) / args.items
            result["readers"][name] = figures
    result["body_bytes"] = statistics.mean(len(item["body"]) for item in items)
    if not args.quiet:
        rows = [
            (
                name,
                f"{f['off_ms']:.2f} ms → {f['on_ms']:.2f} ms per parse "
                f"(+{f['per_item_ms']:.3f} ms per item); one new item: "
                f"{f['one_new_ms']:.2f} ms; {f['document_bytes']:,} B document",
            )
            for name, f in result["readers"].items()
        ]
        rss = result["readers"]["rss"]
        rows.append(
            (
                "sizes",
                f"{args.items} items, body ~{result['body_bytes']:.0f} B → summary "
                f"{rss['summary_chars']:.0f} visible chars / {rss['summary_bytes']:.0f} B "
                f"stored; {rss['summaries']} summaries, {rss['images']} images",
            )
        )
        print_table(
            f"parse_feed CPU, median of {args.rounds} ({pinning}): conversion off → on", rows
        )
        print("  (off = the parse step without summaries/images, as before this change)")
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
