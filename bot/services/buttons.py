"""Signed callback data for the ``/list`` buttons: what a press asks for, unforgeable.

Telegram hands a button's ``callback_data`` back verbatim when it is pressed, but a modified
client can send any data it likes with a press. So every button carries its action, the
chat it acts on, the page it was on and a short key of the subscription, followed by an
HMAC-SHA256 of all that (truncated to 96 bits). The HMAC key is derived from the bot token
(HKDF-Extract: HMAC with a fixed label as the salt), so buttons keep working across
restarts, a token change invalidates them all, and neither the key nor the token can be
recovered from any number of buttons. Nothing is kept server-side per button.

A valid signature only proves the bot made the button; whoever presses it must still be
allowed to manage that chat (checked by the handler on every press), and the subscription
key is looked up again (the list may have changed since).

Layout (at most 64 bytes, Telegram's limit): ``l<action>:<chat id>:<page>:<key>:<sig>``,
e.g. ``lm:-1001234567890:3:kZ3f_Q2a:8Jx…`` (50 bytes for a supergroup and page 3).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from typing import Literal

logger = logging.getLogger(__name__)

ButtonAction = Literal["page", "mute", "filters", "clear", "rename", "remove", "confirm", "format"]
# One character per action in the data; "R" (confirmed removal) differs from "r" (ask first).
_CODES: dict[ButtonAction, str] = {
    "page": "p",
    "mute": "m",
    "filters": "f",
    "clear": "c",
    "rename": "n",
    "remove": "r",
    "confirm": "R",
    "format": "F",
}
_ACTIONS: dict[str, ButtonAction] = {code: action for action, code in _CODES.items()}
PREFIX = "l"  # every /list button's data starts with it
# What the handler takes: "l", one action code, ":" (other features' buttons never match).
PATTERN = re.compile(f"^{PREFIX}[{''.join(_CODES.values())}]:")
MAX_DATA_BYTES = 64  # Telegram's limit on callback_data
MAX_PAGE = 99_999
_SIG_BYTES = 12  # 96 bits: 16 base64 characters
_KEY_BYTES = 6  # 48 bits of the subscription URL's hash: 8 base64 characters
_KEY_LABEL = b"newsbot/callback-data/v1"


class BadButton(ValueError):
    """Callback data the bot did not make (forged, truncated, or from another token)."""


@dataclass(frozen=True, slots=True)
class ButtonData:
    """What a button asks for.

    Attributes:
        action: what to do.
        chat_id: the chat whose subscriptions it acts on.
        page: the /list page the button was on (0-based), to show again afterwards.
        key: :func:`url_key` of the subscription ("" for page buttons).
    """

    action: ButtonAction
    chat_id: int
    page: int = 0
    key: str = ""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def url_key(url: str) -> str:
    """A short, stable key of a subscription's URL (unique within any one chat's list)."""
    return _b64(hashlib.sha256(url.encode("utf-8")).digest()[:_KEY_BYTES])


class ButtonSigner:
    """Encodes and checks button data with a key derived from the bot token."""

    def __init__(self, token: str) -> None:
        self._key = hmac.new(_KEY_LABEL, token.encode("utf-8"), hashlib.sha256).digest()

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode("utf-8"), hashlib.sha256).digest()
        return _b64(digest[:_SIG_BYTES])

    def encode(self, data: ButtonData) -> str:
        """The ``callback_data`` for ``data``.

        Raises:
            ValueError: the page is out of range, or the result would exceed 64 bytes.
        """
        if not 0 <= data.page <= MAX_PAGE:
            raise ValueError(f"page {data.page} out of range")
        payload = f"{PREFIX}{_CODES[data.action]}:{data.chat_id}:{data.page}:{data.key}"
        encoded = f"{payload}:{self._sign(payload)}"
        if len(encoded.encode("utf-8")) > MAX_DATA_BYTES:
            raise ValueError(f"callback data of {len(encoded)} bytes")
        return encoded

    def decode(self, raw: str) -> ButtonData:
        """Check the signature and read the data back.

        Raises:
            BadButton: not data this bot made (the signature is checked before anything else
                is read, in constant time).
        """
        payload, _, signature = raw.rpartition(":")
        if not (payload and signature.isascii()):  # compare_digest takes ASCII text only
            raise BadButton("malformed")
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise BadButton("bad signature")
        head, chat, page, key = payload.split(":")  # signed by us: always four fields
        action = _ACTIONS.get(head[len(PREFIX) :])
        if action is None or not head.startswith(PREFIX):
            raise BadButton(f"unknown action {head!r}")
        return ButtonData(action, int(chat), int(page), key)
