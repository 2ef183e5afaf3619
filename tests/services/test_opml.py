"""bot/services/opml.py: reading what readers export, refusing hostile files, writing 2.0."""

from __future__ import annotations

import pickle
import re
from datetime import UTC, datetime

import defusedxml.ElementTree
import pytest

from bot.i18n import translator
from bot.services.opml import (
    MAX_OPML_BYTES,
    NotOpmlError,
    OpmlEmptyError,
    OpmlEncodingError,
    OpmlError,
    OpmlFeed,
    OpmlMalformedError,
    OpmlTooLargeError,
    OpmlUnsafeError,
    export_opml,
    human_size,
    is_opml_document,
    parse_opml,
)
from tests.helpers.opml_samples import (
    BILLION_LAUGHS,
    EXTERNAL_DTD,
    EXTERNAL_ENTITY,
    feedly,
    inoreader,
    netnewswire,
)

EN = translator("en")
WHEN = datetime(2026, 11, 30, 15, 4, 5, tzinfo=UTC)


def wrap(body: str, *, declaration: str = '<?xml version="1.0" encoding="UTF-8"?>') -> str:
    return f'{declaration}\n<opml version="2.0"><head/><body>{body}</body></opml>'


# --------------------------------------------------------------------------- real exports


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            feedly("https://feeds.arstechnica.example/index", "https://news.example/rss?a=1&b=2"),
            [
                OpmlFeed("https://feeds.arstechnica.example/index", "Ars Technica & Friends"),
                OpmlFeed("https://news.example/rss?a=1&b=2", "World News"),
            ],
        ),
        (
            inoreader("https://blog.example/feed", "https://second.example/atom.xml"),
            [
                OpmlFeed("https://blog.example/feed", "Första bloggen"),
                OpmlFeed("https://second.example/atom.xml", "Second"),
            ],
        ),
        (
            netnewswire("https://daringfireball.example/feeds/main", "https://six.example/rss"),
            [
                OpmlFeed("https://daringfireball.example/feeds/main", "Daring Fireball"),
                OpmlFeed("https://six.example/rss", "Six Colors"),
            ],
        ),
    ],
    ids=["feedly", "inoreader", "netnewswire"],
)
def test_reader_exports_import(document: bytes, expected: list[OpmlFeed]) -> None:
    assert parse_opml(document) == expected


def test_nested_folders_at_any_depth_in_document_order() -> None:
    document = wrap(
        '<outline text="A"><outline text="B">'
        '<outline text="deep" xmlUrl="https://deep.example/f"/>'
        "</outline>"
        '<outline text="mid" xmlUrl="https://mid.example/f"/>'
        "</outline>"
        '<outline text="top" xmlUrl="https://top.example/f"/>'
    ).encode()
    assert [f.url for f in parse_opml(document)] == [
        "https://deep.example/f",
        "https://mid.example/f",
        "https://top.example/f",
    ]


def test_outlines_without_a_feed_address_are_skipped() -> None:
    document = wrap(
        '<outline text="folder only"/>'
        '<outline type="link" text="a page" url="https://page.example/"/>'
        '<outline type="include" text="more" url="https://other.example/list.opml"/>'
        '<outline type="rss" text="old exporter" url="https://old.example/rss"/>'
        '<outline text="blank" xmlUrl="   "/>'
        '<outline text="ok" xmlUrl="https://ok.example/f"/>'
    ).encode()
    assert parse_opml(document) == [
        OpmlFeed("https://old.example/rss", "old exporter"),
        OpmlFeed("https://ok.example/f", "ok"),
    ]


def test_attribute_names_in_any_case_and_title_before_text() -> None:
    document = wrap(
        '<outline TEXT="the text" Title="the title" xmlURL="https://a.example/f"/>'
        '<outline text="  only\n\ttext  " xmlurl="https://b.example/f"/>'
        '<outline xmlUrl="https://c.example/f"/>'
        '<outline text="https://d.example/f" xmlUrl="https://d.example/f"/>'
    ).encode()
    assert parse_opml(document) == [
        OpmlFeed("https://a.example/f", "the title"),
        OpmlFeed("https://b.example/f", "only text"),
        OpmlFeed("https://c.example/f", ""),
        OpmlFeed("https://d.example/f", ""),  # an address is not a name
    ]


def test_duplicate_addresses_count_once_first_title_wins() -> None:
    document = wrap(
        '<outline text="first" xmlUrl="https://a.example/f"/>'
        '<outline text="F"><outline text="second" xmlUrl=" https://a.example/f "/></outline>'
        '<outline text="other" xmlUrl="https://b.example/f"/>'
    ).encode()
    assert parse_opml(document) == [
        OpmlFeed("https://a.example/f", "first"),
        OpmlFeed("https://b.example/f", "other"),
    ]


def test_long_titles_are_cut_and_namespaced_opml_is_read() -> None:
    document = (
        '<opml xmlns="http://opml.example/ns" version="2.0"><body>'
        f'<outline text="{"x" * 500}" xmlUrl="https://a.example/f"/></body></opml>'
    ).encode()
    (feed,) = parse_opml(document)
    assert feed.title == "x" * 200


# --------------------------------------------------------------------------- encodings


@pytest.mark.parametrize("encoding", ["windows-1251", "koi8-r", "shift_jis", "gbk", "utf-16"])
def test_declared_encodings_are_honoured(encoding: str) -> None:
    title = "日本のニュース" if encoding in ("shift_jis", "gbk") else "Новости дня"
    if encoding == "gbk":
        title = "中文新闻"
    text = wrap(
        f'<outline text="{title}" xmlUrl="https://a.example/f"/>',
        declaration=f'<?xml version="1.0" encoding="{encoding}"?>',
    )
    assert parse_opml(text.encode(encoding)) == [OpmlFeed("https://a.example/f", title)]


def test_utf8_bom_is_fine() -> None:
    document = b"\xef\xbb\xbf" + wrap('<outline text="é" xmlUrl="https://a.example/f"/>').encode()
    assert parse_opml(document) == [OpmlFeed("https://a.example/f", "é")]


def test_unknown_encoding_is_a_clear_error() -> None:
    document = wrap(
        '<outline text="x" xmlUrl="https://a.example/f"/>',
        declaration='<?xml version="1.0" encoding="x-no-such-charset"?>',
    ).encode()
    with pytest.raises(OpmlEncodingError) as caught:
        parse_opml(document)
    assert caught.value.describe(EN) == (
        "the file's text encoding x-no-such-charset could not be read"
    )


def test_bytes_not_in_the_declared_multibyte_encoding_are_refused() -> None:
    document = (
        wrap(
            '<outline text="x" xmlUrl="https://a.example/f"/>',
            declaration='<?xml version="1.0" encoding="shift_jis"?>',
        ).encode()
        + b"\x81"
    )  # a lead byte with no trail byte
    with pytest.raises(OpmlEncodingError):
        parse_opml(document)


def test_utf8_declared_but_latin1_bytes_is_malformed() -> None:
    document = wrap('<outline text="café" xmlUrl="https://a.example/f"/>').encode("latin-1")
    with pytest.raises(OpmlMalformedError) as caught:
        parse_opml(document)
    assert caught.value.describe(EN).startswith(
        "the file is not well-formed XML (not well-formed (invalid token): line 2"
    )


# --------------------------------------------------------------------------- hostile files


@pytest.mark.parametrize(
    "document",
    [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD, b"<!DOCTYPE opml><opml><body/></opml>"],
    ids=["billion-laughs", "external-entity", "external-dtd", "plain-doctype"],
)
def test_dtds_and_entities_are_refused_not_expanded(document: bytes) -> None:
    with pytest.raises(OpmlUnsafeError) as caught:
        parse_opml(document)
    assert caught.value.describe(EN) == (
        "the file declares a DTD or entities, which OPML never needs; refused for safety"
    )


def test_a_file_over_the_cap_is_refused_before_parsing() -> None:
    # Not even XML: the size alone decides, so nothing of it is parsed.
    with pytest.raises(OpmlTooLargeError) as caught:
        parse_opml(b"<" * (MAX_OPML_BYTES + 1))
    assert caught.value.describe(EN) == "the file is 1.1 MiB; an OPML import takes at most 1 MiB"


def test_a_file_of_exactly_the_cap_is_read() -> None:
    head = wrap('<outline text="x" xmlUrl="https://a.example/f"/>').encode()
    padding = MAX_OPML_BYTES - len(head) - len("<!---->")
    document = head + b"<!--" + b"p" * padding + b"-->"
    assert len(document) == MAX_OPML_BYTES
    assert parse_opml(document) == [OpmlFeed("https://a.example/f", "x")]


@pytest.mark.parametrize(
    ("document", "error", "reason"),
    [
        (
            b'<?xml version="1.0"?><rss version="2.0"><channel/></rss>',
            NotOpmlError,
            "this is XML but not OPML (its root element is <rss>, not <opml>)",
        ),
        (
            b'<opml version="2.0"><body><outline text="x"',
            OpmlMalformedError,
            "the file is not well-formed XML (unclosed token: line 1, column 26)",
        ),
        (
            b"\x89PNG\r\n\x1a\n\x00\x00",
            OpmlMalformedError,
            "the file is not well-formed XML (not well-formed (invalid token): line 1, column 0)",
        ),
        (
            b"",
            OpmlMalformedError,
            "the file is not well-formed XML (no element found: line 1, column 0)",
        ),
        (
            wrap('<outline text="a folder"><outline text="empty"/></outline>').encode(),
            OpmlEmptyError,
            "the file lists no feeds (no outline has an xmlUrl)",
        ),
        (
            b'<opml version="1.0"/>',
            OpmlEmptyError,
            "the file lists no feeds (no outline has an xmlUrl)",
        ),
    ],
    ids=["rss-not-opml", "truncated", "binary", "empty-file", "folders-only", "no-body"],
)
def test_not_opml_gets_a_clear_reason(document: bytes, error: type[OpmlError], reason: str) -> None:
    with pytest.raises(error) as caught:
        parse_opml(document)
    assert caught.value.describe(EN) == reason


@pytest.mark.parametrize(
    "error",
    [
        OpmlTooLargeError(2 * MAX_OPML_BYTES),
        OpmlMalformedError("no element found: line 1, column 0"),
        OpmlUnsafeError(),
        OpmlEncodingError("x-foo"),
        NotOpmlError("rss"),
        OpmlEmptyError(),
    ],
)
def test_errors_survive_pickling_from_a_worker_process(error: OpmlError) -> None:
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes, as the pool does
    assert type(copy) is type(error)
    assert copy.describe(EN) == error.describe(EN)


def test_human_sizes() -> None:
    assert human_size(12, EN) == "12 bytes"
    assert human_size(1, EN) == "1 byte"
    assert human_size(640 * 1024, EN) == "640 KiB"
    assert human_size(640 * 1024 + 5, EN) == "641 KiB"
    assert human_size(MAX_OPML_BYTES, EN) == "1 MiB"
    assert human_size(3 * MAX_OPML_BYTES // 2, EN) == "1.5 MiB"


def test_human_sizes_in_russian() -> None:
    ru = translator("ru")
    assert human_size(3 * MAX_OPML_BYTES // 2, ru) == "1,5 МБ"
    assert human_size(640 * 1024, ru) == "640 КБ"
    assert [human_size(n, ru) for n in (1, 3, 12)] == ["1 байт", "3 байта", "12 байт"]


# --------------------------------------------------------------------------- writing


def test_export_is_opml_2_with_head_and_rss_outlines() -> None:
    data = export_opml(
        [OpmlFeed("https://a.example/f", "A Times")], title="newsbot feeds of Chat", created=WHEN
    )
    root = defusedxml.ElementTree.fromstring(data, forbid_dtd=True)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">')
    assert root.findtext("head/title") == "newsbot feeds of Chat"
    assert root.findtext("head/dateCreated") == "Mon, 30 Nov 2026 15:04:05 GMT"
    (outline,) = root.iter("outline")
    assert outline.attrib == {
        "type": "rss",
        "text": "A Times",
        "title": "A Times",
        "xmlUrl": "https://a.example/f",
    }


def test_export_escapes_everything_and_drops_characters_xml_cannot_carry() -> None:
    nasty = 'Tom & "Jerry" <script>\x00\x1b\'s\nnews'
    url = "https://a.example/f?x=1&y=<2>"
    data = export_opml([OpmlFeed(url, nasty)], title='<head> & "title"', created=WHEN)
    text = data.decode()
    assert "<script>" not in text
    assert "\x00" not in text and "\x1b" not in text
    root = defusedxml.ElementTree.fromstring(data, forbid_dtd=True)
    assert root.findtext("head/title") == '<head> & "title"'
    assert parse_opml(data) == [OpmlFeed(url, 'Tom & "Jerry" <script>\'s news')]


def test_export_of_a_feed_without_title_uses_its_address_as_text_only() -> None:
    data = export_opml([OpmlFeed("https://a.example/f", "")], title="t", created=WHEN)
    (outline,) = defusedxml.ElementTree.fromstring(data).iter("outline")
    assert outline.attrib == {
        "type": "rss",
        "text": "https://a.example/f",
        "xmlUrl": "https://a.example/f",
    }
    assert parse_opml(data) == [OpmlFeed("https://a.example/f", "")]


def test_round_trip_gives_the_same_addresses_and_titles() -> None:
    feeds = [
        OpmlFeed(f"https://site{n}.example/feed.xml?page={n}&lang=en", title)
        for n, title in enumerate(["Plain", "Ünïcödé ニュース", "A & B", "", "emoji 📰", 'q"uote'])
    ]
    assert parse_opml(export_opml(feeds, title="x", created=WHEN)) == feeds


def test_a_reader_export_survives_import_then_export() -> None:
    imported = parse_opml(inoreader("https://blog.example/feed", "https://s.example/a"))
    again = parse_opml(export_opml(imported, title="x", created=WHEN))
    assert again == imported


@pytest.mark.parametrize(
    ("name", "mime", "accepted"),
    [
        ("feeds.opml", "application/octet-stream", True),
        ("FEEDS.OPML", None, True),
        ("subscriptions.xml", None, True),
        ("export", "text/x-opml", True),
        ("export", "application/xml", True),
        ("photo.jpg", "image/jpeg", False),
        ("notes.txt", "text/plain", False),
        (None, None, False),
    ],
)
def test_opml_documents_are_recognised_by_name_or_type(
    name: str | None, mime: str | None, accepted: bool
) -> None:
    assert is_opml_document(name, mime) is accepted


def test_export_lines_are_one_per_feed() -> None:
    feeds = [OpmlFeed(f"https://{n}.example/f", f"Feed {n}") for n in range(50)]
    data = export_opml(feeds, title="t", created=WHEN).decode()
    assert len(re.findall(r"<outline ", data)) == 50
