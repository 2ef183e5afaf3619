"""The fake Bot API's inline keyboards, driven by a real PTB Bot: what Telegram accepts,
refuses and sends back when a button is pressed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from telegram import (
    Bot,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.error import BadRequest

from tests.helpers.fake_bot_api import FakeBotAPI


@pytest.fixture
async def bot(fake_api: FakeBotAPI) -> AsyncIterator[Bot]:
    """PTB on the fake; users 1-99 started the bot (tests here check other rules)."""
    for user_id in range(1, 100):
        fake_api.start_private_chat(user_id)
    async with Bot(fake_api.token, base_url=f"{fake_api.base_url}/bot") as ptb_bot:
        yield ptb_bot


def keyboard(*labels: str, data: str | None = None) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(label, callback_data=data or f"d:{label}") for label in labels]]
    )


async def test_buttons_are_recorded_and_a_press_becomes_a_callback_query(
    fake_api: FakeBotAPI, bot: Bot
) -> None:
    sent = await bot.send_message(5, "<b>pick</b>", parse_mode="HTML",
                                  reply_markup=keyboard("A", "B"))  # fmt: skip
    assert fake_api.buttons.labels(5, sent.message_id) == [["A", "B"]]
    query_id = fake_api.buttons.press(5, sent.message_id, user_id=77, text="B")
    [raw] = [u for u in fake_api.pending_updates if "callback_query" in u]
    update = Update.de_json(raw, bot)
    assert update.callback_query is not None
    assert update.callback_query.id == query_id
    assert update.callback_query.data == "d:B"
    assert update.callback_query.from_user.id == 77
    message = update.callback_query.message
    assert isinstance(message, Message)
    assert message.message_id == sent.message_id
    assert message.reply_markup == keyboard("A", "B")
    forged = fake_api.buttons.press(5, sent.message_id, user_id=77, data="anything at all")
    assert fake_api.buttons.queries[forged]["data"] == "anything at all"
    with pytest.raises(KeyError):
        fake_api.buttons.press(5, sent.message_id, user_id=77, text="C")


@pytest.mark.parametrize("data", ["x" * 65, "é" * 33, ""])
async def test_callback_data_over_64_bytes_or_empty_is_refused(
    fake_api: FakeBotAPI, bot: Bot, data: str
) -> None:
    markup = {"inline_keyboard": [[{"text": "A", "callback_data": data}]]}
    with pytest.raises(BadRequest, match="Button_data_invalid"):
        await bot.send_message(5, "pick", reply_markup=markup)  # type: ignore[arg-type]
    assert fake_api.sent_messages(5) == []
    await bot.send_message(5, "pick", reply_markup=keyboard("A", data="y" * 64))
    await bot.send_message(5, "pick", reply_markup=keyboard("A", data="é" * 32))


async def test_buttons_without_an_action_or_text_are_refused(
    fake_api: FakeBotAPI, bot: Bot
) -> None:
    for button in ({"text": "A"}, {"text": " ", "callback_data": "x"}):
        with pytest.raises(BadRequest, match="Text buttons are unallowed"):
            await bot.send_message(
                5,
                "pick",
                reply_markup={"inline_keyboard": [[button]]},  # type: ignore[arg-type]
            )
    too_many = InlineKeyboardMarkup(
        [[InlineKeyboardButton(str(n), callback_data=str(n)) for n in range(101)]]
    )
    with pytest.raises(BadRequest, match="Reply markup is too long"):
        await bot.send_message(5, "pick", reply_markup=too_many)
    await bot.send_message(5, "reply, please", reply_markup=ForceReply(selective=True))
    assert fake_api.sent_messages(5)[-1]["reply_markup"]["force_reply"] is True


async def test_edits_change_the_message_and_refuse_no_op_edits(
    fake_api: FakeBotAPI, bot: Bot
) -> None:
    sent = await bot.send_message(5, "one", reply_markup=keyboard("A"))
    await bot.edit_message_text("two", 5, sent.message_id, reply_markup=keyboard("B"))
    record = fake_api.buttons.record(5, sent.message_id)
    assert (record["plain"], fake_api.buttons.labels(5, sent.message_id)) == ("two", [["B"]])
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text("two", 5, sent.message_id, reply_markup=keyboard("B"))
    await bot.edit_message_text("two", 5, sent.message_id)  # no markup: the keyboard goes
    assert fake_api.buttons.labels(5, sent.message_id) == []
    await bot.edit_message_reply_markup(5, sent.message_id, reply_markup=keyboard("C"))
    assert fake_api.buttons.labels(5, sent.message_id) == [["C"]]
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_reply_markup(5, sent.message_id, reply_markup=keyboard("C"))
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("x", 5, sent.message_id + 100)
    with pytest.raises(BadRequest, match="Button_data_invalid"):
        await bot.edit_message_reply_markup(5, sent.message_id,
                                            reply_markup=keyboard("D", data="z" * 65))  # fmt: skip
    assert [e["kind"] for e in fake_api.buttons.edits] == ["text", "text", "reply_markup"]
    assert fake_api.buttons.message(5, sent.message_id)["text"] == "two"


async def test_a_press_is_answered_once(fake_api: FakeBotAPI, bot: Bot) -> None:
    sent = await bot.send_message(5, "pick", reply_markup=keyboard("A"))
    query_id = fake_api.buttons.press(5, sent.message_id, user_id=77, text="A")
    assert fake_api.buttons.answer(query_id) is None
    assert await bot.answer_callback_query(query_id, "Done", show_alert=True) is True
    assert await fake_api.buttons.wait_for_answer(query_id) == {
        "text": "Done",
        "show_alert": True,
    }
    with pytest.raises(BadRequest, match="Query is too old"):
        await bot.answer_callback_query(query_id, "again")
    with pytest.raises(BadRequest, match="Query is too old"):
        await bot.answer_callback_query("999", "unknown")
    other = fake_api.buttons.press(5, sent.message_id, user_id=77, text="A")
    with pytest.raises(BadRequest, match="Message_too_long"):
        await bot.answer_callback_query(other, "x" * 201)
    assert await bot.answer_callback_query(other) is True
    assert fake_api.buttons.answer(other) == {"text": None, "show_alert": False}


async def test_a_reply_carries_the_message_it_replies_to(fake_api: FakeBotAPI, bot: Bot) -> None:
    prompt = await bot.send_message(5, "title?", reply_markup=ForceReply())
    fake_api.send_command("New title", chat_id=5, user_id=5, reply_to=prompt.message_id)
    update = Update.de_json(fake_api.pending_updates[-1], bot)
    assert update.message is not None
    assert update.message.reply_to_message is not None
    assert update.message.reply_to_message.message_id == prompt.message_id
    assert update.message.reply_to_message.text == "title?"
