"""POST /private-sessions' online rules (PRODUCT.md §2.4, §2.10), on the service with moto: the plan
gate, the video provider's resolution and the Zoom Basic 40-minute warning, checked before any time
is claimed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.availability.bookable import MentorTime
from shared.availability.rules import AvailabilityRules
from shared.platform.api import ApiError
from shared.schedule.private import CreatePrivateSessionRequest, PrivateSessions
from shared.store import Connection, ConnectionStatus, MeetingProvider, Provider, ScheduleStore, Store

MENTOR = "m-private"
NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
START = datetime(2027, 3, 3, 10, 0, tzinfo=UTC)
RULES = {
    "timezone": "UTC",
    "weekly": {d: [{"start": "08:00", "end": "18:00"}] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    "minimumNoticeMinutes": 0,
}


def _service(store: Store, schedule: ScheduleStore) -> PrivateSessions:
    hours = AvailabilityRules.model_validate(RULES).hours()
    return PrivateSessions(
        store=store,
        schedule=schedule,
        mentor_time=lambda _m, _n: MentorTime(hours=hours, busy=()),
        hold=timedelta(minutes=30),
        clock=lambda: NOW,
    )


def _online(**over: Any) -> CreatePrivateSessionRequest:
    body = {
        "mentorId": MENTOR,
        "start": START.isoformat(),
        "durationMinutes": 45,
        "format": "online",
        "studentEmail": "s@example.com",
        "studentName": "Sam",
        "priceAmount": 5000,
        "currency": "eur",
        **over,
    }
    return CreatePrivateSessionRequest.model_validate(body)


def _connect(store: Store, provider: Provider, plan_type: int | None = None) -> None:
    store.save_connection(
        Connection(mentor_id=MENTOR, provider=provider, status=ConnectionStatus.CONNECTED, plan_type=plan_type),
        expected_version=None,
    )


def _refused(service: PrivateSessions, body: CreatePrivateSessionRequest) -> tuple[int, str]:
    with pytest.raises(ApiError) as caught:
        service.create(body)
    return caught.value.status, caught.value.code


def test_online_needs_a_paid_plan_and_a_video_provider(store: Store, schedule: ScheduleStore) -> None:
    service = _service(store, schedule)
    assert _refused(service, _online()) == (403, "plan_required")  # no profile: Free
    store.upsert_mentor(MENTOR, plan="pro")
    assert _refused(service, _online()) == (409, "no_video_provider")
    _connect(store, Provider.APPLE)
    assert _refused(service, _online()) == (409, "no_video_provider")  # Apple cannot host meetings
    assert _refused(service, _online(meetingProvider="zoom")) == (409, "provider_not_connected")
    # And nothing was claimed on the way
    assert schedule.timeline.spans_between(MENTOR, int(START.timestamp()) - 3600, int(START.timestamp()) + 7200) == []


def test_the_provider_is_resolved_and_a_zoom_basic_account_warns(store: Store, schedule: ScheduleStore) -> None:
    store.upsert_mentor(MENTOR, plan="premium")
    _connect(store, Provider.ZOOM, plan_type=1)
    made = _service(store, schedule).create(_online())
    assert [w.code for w in made.warnings] == ["zoom_free_40_min_cap"]
    klass = schedule.get_class(made.class_id)
    assert klass is not None
    assert (klass.meeting_provider, klass.private, klass.capacity) == (MeetingProvider.ZOOM, True, 1)
    # Both Google and Zoom connected: the platform must choose
    _connect(store, Provider.GOOGLE)
    later = _online(start=(START + timedelta(hours=2)).isoformat())
    assert _refused(_service(store, schedule), later) == (400, "meeting_provider_required")
    chosen = _service(store, schedule).create(_online(start=later.start.isoformat(), meetingProvider="google_meet"))
    assert chosen.warnings == []
