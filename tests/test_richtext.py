"""Feed HTML → Telegram HTML (:mod:`bot.richtext`): exact outputs for hostile input, and properties.

Every result is checked with :func:`tests.helpers.telegram_html_checks.valid_telegram_html`:
the fake Bot API's validator (independent of :mod:`bot.richtext`) plus Telegram's nesting
rules and an independent UTF-16 count. Lengths and cutting rules themselves are tested with
:mod:`bot.telegram_html` in :mod:`tests.test_telegram_html`.
"""

from __future__ import annotations

import random
import re
from unittest import mock

import pytest

from bot import richtext
from bot.richtext import SUMMARY_LIMIT, absolute_http_url, convert, to_telegram_html
from bot.telegram_html import ELLIPSIS, truncate_html, visible_len
from tests.helpers.fake_bot_api import TelegramHTMLError
from tests.helpers.telegram_html_checks import utf16_units, valid_telegram_html

BASE = "https://example.com/news/item-1"


# --------------------------------------------------------------------------- exact outputs


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("<p>Hello <b>world</b></p><p>Next <i>para</i></p>",
         "Hello <b>world</b>\n\nNext <i>para</i>"),
        ("<strong>s</strong> <em>e</em> <ins>i</ins> <del>d</del> <strike>k</strike> <kbd>c</kbd>",
         "<b>s</b> <i>e</i> <u>i</u> <s>d</s> <s>k</s> <code>c</code>"),
        ("<h2>Title</h2><p>Body</p>", "<b>Title</b>\n\nBody"),
        ("<pre>\n\n  x\n\n\n\ny\n</pre>", "<pre>  x\n\ny\n</pre>"),
        ("<p>a</p><pre>\n\n\nb</pre>", "a\n\n<pre>b</pre>"),
        ("<ul><ul><li>nested first</li></ul></ul>", "• nested first"),
        ("<ul><li>one</li><li>two<ol start=3><li>a</li><li>b</li></ol></li></ul>after",
         "• one\n• two\n  3. a\n  4. b\nafter"),
        ("line1<br>line2<br/><br><br><br>line3", "line1\nline2\n\nline3"),
        ("<pre>  code\n   indented &lt;x&gt;</pre>after",
         "<pre>  code\n   indented &lt;x&gt;</pre>\nafter"),
        ("<blockquote><p>q1</p><blockquote>q2</blockquote></blockquote>x",
         "<blockquote>q1\n\nq2</blockquote>\nx"),
        ("<p>  </p><p></p><div>x</div><b></b><i> </i>", "x"),
        ("<p>  lots   of\n\n white\tspace  </p>", "lots of white space"),
        ("  plain   text\n\n keeps\tparagraphs  ", "plain text\n\nkeeps paragraphs"),
        ("plain text\n\n\n\nsecond paragraph\r\nsame paragraph",
         "plain text\n\nsecond paragraph\nsame paragraph"),
        ("<table><tr><td>a</td><td>b<table><tr><td>c</td></tr></table></td></tr>"
         "<tr><th>d</th></tr></table>tail", "a b\nc\nd\ntail"),
        ('I <img class="wp-smiley" alt="🙂" src="https://s.w.org/1f642.png"> it', "I 🙂 it"),
    ],
)  # fmt: skip
def test_structure_is_rendered_as_lines_and_telegram_tags(source: str, expected: str) -> None:
    assert to_telegram_html(source, BASE) == expected
    valid_telegram_html(expected)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("<script>alert('x')</script>Text<style>p { color: red }</style> after",
         "Text after"),
        ("<head><title>T</title></head>Body", "Body"),
        ("<template><b>hidden</b></template><iframe src=x>fallback</iframe>"
         "<object>o</object><noscript><p>enable js</p></noscript>shown", "shown"),
        ("<svg><svg><text>x</text></svg><text>y</text></svg>after", "after"),
        ("<script>never closed <b>bold</b>", ""),
        ("before<!-- a comment --> after<?php echo 1 ?> <![CDATA[cdata]]>", "before after"),
        ("<![if !supportLists]>·<![endif]>item <![bogus[x]]> <!weird> <!DOCTYPE html>end",
         "·item end"),
        ("<![CDATA[a > b]]>", "b]]&gt;"),  # HTML5: a bogus comment ends at the first ">"
    ],
)  # fmt: skip
def test_code_styles_and_embeds_are_dropped_with_their_content(source: str, expected: str) -> None:
    assert to_telegram_html(source, BASE) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("<b>unclosed <i>tags", "<b>unclosed <i>tags</i></b>"),
        ("<b><i>x</b>y</i>", "<b><i>x</i></b><i>y</i>"),
        ("<b>a <b>b</b> c</b> d", "<b>a b c</b> d"),
        ("</i>stray</b> end tags</p>", "stray end tags"),
        ("<code><b>x</b></code> <b><code>y</code></b> <a href='http://a.b/'><code>z</code></a>",
         '<code>x</code> <b>y</b> <a href="http://a.b/">z</a>'),
        ('<a href="http://a.b/">out <a href="http://c.d/">in</a> after</a>',
         '<a href="http://a.b/">out in after</a>'),
        ("<pre><code class='language-py'>x = <b>1</b></code></pre>", "<pre>x = 1</pre>"),
        ("<a href='http://a.b/'><blockquote>q</blockquote></a>", '<a href="http://a.b/">q</a>'),
        ("<b/>after <br/> x", "after\nx"),
        ("<p>a<div>b</p>c</div>", "a\nb\n\nc"),
    ],
)  # fmt: skip
def test_nesting_is_repaired_and_telegram_rules_hold(source: str, expected: str) -> None:
    result = to_telegram_html(source, BASE)
    assert result == expected
    valid_telegram_html(result)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Tom &amp; Jerry &lt;3 &gt; &quot;q&quot; &apos;a&apos;",
         "Tom &amp; Jerry &lt;3 &gt; \"q\" 'a'"),
        ("&#128512; &#x1F600; &#X1f600; &copy; &nbsp;x", "😀 😀 😀 © \xa0x"),
        ("&#0; &#xD800; &#x110000; &#99999999999;", "\ufffd \ufffd \ufffd \ufffd"),
        ("&bogus; & &; &#; &#x; AT&T", "&amp;bogus; &amp; &amp;; &amp;#; &amp;#x; AT&amp;T"),
        ("<b>&lt;b&gt;</b>", "<b>&lt;b&gt;</b>"),
        ("bell\x07 nul\x00 ok\ud800", "bell nul ok\ufffd"),
    ],
)  # fmt: skip
def test_entities_are_decoded_then_escaped_with_the_four_telegram_knows(
    source: str, expected: str
) -> None:
    result = to_telegram_html(source, BASE)
    assert result == expected
    valid_telegram_html(result)


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("/rel?a=1&amp;b=2", '<a href="https://example.com/rel?a=1&amp;b=2">t</a>'),
        ("other", '<a href="https://example.com/news/other">t</a>'),
        ("//cdn.example.org/x", '<a href="https://cdn.example.org/x">t</a>'),
        ("https://x.y/&quot;q&quot;&lt;&gt;", '<a href="https://x.y/&quot;q&quot;&lt;&gt;">t</a>'),
        ("javascript:alert(1)", "t"),
        (" JavaScript:alert(1)", "t"),
        ("java\tscript:alert(1)", "t"),
        ("data:text/html;base64,PHNjcmlwdD4=", "t"),
        ("mailto:a@b.c", "t"),
        ("ftp://x.y/f", "t"),
        ("http://[::1", "t"),
        ("", "t"),
        ("#fragment", '<a href="https://example.com/news/item-1#fragment">t</a>'),
    ],
)
def test_links_are_absolutised_and_only_http_links_survive(href: str, expected: str) -> None:
    assert to_telegram_html(f'<a href="{href}">t</a>', BASE) == expected


def test_relative_links_without_a_base_lose_the_link_but_keep_the_text() -> None:
    source = '<a href="/rel">rel</a> <a href="https://x.y/">abs</a> <a name="n">anchor</a>'
    assert to_telegram_html(source, None) == 'rel <a href="https://x.y/">abs</a> anchor'


def test_rtl_emoji_astral_and_joiners_pass_through_untouched() -> None:
    text = "שלום עולם مرحبا 👨‍👩‍👧 🇺🇦 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 e\u0301 a\u200bb"
    assert to_telegram_html(f"<p>{text}</p>", BASE) == text
    assert visible_len(text) == utf16_units(text)


# --------------------------------------------------------------------------- lengths


def test_the_default_limit_is_summary_limit() -> None:
    body = "x " * 10_000
    result = to_telegram_html(body, BASE)
    assert utf16_units(valid_telegram_html(result)) == SUMMARY_LIMIT
    assert result.endswith("x" + ELLIPSIS)


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('<p>x</p><img src="/a.jpg"><img src="/b.jpg">', "https://example.com/a.jpg"),
        ('<img src="data:image/png;base64,AAAA"><img src="pic.png">',
         "https://example.com/news/pic.png"),
        ('<img src="/pixel.gif" width="1" height="1"><img src="/real.jpg">',
         "https://example.com/real.jpg"),
        ('<img src="/p.gif" height="1"><img src="/q.gif" width="0"><img>', None),
        ('<img class="emoji" src="/e.png"><img data-src="//cdn.x.y/lazy.jpg">',
         "https://cdn.x.y/lazy.jpg"),
        ('<img src="javascript:alert(1)"><img src="ftp://x.y/a.png">', None),
        # Skipped content (scripts, noscript fallbacks) is not read, for images either.
        ("<noscript><img src='https://x.y/ns.jpg'></noscript>", None),
        ("no image at all", None),
    ],
)  # fmt: skip
def test_the_first_image_is_the_first_real_http_image(source: str, expected: str | None) -> None:
    assert convert(source, BASE).image == expected


def test_the_first_image_without_a_base_needs_an_absolute_source() -> None:
    assert convert('<img src="/a.jpg"><img src="https://x.y/b.jpg">', None).image == (
        "https://x.y/b.jpg"
    )


def test_convert_finds_an_image_far_past_the_text_limit() -> None:
    body = "<p>" + "text " * 3000 + '</p><img src="/late.jpg">'
    result = convert(body, BASE, limit=20)
    assert result.image == "https://example.com/late.jpg"
    assert result.html == "text text text text…"


def test_convert_without_image_search_reports_none() -> None:
    result = convert('<p>x</p><img src="https://x.y/a.jpg">', BASE, find_image=False)
    assert (result.html, result.image) == ("x", None)


def test_absolute_http_url_rejects_hosts_missing() -> None:
    assert absolute_http_url("http:///nohost", None) is None
    assert absolute_http_url("HTTPS://Example.com/A", None) == "https://Example.com/A"
    assert absolute_http_url(None, BASE) is None


_URL_PIECES = {
    "scheme": ["https://", "http://", "HTTP://", "ftp://", "//", "", "https:/", "javascript:"],
    "host": ["example.com", "Example.COM", "a", "sub.ex-ample.org", "", "user@h.com",
             "[::1]", "h.com:8080", "h.com:", "h.com:99999", "h.com:0", "ex\u00e4mple.com",
             "a..b", "h\tx.com"],
    "path": ["", "/", "/a/b", "/a/../b", "//double", "/a;p=1", "/a/b;x", "/%7Euser",
             "/caf\u00e9", "/a b", "/a\\b", "/x:y@z", "/.", "relative"],
    "query": ["", "?", "?a=1&b=2", "?a=1;b=2", "?x?y", "?%20", "?a=\u00fc"],
    "fragment": ["", "#", "#top", "#a;b", "#x?y", "# sp"],
    "edge": ["", " ", "\n", "\x00"],
}  # fmt: skip


# Bases too: unparseable ones make the slow path give None (urljoin raises ValueError).
_BASES = [None, "", BASE, "http://other.example/dir/", "ftp://f.example/", "http://[",
          "http://[::1/x", "http://h]/", "http://ex\u2100ample/"]  # fmt: skip


def test_the_plain_url_shortcut_gives_what_joining_gives() -> None:
    """Differential: the shortcut for plain http(s) URLs against the full join-and-split."""
    rng = random.Random(7)
    slow = mock.patch.object(richtext, "_PLAIN_HTTP_URL_RE", re.compile(r"(?!)"))
    shortcut = 0
    for _ in range(4000):
        edge = rng.choice(_URL_PIECES["edge"]) if rng.random() < 0.1 else ""
        url = edge + "".join(rng.choice(_URL_PIECES[part]) for part in
                             ("scheme", "host", "path", "query", "fragment"))  # fmt: skip
        base = rng.choice(_BASES)
        fast = absolute_http_url(url, base)
        with slow:
            expected = absolute_http_url(url, base)
        assert fast == expected, (url, base)
        shortcut += richtext._PLAIN_HTTP_URL_RE.fullmatch(url) is not None
    assert 0 < shortcut < 4000  # both paths are exercised


# --------------------------------------------------------------------------- properties

_TAGS = [
    "b", "i", "u", "s", "em", "strong", "a", "code", "pre", "blockquote", "p", "div", "br",
    "ul", "ol", "li", "table", "tr", "td", "h1", "h3", "span", "font", "script", "style",
    "iframe", "img", "sup", "del", "q", "tt", "svg",
]  # fmt: skip
_TEXTS = [
    "hello", "world", " ", "\n", "  \t ", "&amp;", "&lt;", "&", "<", ">", '"', "'", "&#128512;",
    "&#0;", "&bogus;", "😀", "👨‍👩‍👧", "שלום", "مرحبا", "\u200d", "\ufe0f", "e\u0301", "𝔘",
    "a" * 40, "long words " * 5, "&#x1F1FA;&#x1F1E6;", "\xa0", "\x00", "]]>", "-->",
]  # fmt: skip
_ATTRS = [
    "", ' href="/x"', " href='javascript:alert(1)'", ' href="https://a.b/?q=1&amp;r=<>"',
    " href", ' src="/i.png" width=1', ' class="x" style="color:red"', ' href="data:x"',
    ' start="5"', " href=//cdn.x/y", ' href="/q&quot;x"', " href='https://a.b/\"x'",
    ' onclick="alert(1)"', ' src="https://x.y/a.jpg"',
]  # fmt: skip


def _random_html(rng: random.Random, parts: int) -> str:
    out: list[str] = []
    for _ in range(parts):
        roll = rng.random()
        tag = rng.choice(_TAGS)
        if roll < 0.3:
            out.append(f"<{tag}{rng.choice(_ATTRS)}>")
        elif roll < 0.5:
            out.append(f"</{tag}>")
        elif roll < 0.53:
            out.append(f"<{tag}/>")
        elif roll < 0.55:
            out.append(rng.choice(["<!--", "<!DOCTYPE html>", "<?x?>", "<![CDATA[", "<", "</"]))
        else:
            out.append(rng.choice(_TEXTS))
    return "".join(out)


def _mutate(rng: random.Random, text: str) -> str:
    """Cut, duplicate or splice a document at random character positions (tags included)."""
    if not text:
        return text
    a, b = sorted(rng.randrange(len(text) + 1) for _ in range(2))
    return rng.choice([text[:a] + text[b:], text[:b] + text[a:], text[a:b] * 3, text[::-1]])


@pytest.mark.parametrize("seed", range(40))
def test_any_input_gives_valid_bounded_telegram_html(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(25):
        source = _random_html(rng, rng.randrange(1, 120))
        if rng.random() < 0.4:
            source = _mutate(rng, source)
        limit = rng.choice([0, 1, 2, 3, 10, 50, 300, SUMMARY_LIMIT])
        result = convert(source, rng.choice([BASE, None]), limit=limit)
        try:
            plain = valid_telegram_html(result.html, limit)
        except (TelegramHTMLError, AssertionError) as error:
            raise AssertionError(f"{source!r} (limit {limit}) → {result.html!r}") from error
        assert visible_len(result.html) == utf16_units(plain)
        assert "\n\n\n" not in plain
        assert result.image is None or result.image.startswith(("http://", "https://"))
        cut = rng.randrange(0, 60)
        truncated = truncate_html(result.html, cut)
        assert utf16_units(valid_telegram_html(truncated, cut)) <= cut
        if visible_len(result.html) <= cut:
            assert truncated == result.html


def test_real_world_body_converts_within_the_caption_budget() -> None:
    paragraph = (
        '<p>The <a href="/story">council</a> voted <strong>7–2</strong> on Tuesday to approve '
        "the plan, which <em>critics</em> say will raise rents. “It’s a start,” said the mayor."
        '<img src="/photos/vote.jpg" width="640" height="360"></p>'
    )
    result = convert(paragraph * 30, BASE)
    plain = valid_telegram_html(result.html)
    assert utf16_units(plain) <= SUMMARY_LIMIT < 1024
    assert plain.startswith("The council voted 7–2 on Tuesday")
    assert result.html.startswith('The <a href="https://example.com/story">council</a> voted')
    assert result.image == "https://example.com/photos/vote.jpg"
