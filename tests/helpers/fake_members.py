"""The chat-member half of the fake Bot API: who is what in which chat, and what the bot sees.

What Telegram does, and so what this fake does:

* ``getChatMember`` answers a ChatMember object shaped for its status (:func:`chat_member`:
  "creator", "administrator" with the rights that exist in that kind of chat, "member",
  "restricted" with its permissions, "left", "kicked"); anyone not set is a "member". Only
  a channel's administrators may look up its other members ("member list is inaccessible");
  a user id that is no positive number is "invalid user_id specified";
* ``getChatAdministrators`` lists the creator and administrators;
* asking about another chat (``getChat``, ``getChatMember``) finds only chats the bot knows
  (:meth:`FakeMembers.is_known`): an unknown one, or a private chat the bot left, is "chat
  not found", one the bot was kicked from answers 403 (:func:`forbidden_description`).
  Public chats (with a username) are found either way;
* a bot may not write first: a message to a private chat whose user never started the bot
  (never wrote to it there, never pressed Start) is refused 403 :data:`CANT_INITIATE`. A
  user counts as having started it once an update shows them doing so (a message of theirs
  in their private chat, or ``my_chat_member`` making the bot a member there) or a test
  says so (:meth:`FakeMembers.start_private_chat`).

Tests set statuses with :meth:`FakeBotAPI.set_admin`; ``my_chat_member`` updates record the
bot's own. Everything runs on the fake's event loop; no locks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.helpers.fake_text import ApiError, as_int

if TYPE_CHECKING:
    from tests.helpers.fake_bot_api import FakeBotAPI

# What Telegram answers a message to a user who never started the bot.
CANT_INITIATE = "Forbidden: bot can't initiate conversation with a user"
# Every permission flag PTB's ChatMemberRestricted requires.
_RESTRICTED_PERMISSIONS = [
    "can_change_info",
    "can_invite_users",
    "can_pin_messages",
    "can_send_messages",
    "can_send_polls",
    "can_send_other_messages",
    "can_add_web_page_previews",
    "can_manage_topics",
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
    "can_edit_tag",
    "can_react_to_messages",
]
_MEMBER_STATUSES = frozenset({"creator", "administrator", "member", "restricted", "left", "kicked"})
# ChatMemberAdministrator's rights: the common ones, then those only channels or only groups
# have (Telegram leaves the others out of the object).
_COMMON_ADMIN_RIGHTS = (
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_promote_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
)
_CHANNEL_ADMIN_RIGHTS = ("can_post_messages", "can_edit_messages")
_GROUP_ADMIN_RIGHTS = ("can_pin_messages",)
_SUPERGROUP_ADMIN_RIGHTS = ("can_manage_topics",)
_ADMIN_RIGHTS = frozenset(
    _COMMON_ADMIN_RIGHTS + _CHANNEL_ADMIN_RIGHTS + _GROUP_ADMIN_RIGHTS + _SUPERGROUP_ADMIN_RIGHTS
)


def forbidden_description(chat_type: str) -> str:
    """What a 403 says for a chat the bot was removed from (or a user who blocked it)."""
    if chat_type == "group":
        return "Forbidden: bot was kicked from the group chat"
    if chat_type == "supergroup":
        return "Forbidden: bot was kicked from the supergroup chat"
    if chat_type == "channel":
        return "Forbidden: bot is not a member of the channel chat"
    return "Forbidden: bot was blocked by the user"


def chat_member(
    user: dict[str, Any],
    status: str,
    chat_type: str | None = None,
    rights: dict[str, bool] | None = None,
) -> dict[str, Any]:
    """A ChatMember object shaped as Telegram sends it for ``status``.

    ``chat_type`` picks the administrator rights that exist in that kind of chat
    (``can_post_messages`` in channels, ``can_pin_messages`` in groups...); None gives
    them all. ``rights`` override the defaults (see :meth:`FakeMembers.set_status`).
    """
    member: dict[str, Any] = {"status": status, "user": dict(user)}
    rights = rights or {}
    if status == "creator":
        member["is_anonymous"] = False
    elif status == "administrator":
        names = list(_COMMON_ADMIN_RIGHTS)
        if chat_type in (None, "channel"):
            names += _CHANNEL_ADMIN_RIGHTS
        if chat_type in (None, "group", "supergroup"):
            names += _GROUP_ADMIN_RIGHTS
        if chat_type in (None, "supergroup"):
            names += _SUPERGROUP_ADMIN_RIGHTS
        defaults = dict.fromkeys(names, True)
        defaults |= {"can_promote_members": False} | dict.fromkeys(
            ("can_post_stories", "can_edit_stories", "can_delete_stories"), False
        )
        member |= {"can_be_edited": False, "is_anonymous": False}
        member |= {name: bool(rights.get(name, defaults[name])) for name in names}
    elif status == "kicked":
        member["until_date"] = 0
    elif status == "restricted":
        member |= {
            "is_member": True,
            "until_date": 0,
            **{name: bool(rights.get(name, False)) for name in _RESTRICTED_PERMISSIONS},
        }
    elif status not in _MEMBER_STATUSES:
        raise ValueError(f"unknown chat member status {status!r}")
    return member


class FakeMembers:
    """Membership state of one :class:`FakeBotAPI`: statuses and rights per (chat, user)."""

    def __init__(self, api: FakeBotAPI) -> None:
        self._api = api
        self._statuses: dict[tuple[int, int], str] = {}
        self._rights: dict[tuple[int, int], dict[str, bool]] = {}
        # Users who started the bot: the bot may write to their private chat.
        self.started: set[int] = set()

    def set_status(self, chat_id: int, user_id: int, status: str, **rights: bool) -> None:
        """Set what getChatMember answers for ``user_id`` in ``chat_id`` (default "member").

        ``rights`` override the flags of an "administrator" (every right is granted unless
        given here) or a "restricted" member (every permission is denied unless given).
        """
        if status not in _MEMBER_STATUSES:
            raise ValueError(f"unknown chat member status {status!r}")
        known = _ADMIN_RIGHTS if status == "administrator" else set(_RESTRICTED_PERMISSIONS)
        unknown = set(rights) - known if status in ("administrator", "restricted") else set(rights)
        if unknown:
            raise ValueError(f"flags {sorted(unknown)} do not apply to status {status!r}")
        self._statuses[(chat_id, user_id)] = status
        self._rights[(chat_id, user_id)] = dict(rights)

    def bot_status_changed(self, chat_id: int, status: str) -> None:
        """The bot's status in ``chat_id`` changed (a ``my_chat_member`` update); no rights."""
        self._statuses[(chat_id, self._api.bot_id)] = status
        self._rights.pop((chat_id, self._api.bot_id), None)

    def start_private_chat(self, user_id: int) -> None:
        """``user_id`` started the bot (without an update the bot gets): it may write to them."""
        if user_id <= 0:
            raise ValueError("private chats are users: use a positive id")
        self.started.add(user_id)

    def note_update(self, update: dict[str, Any]) -> None:
        """Remember a user starting the bot, as an update queued for it shows.

        A user's own message in their private chat means they started it (Telegram only
        delivers those after Start), and so does ``my_chat_member`` making the bot a member
        of a private chat (Start pressed, or the bot unblocked).
        """
        message = update.get("message") or update.get("edited_message")
        if isinstance(message, dict):
            chat, sender = message.get("chat") or {}, message.get("from") or {}
            if chat.get("type") == "private" and sender.get("id") == chat.get("id"):
                self.started.add(int(chat["id"]))
        change = update.get("my_chat_member")
        if isinstance(change, dict):
            chat = change.get("chat") or {}
            status = (change.get("new_chat_member") or {}).get("status")
            if chat.get("type") == "private" and status == "member":
                self.started.add(int(chat["id"]))

    def check_may_write(self, chat: dict[str, Any]) -> None:
        """Refuse a message to a private chat whose user never started the bot.

        Raises:
            ApiError: 403 :data:`CANT_INITIATE`.
        """
        if chat["type"] == "private" and int(chat["id"]) not in self.started:
            raise ApiError(403, CANT_INITIATE)

    def is_known(self, chat_id: int) -> bool:
        """Whether Telegram would know this chat to the bot (seen, registered or configured)."""
        return chat_id in self._api.chats or any(chat == chat_id for chat, _ in self._statuses)

    def other_chat(self, params: dict[str, Any]) -> dict[str, Any]:
        """The chat getChat/getChatMember ask about, refused as Telegram refuses it.

        Unknown chats and private chats the bot is not in are "chat not found"; a chat the
        bot was kicked from answers 403. Public chats (with a username) are found either way.
        """
        api = self._api
        chat_id = api._resolve_chat_id(params)
        if not self.is_known(chat_id):
            raise ApiError(400, "Bad Request: chat not found")
        chat = api._chat(chat_id)
        bot_status = self._statuses.get((chat_id, api.bot_id))
        if bot_status == "kicked" and chat["type"] != "private":
            raise ApiError(403, forbidden_description(chat["type"]))
        if bot_status == "left" and not chat.get("username"):
            raise ApiError(400, "Bad Request: chat not found")
        return chat

    # ------------------------------------------------------------------ Bot API methods

    async def get_chat_member(self, params: dict[str, Any]) -> dict[str, Any]:
        """getChatMember: the user's status in a chat the bot may look into."""
        api = self._api
        chat = self.other_chat(params)
        chat_id = int(chat["id"])
        user_id = as_int(params.get("user_id"), 0)
        if user_id <= 0:
            raise ApiError(400, "Bad Request: invalid user_id specified")
        bot_status = self._statuses.get((chat_id, api.bot_id), "member")
        if (
            chat["type"] == "channel"
            and user_id != api.bot_id
            and bot_status not in ("creator", "administrator")
        ):
            # Only a channel's administrators may see who else is in it.
            raise ApiError(400, "Bad Request: member list is inaccessible")
        status = self._statuses.get((chat_id, user_id), "member")
        rights = self._rights.get((chat_id, user_id))
        return chat_member(self._user(user_id), status, chat["type"], rights)

    async def get_chat_administrators(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """getChatAdministrators: the creator and administrators set for the chat."""
        api = self._api
        chat_id = api._resolve_chat_id(params)
        chat_type = api._chat(chat_id)["type"]
        return [
            chat_member(self._user(user_id), status, chat_type, self._rights.get((chat, user_id)))
            for (chat, user_id), status in self._statuses.items()
            if chat == chat_id and status in ("creator", "administrator")
        ]

    def _user(self, user_id: int) -> dict[str, Any]:
        api = self._api
        return dict(api.bot_user) if user_id == api.bot_id else api._user(user_id, None)
