"""Signed button data: round trips, forgery, other tokens, Telegram's 64-byte limit."""

from __future__ import annotations

import pytest

from bot.services.buttons import (
    MAX_DATA_BYTES,
    MAX_PAGE,
    PATTERN,
    BadButton,
    ButtonData,
    ButtonSigner,
    url_key,
)

TOKEN = "123456789:" + "A" * 35
SIGNER = ButtonSigner(TOKEN)
BIGGEST_CHAT = -1_009_999_999_999  # a supergroup id as long as they get


@pytest.mark.parametrize(
    "data",
    [
        ButtonData("page", 42),
        ButtonData("mute", BIGGEST_CHAT, MAX_PAGE, url_key("https://e.example/" + "x" * 3000)),
        ButtonData("confirm", -100, 3, url_key("https://e.example/feed")),
        ButtonData("remove", 7, 0, url_key("https://e.example/feed")),
    ],
)
def test_data_round_trips_within_64_bytes(data: ButtonData) -> None:
    encoded = SIGNER.encode(data)
    assert len(encoded.encode()) <= MAX_DATA_BYTES
    assert PATTERN.match(encoded)
    assert SIGNER.decode(encoded) == data


def test_every_action_has_its_own_code() -> None:
    actions = ("page", "mute", "filters", "clear", "rename", "remove", "confirm")
    encoded = {SIGNER.encode(ButtonData(a, 1)) for a in actions}  # type: ignore[arg-type]
    assert len(encoded) == len(actions)
    assert {SIGNER.decode(e).action for e in encoded} == set(actions)


def test_changing_any_part_breaks_the_signature() -> None:
    encoded = SIGNER.encode(ButtonData("mute", -100123, 2, url_key("https://a.example/")))
    head, chat, page, key, sig = encoded.split(":")
    forgeries = [
        f"{head}:-100999:{page}:{key}:{sig}",  # another chat
        f"lr:{chat}:{page}:{key}:{sig}",  # another action
        f"{head}:{chat}:3:{key}:{sig}",
        f"{head}:{chat}:{page}:{url_key('https://b.example/')}:{sig}",
        f"{head}:{chat}:{page}:{key}:{sig[:-1]}A" if sig[-1] != "A" else encoded[:-1] + "B",
        f"{head}:{chat}:{page}:{key}",
        "",
        "garbage",
        f"{head}:{chat}:{page}:{key}:ünïcode",
    ]
    for forged in forgeries:
        with pytest.raises(BadButton):
            SIGNER.decode(forged)


def test_another_token_makes_other_signatures() -> None:
    data = ButtonData("page", 5, 1)
    other = ButtonSigner("987654321:" + "B" * 35)
    with pytest.raises(BadButton):
        other.decode(SIGNER.encode(data))
    assert ButtonSigner(TOKEN).decode(SIGNER.encode(data)) == data  # survives a restart


def test_the_token_never_appears_in_the_data() -> None:
    encoded = SIGNER.encode(ButtonData("mute", 1, 0, url_key("https://e.example/")))
    assert TOKEN.split(":")[1][:8] not in encoded
    assert "123456789" not in encoded


def test_out_of_range_pages_are_refused_when_encoding() -> None:
    with pytest.raises(ValueError, match="page"):
        SIGNER.encode(ButtonData("page", 1, MAX_PAGE + 1))
    with pytest.raises(ValueError, match="page"):
        SIGNER.encode(ButtonData("page", 1, -1))


def test_url_keys_are_short_and_distinct() -> None:
    keys = {url_key(f"https://feeds.example/{n}.xml") for n in range(10_000)}
    assert len(keys) == 10_000
    assert {len(k) for k in keys} == {8}


def test_other_features_buttons_do_not_match_the_pattern() -> None:
    for data in ("lang:ru", "l:1", "list", "x" + SIGNER.encode(ButtonData("page", 1))):
        assert PATTERN.match(data) is None
