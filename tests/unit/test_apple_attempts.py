"""Apple connect's attempt limits and iCloud breaker (shared.connections.attempts) over moto's table:
the growing back-off, Retry-After, idle windows, resets on success, the breaker (PRODUCT.md §2.2)."""

from __future__ import annotations

import pytest

from shared.connections.attempts import (
    APPLE_ID_KIND,
    MENTOR_KIND,
    AppleAttemptLimiter,
    AppleLimitSettings,
    apple_id_key,
)
from shared.platform import aws
from shared.platform.api import ApiError
from shared.store import Table
from shared.store.guards import Guards

TABLE = "mentor-connections-test"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def guards(aws_env: None) -> Guards:
    return Guards(Table(aws.client("dynamodb"), TABLE))


def _limiter(guards: Guards, clock: Clock, **overrides: object) -> AppleAttemptLimiter:
    return AppleAttemptLimiter(guards, AppleLimitSettings(**overrides), clock=clock)  # type: ignore[arg-type]


def _refused(limiter: AppleAttemptLimiter, mentor: str, apple_id: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        limiter.admit(mentor, apple_id)
    return caught.value


def test_back_off_starts_at_the_limit_and_doubles(guards: Guards, clock: Clock) -> None:
    # Given the defaults: 5 free sign-ins, then 60 s doubling up to 1 h
    limiter = _limiter(guards, clock)
    # When one mentor tries one Apple ID five times / Then all five are admitted
    for _ in range(5):
        limiter.admit("m1", "ada@icloud.com")
    # And the sixth, at once, is refused with 429 and Retry-After 60
    err = _refused(limiter, "m1", "ada@icloud.com")
    assert (err.status, err.code, err.headers, err.extra) == (
        429,
        "too_many_attempts",
        {"Retry-After": "60"},
        {"retryAfterSeconds": 60},
    )
    # And refusals are not counted: 59 s later it is still 1 s to wait, not longer
    clock.now += 59
    assert _refused(limiter, "m1", "ada@icloud.com").headers == {"Retry-After": "1"}
    # When the back-off is over, one more is admitted and the next back-off is twice as long
    waits = []
    for _ in range(8):
        clock.now += float(_refused(limiter, "m1", "ada@icloud.com").headers["Retry-After"]) if waits else 1
        limiter.admit("m1", "ada@icloud.com")
        waits.append(int(_refused(limiter, "m1", "ada@icloud.com").headers["Retry-After"]))
    assert waits == [120, 240, 480, 960, 1920, 3600, 3600, 3600]


def test_limits_are_per_mentor_and_per_apple_id(guards: Guards, clock: Clock) -> None:
    limiter = _limiter(guards, clock)
    # Given one mentor trying five different Apple IDs
    for n in range(5):
        limiter.admit("m-spray", f"id{n}@icloud.com")
    # Then a sixth Apple ID is refused for that mentor, but another mentor may try it
    assert _refused(limiter, "m-spray", "id9@icloud.com").code == "too_many_attempts"
    limiter.admit("m-other", "id9@icloud.com")
    # And five mentors trying one Apple ID block it for a sixth mentor (case and spaces do not matter)
    for n in range(5):
        limiter.admit(f"m{n}", "Victim@iCloud.com")
    assert _refused(limiter, "m-new", " victim@icloud.com ").code == "too_many_attempts"
    # And the counter stores the Apple ID's hash, never the Apple ID
    stored = guards.counter(APPLE_ID_KIND, apple_id_key("victim@icloud.com"))
    assert stored is not None
    assert "victim" not in str(stored).lower()


def test_success_resets_and_idle_counters_start_again(guards: Guards, clock: Clock) -> None:
    limiter = _limiter(guards, clock)
    for _ in range(4):
        limiter.admit("m1", "ada@icloud.com")
    # When the fifth sign-in succeeds / Then both counters are gone and the mentor starts again
    limiter.admit("m1", "ada@icloud.com")
    limiter.succeeded("m1", "ada@icloud.com")
    assert guards.counter(MENTOR_KIND, "m1") is None
    assert guards.counter(APPLE_ID_KIND, apple_id_key("ada@icloud.com")) is None
    for _ in range(4):
        limiter.admit("m1", "ada@icloud.com")
    # And a counter idle for a whole window (24 h) starts again at 1, whatever DynamoDB's TTL did
    clock.now += 24 * 3600 + 1
    for _ in range(4):
        limiter.admit("m1", "ada@icloud.com")
    item = guards.counter(MENTOR_KIND, "m1")
    assert item is not None
    assert int(item["count"]) == 4


def test_a_burst_of_icloud_401s_opens_the_breaker(guards: Guards, clock: Clock) -> None:
    # Given a breaker of 3 iCloud 401s a minute, open for 300 s
    limiter = _limiter(guards, clock, apple_breaker_threshold=3, apple_breaker_window_s=60, apple_breaker_open_s=300)
    for n in range(2):
        limiter.admit(f"m{n}", f"id{n}@icloud.com")
        limiter.rejected()
    limiter.admit("m2", "id2@icloud.com")  # still closed after two
    # When the third 401 arrives / Then every mentor is refused 503 apple_paused, nothing counted
    limiter.rejected()
    err = _refused(limiter, "m-fresh", "fresh@icloud.com")
    assert (err.status, err.code, err.headers) == (503, "apple_paused", {"Retry-After": "300"})
    assert guards.counter(MENTOR_KIND, "m-fresh") is None
    # And after 300 s it lets sign-ins through again
    clock.now += 300
    limiter.admit("m-fresh", "fresh@icloud.com")
    # And 401s spread over several windows never open it
    guards.close("apple-icloud-401")
    for _ in range(6):
        limiter.rejected()
        clock.now += 40
    limiter.admit("m-late", "late@icloud.com")
