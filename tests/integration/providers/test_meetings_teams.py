"""The Teams adapter (shared.providers.microsoft.teams) against the Microsoft emulator (PRODUCT.md §2.6).

An event with a Teams link in the class's zone; lost answers (the event was made, the answer never
arrived) retried in-process and by a later job without a second event (``transactionId``); a move
keeps the link; delete is idempotent; an account that cannot host Teams meetings leaves no event;
errors carry no token; the drift probe reads the event.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import SecretStr

from devstack.emulators.microsoft import MicrosoftEmulator
from shared.providers.meetings import MeetingAuthError, MeetingError, MeetingSpec
from shared.providers.microsoft.teams import TeamsMeetings, TeamsProbe, transaction_id
from tests.integration.emulators.microsoft.support import tokens

BERLIN = "Europe/Berlin"


@pytest.fixture(scope="module")
def graph_emu() -> Iterator[MicrosoftEmulator]:
    emu = MicrosoftEmulator().start()
    yield emu
    emu.stop()


@pytest.fixture
def emu(graph_emu: MicrosoftEmulator) -> MicrosoftEmulator:
    graph_emu.reset()
    return graph_emu


def _token(emu: MicrosoftEmulator, email: str | None = None) -> SecretStr:
    if email:
        emu.set_next_consent(email)
    with httpx.Client() as http:
        return SecretStr(str(tokens(http, emu)["access_token"]))


def _teams(emu: MicrosoftEmulator) -> TeamsMeetings:
    return TeamsMeetings(api_base=emu.api_base, timeout_s=5, sleep=lambda _: None)


def _spec(key: str = "sess_1.g1", *, days: int = 10, hour: int = 18, calendar_id: str = "primary") -> MeetingSpec:
    # A wall time in Berlin ten days out (a winter date keeps the offset at +01:00 either way)
    start = datetime(2030, 1, 7, hour, 0, tzinfo=ZoneInfo(BERLIN)) + timedelta(days=days)
    return MeetingSpec(
        key=key,
        title="Algebra with Ada",
        start=start,
        end=start + timedelta(minutes=60),
        timezone=BERLIN,
        description="Algebra with Ada: online class booked on the marketplace.",
        calendar_id=calendar_id,
    )


def _utc(event_time: dict[str, str]) -> datetime:
    assert event_time["timeZone"] == "UTC"
    return datetime.fromisoformat(event_time["dateTime"]).replace(tzinfo=UTC)


def test_create_move_delete_with_one_teams_link_in_the_class_zone(emu: MicrosoftEmulator) -> None:
    token, teams, spec = _token(emu), _teams(emu), _spec()
    # When the session's meeting is created
    minted = teams.create(token, spec)
    # Then one Outlook event carries a Teams link, written in the class's zone
    assert minted.join_url is not None
    assert minted.join_url.startswith("https://teams.microsoft.com/l/meetup-join/")
    (event,) = emu.events()
    assert event["id"] == minted.meeting_id
    assert (event["isOnlineMeeting"], event["onlineMeetingProvider"]) == (True, "teamsForBusiness")
    assert event["originalStartTimeZone"] == BERLIN
    assert event["transactionId"] == transaction_id(spec.key)
    assert _utc(event["start"]) == spec.start.astimezone(UTC)
    assert _utc(event["end"]) == spec.end.astimezone(UTC)
    assert event["subject"] == spec.title
    # And the probe sees it at those times
    seen = TeamsProbe(api_base=emu.api_base, sleep=lambda _: None).observe(token, minted.meeting_id)
    assert (seen.gone, seen.start, seen.end) == (False, spec.start.astimezone(UTC), spec.end.astimezone(UTC))
    # When it is moved a day and an hour later / Then the same event, the same link, the new time
    later = _spec(days=11, hour=19)
    moved = teams.move(token, minted.meeting_id, later)
    assert (moved.meeting_id, moved.join_url) == (minted.meeting_id, minted.join_url)
    (event,) = emu.events()
    assert _utc(event["start"]) == later.start.astimezone(UTC)
    assert event["onlineMeeting"]["joinUrl"] == minted.join_url
    # When it is deleted twice / Then deleted once, "already gone" the second time, and gone to the probe
    assert teams.delete(token, minted.meeting_id, later) is True
    assert teams.delete(token, minted.meeting_id, later) is False
    assert emu.events() == []
    assert TeamsProbe(api_base=emu.api_base).observe(token, minted.meeting_id).gone is True


def test_lost_answers_never_make_a_second_event(emu: MicrosoftEmulator) -> None:
    token, teams, spec = _token(emu), _teams(emu), _spec("sess_lost.g1")
    # Given every create answer is lost after Graph made the event (4 = all in-process attempts)
    emu.set_faults(
        forced=[{"status": 500, "path_prefix": "/v1.0/me/events", "method": "POST", "after": True, "count": 4}]
    )
    # When the worker's create runs / Then it fails retryably, and Graph holds one event, not four
    with pytest.raises(MeetingError) as err:
        teams.create(token, spec)
    assert (err.value.code, err.value.retryable) == ("unavailable", True)
    assert len(emu.events()) == 1
    # When the job is retried (in-process retries cover one more lost answer on the way)
    emu.set_faults(forced=[{"status": 500, "path_prefix": "/v1.0/me/events", "method": "POST", "after": True}])
    minted = teams.create(token, spec)
    # Then the retry got the event made first: still exactly one, with its link
    (event,) = emu.events()
    assert minted.meeting_id == event["id"]
    assert minted.join_url == event["onlineMeeting"]["joinUrl"]
    assert teams.find(token, spec) is None  # no read by transactionId: the create above is the lookup
    # And another session's key makes its own event
    other = teams.create(token, _spec("sess_other.g1", days=12))
    assert other.meeting_id != minted.meeting_id
    assert len(emu.events()) == 2


def test_selected_calendar_and_an_account_without_teams(emu: MicrosoftEmulator) -> None:
    # Given an account with a second writable calendar, and one that cannot host online meetings
    emu.add_user(
        "ada@example.com",
        calendars=[
            {"name": "Classes", "can_edit": True},
            {"name": "No Teams", "can_edit": True, "online_meetings": False},
        ],
    )
    token, teams = _token(emu, "ada@example.com"), _teams(emu)
    with httpx.Client() as http:
        listed = http.get(
            f"{emu.api_base}/me/calendars", headers={"Authorization": f"Bearer {token.get_secret_value()}"}
        )
    ids = {c["name"]: c["id"] for c in listed.json()["value"]}
    # When the session's event goes to the selected calendar / Then it is there
    minted = teams.create(token, _spec("sess_cal.g1", calendar_id=ids["Classes"]))
    (event,) = emu.events("ada@example.com")
    assert event["id"] == minted.meeting_id
    assert minted.join_url
    # When the calendar cannot host Teams meetings / Then a clear, final error and no event left behind
    with pytest.raises(MeetingError) as err:
        teams.create(token, _spec("sess_noteams.g1", calendar_id=ids["No Teams"]))
    assert (err.value.code, err.value.retryable) == ("conference_failed", False)
    assert "cannot host Teams meetings" in str(err.value)
    assert [e["id"] for e in emu.events("ada@example.com")] == [minted.meeting_id]


def test_refused_token_and_throttling_errors_carry_no_token(emu: MicrosoftEmulator) -> None:
    token, spec, refused = _token(emu), _spec("sess_err.g1"), SecretStr("not-a-token-" + "x" * 30)
    # A refused token is MeetingAuthError (the worker's forced refresh reacts to it)
    with pytest.raises(MeetingAuthError) as auth:
        _teams(emu).create(refused, spec)
    assert auth.value.code == "unauthorized"
    assert refused.get_secret_value() not in f"{auth.value} {auth.value!r}"
    # Throttling beyond the short in-process waits goes back to the worker with Graph's wait
    emu.set_faults(forced=[{"status": 429, "path_prefix": "/v1.0/me/events", "retry_after": 30, "count": 5}])
    with pytest.raises(MeetingError) as throttled:
        _teams(emu).create(token, spec)
    assert (throttled.value.code, throttled.value.retryable, throttled.value.retry_after_s) == (
        "rate_limited",
        True,
        30,
    )
    emu.clear_faults()
    assert emu.events() == []
    for exc in (auth.value, throttled.value):
        assert token.get_secret_value() not in f"{exc} {exc!r}"
