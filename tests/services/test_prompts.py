"""The rename-prompt store: who answers, where, until when, and how many prompts it keeps."""

from __future__ import annotations

import pytest

from bot.services.prompts import MAX_PENDING_RENAMES, RENAME_WINDOW_S, PendingRename, RenamePrompts

GROUP, PRIVATE, USER, OTHER = -100, 7, 7, 8


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def prompts(clock: FakeClock) -> RenamePrompts:
    return RenamePrompts(window_s=60.0, limit=3, clock=clock)


def test_any_text_answers_in_a_private_chat_and_only_once(prompts: RenamePrompts) -> None:
    prompts.start(PRIVATE, USER, GROUP, "https://a.example/feed", prompt_id=5)
    taken = prompts.take(PRIVATE, USER, reply_to=None, private=True)
    again = prompts.take(PRIVATE, USER, reply_to=None, private=True)
    assert taken == PendingRename(GROUP, "https://a.example/feed", 5, 1060.0)
    assert again is None
    assert len(prompts) == 0


def test_in_a_group_only_a_reply_to_the_prompt_answers(prompts: RenamePrompts) -> None:
    prompts.start(GROUP, USER, GROUP, "u", prompt_id=5)
    chatter = prompts.take(GROUP, USER, reply_to=None, private=False)
    other_reply = prompts.take(GROUP, USER, reply_to=4, private=False)
    other_user = prompts.take(GROUP, OTHER, reply_to=5, private=False)
    other_chat = prompts.take(-200, USER, reply_to=5, private=False)
    answer = prompts.take(GROUP, USER, reply_to=5, private=False)
    # Talk that answers nothing leaves the prompt open for the real answer.
    assert [chatter, other_reply, other_user, other_chat] == [None] * 4
    assert answer is not None
    assert answer.prompt_id == 5


def test_a_prompt_expires_after_its_window(prompts: RenamePrompts, clock: FakeClock) -> None:
    prompts.start(PRIVATE, USER, GROUP, "u", prompt_id=1)
    clock.now += 59.9
    prompts.start(PRIVATE, OTHER, GROUP, "u", prompt_id=2)
    clock.now += 0.1  # the first prompt's window is over, to the tick
    late = prompts.take(PRIVATE, USER, reply_to=None, private=True)
    in_time = prompts.take(PRIVATE, OTHER, reply_to=None, private=True)
    assert late is None
    assert in_time is not None
    assert in_time.prompt_id == 2


def test_expired_prompts_are_forgotten_without_being_asked_for(
    prompts: RenamePrompts, clock: FakeClock
) -> None:
    prompts.start(PRIVATE, USER, GROUP, "u", prompt_id=1)
    prompts.start(PRIVATE, OTHER, GROUP, "u", prompt_id=2)
    clock.now += 61
    prompts.start(GROUP, USER, GROUP, "u", prompt_id=3)
    assert len(prompts) == 1


def test_a_new_prompt_replaces_the_users_earlier_one(prompts: RenamePrompts) -> None:
    prompts.start(GROUP, USER, GROUP, "https://old.example/", prompt_id=1)
    prompts.start(GROUP, USER, GROUP, "https://new.example/", prompt_id=2)
    old = prompts.take(GROUP, USER, reply_to=1, private=False)
    new = prompts.take(GROUP, USER, reply_to=2, private=False)
    assert old is None
    assert new is not None
    assert new.url == "https://new.example/"


def test_the_store_is_bounded_and_drops_the_oldest_first(prompts: RenamePrompts) -> None:
    for user in range(5):
        prompts.start(PRIVATE, user, GROUP, f"u{user}", prompt_id=user)
    left = [prompts.take(PRIVATE, user, reply_to=None, private=True) for user in range(5)]
    assert [p.url if p else None for p in left] == [None, None, "u2", "u3", "u4"]


def test_replacing_a_prompt_in_a_full_store_drops_no_one_else(prompts: RenamePrompts) -> None:
    for user in range(3):
        prompts.start(PRIVATE, user, GROUP, f"u{user}", prompt_id=user)
    prompts.start(PRIVATE, 0, GROUP, "u0 again", prompt_id=9)
    left = [prompts.take(PRIVATE, user, reply_to=None, private=True) for user in range(3)]
    assert [p.url if p else None for p in left] == ["u0 again", "u1", "u2"]


@pytest.mark.parametrize(("window_s", "limit"), [(60.0, 0), (0.0, 3), (-1.0, 3)])
def test_a_store_that_would_forget_every_prompt_is_refused(window_s: float, limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        RenamePrompts(window_s=window_s, limit=limit)


def test_defaults_match_the_prompt_text() -> None:
    # The prompt says "within 5 minutes"; the bound keeps memory small whatever users tap.
    assert RENAME_WINDOW_S == 300
    assert 1_000 <= MAX_PENDING_RENAMES <= 100_000
