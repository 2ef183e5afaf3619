"""Tests for bot/services/feed_errors.py: labels, user-facing reasons and pickling."""

from __future__ import annotations

import pickle

import pytest

from bot.i18n import translator
from bot.services import feed_errors
from bot.services.feed_errors import (
    HTTP_NO_TARGET_REASON,
    TOO_LARGE_REASON,
    FeedError,
    FetchError,
    HTTPStatusError,
    NotAFeedError,
    ParseError,
    TLSError,
    localize_reason,
)
from bot.services.metrics import FEED_FETCH_OUTCOMES


def _all_subclasses(cls: type[FeedError]) -> list[type[FeedError]]:
    found: list[type[FeedError]] = []
    for sub in cls.__subclasses__():
        if sub.__module__ == feed_errors.__name__:  # other modules may subclass too
            found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


# Every class of the module, found by walking the hierarchy so a new class is covered too.
CLASSES = _all_subclasses(FeedError)


def _make(cls: type[FeedError], reason: str | None = None) -> FeedError:
    if issubclass(cls, HTTPStatusError):
        return cls(503, reason)
    return cls(reason)


def test_the_hierarchy_is_what_the_module_exports() -> None:
    exported = {
        obj
        for obj in vars(feed_errors).values()
        if isinstance(obj, type) and issubclass(obj, FeedError) and obj is not FeedError
    }
    assert exported == set(CLASSES)
    assert len(CLASSES) >= 14


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_class_has_a_known_label_and_a_plain_reason(cls: type[FeedError]) -> None:
    assert cls.kind in FEED_FETCH_OUTCOMES
    assert cls.kind not in ("ok", "not_modified")
    err = _make(cls)
    assert err.kind == cls.kind
    assert err.reason
    assert err.reason == err.reason.strip()
    assert "\n" not in err.reason
    assert "://" not in err.reason  # no addresses in what users read
    assert str(err) == f"{cls.kind}: {err.reason}"
    family = FetchError if issubclass(cls, FetchError) else ParseError
    assert issubclass(cls, family)
    assert (cls.kind == "parse_error") == (family is ParseError)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("reason", [None, "a specific sentence"])
def test_every_class_survives_pickling(cls: type[FeedError], reason: str | None) -> None:
    try:
        raise _make(cls, reason) from ValueError("the library's own error")
    except FeedError as raised:
        original = raised
    copy = pickle.loads(pickle.dumps(original))  # noqa: S301 - our own bytes
    assert type(copy) is cls
    assert (copy.kind, copy.reason, str(copy)) == (original.kind, original.reason, str(original))
    assert copy.args == original.args
    if reason is not None:
        assert copy.reason == reason
    if isinstance(original, HTTPStatusError):
        assert isinstance(copy, HTTPStatusError)
        assert copy.status == 503


def test_instance_reason_overrides_the_class_default_only_for_that_instance() -> None:
    specific = NotAFeedError("this is a web page without a feed link")
    assert specific.reason == "this is a web page without a feed link"
    assert NotAFeedError().reason == NotAFeedError.reason
    assert NotAFeedError.reason == "this does not look like an RSS or Atom feed"


def test_http_status_reason_names_the_status() -> None:
    assert HTTPStatusError(404).reason == "the server answered 404"
    assert HTTPStatusError(302, "the server answered 302 without a target").status == 302


def test_tls_failures_count_as_connect_failures() -> None:
    err = TLSError()
    assert isinstance(err, feed_errors.ConnectError)
    assert err.kind == "connect"
    assert err.reason == "the server's TLS certificate is not valid"


def test_the_base_class_cannot_be_raised() -> None:
    with pytest.raises(TypeError):
        FeedError()


def test_old_names_still_import_and_catch() -> None:
    from bot.services.feed_parser import FeedParseError  # noqa: PLC0415
    from bot.services.fetcher import FeedFetchError  # noqa: PLC0415

    assert FeedFetchError is FetchError
    assert FeedParseError is ParseError
    with pytest.raises(FeedFetchError):
        raise HTTPStatusError(500)
    with pytest.raises(FeedParseError):
        raise NotAFeedError


# --------------------------------------------------------------------------- translation

RU = translator("ru")


@pytest.mark.parametrize("cls", CLASSES)
def test_every_default_reason_reads_in_russian(cls: type[FeedError]) -> None:
    reason = _make(cls).reason
    translated = localize_reason(reason, RU)
    assert translated != reason
    assert localize_reason(reason, translator("en")) == reason


@pytest.mark.parametrize(
    ("reason", "russian"),
    [
        (HTTPStatusError(404).reason, "сервер ответил кодом 404"),
        (
            HTTP_NO_TARGET_REASON % {"status": 302},
            "сервер ответил кодом 302 без адреса перенаправления",
        ),
        (TOO_LARGE_REASON % {"size": "5 MiB"}, "лента больше 5 MiB"),
    ],
)
def test_reasons_with_a_value_are_translated_even_when_read_back_from_storage(
    reason: str, russian: str
) -> None:
    stored = str(reason)  # FeedState.last_error keeps only the filled-in English text
    assert localize_reason(stored, RU) == russian


def test_an_unknown_reason_is_shown_as_it_is() -> None:
    assert localize_reason("a reason from an older version", RU) == (
        "a reason from an older version"
    )
