from bot.services.ratelimit import NewsRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_budget_then_one_notice_then_silence_then_new_window() -> None:
    clock = Clock()
    limiter = NewsRateLimiter(3, 60, clock=clock)
    assert [limiter.check(1).verdict for _ in range(3)] == ["allow"] * 3
    clock.now += 20
    notice = limiter.check(1)
    assert notice.verdict == "notify"
    assert notice.retry_after_s == 40
    dropped = limiter.check(1)
    assert dropped.verdict == "drop"
    assert dropped.retry_after_s == 40
    clock.now += 40
    assert limiter.check(1).verdict == "allow"


def test_users_are_independent() -> None:
    clock = Clock()
    limiter = NewsRateLimiter(1, 60, clock=clock)
    assert limiter.check(1).verdict == "allow"
    assert limiter.check(2).verdict == "allow"
    assert limiter.check(1).verdict == "notify"
    assert limiter.check(2).verdict == "notify"


def test_memory_is_bounded_and_expired_windows_are_dropped() -> None:
    clock = Clock()
    limiter = NewsRateLimiter(1, 60, max_users=100, clock=clock)
    for user in range(1000):
        limiter.check(user)
    assert len(limiter) == 100
    # The newest users are the ones kept: user 999 is still limited.
    assert limiter.check(999).verdict == "notify"
    clock.now += 61
    limiter.check(5000)
    assert len(limiter) == 1


def test_retry_after_is_at_least_one_second() -> None:
    clock = Clock()
    limiter = NewsRateLimiter(1, 60, clock=clock)
    limiter.check(1)
    clock.now += 59.99
    assert limiter.check(1).retry_after_s == 1


def test_a_breach_is_described_with_the_limit_and_what_the_user_was_told() -> None:
    clock = Clock()
    limiter = NewsRateLimiter(count=1, window_s=60, clock=clock)
    assert limiter.check(7).verdict == "allow"
    clock.now += 20
    told, silent = limiter.check(7), limiter.check(7)
    assert limiter.breach(told, 7, -100) == {
        "user_id": 7,
        "chat_id": -100,
        "limit": 1,
        "window_s": 60,
        "retry_after_s": 40,
        "action": "notified",
    }
    assert limiter.breach(silent, 7, -100)["action"] == "dropped"
