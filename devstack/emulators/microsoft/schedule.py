"""Free/busy: ``POST /v1.0/me/calendar/getSchedule`` (and the cut's
``/v1.0/me/calendar/microsoft.graph.getSchedule``).

Rules (NOTES-msgraph §5; outlook-get-free-busy-schedule): parameters are matched
case-insensitively (the docs send camelCase, the cut PascalCase); at most 20 schedules; the period
must be less than 62 days - otherwise 400 ``ErrorTimeIntervalTooBig`` with the message Exchange
gives (microsoftgraph/microsoft-graph-docs#19703); ``availabilityViewInterval`` is 5-1440 minutes
(default 30). Each schedule answers one ``scheduleInformation``: ``availabilityView`` (a digit per
slot: 0 free, 1 tentative, 2 busy, 3 oof, 4 working elsewhere), ``scheduleItems`` (the default
calendar's events that are not free or cancelled, overlapping the period) and ``workingHours``;
an address the emulator does not know gets an ``error`` instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from devstack.emulators.common import JSONDict, abort_with, json_response
from devstack.emulators.microsoft import event_data, graph_spec, guards
from devstack.emulators.microsoft.errors import bad_request
from devstack.emulators.microsoft.model import (
    AVAILABILITY_INTERVAL_DEFAULT,
    AVAILABILITY_INTERVAL_MAX,
    AVAILABILITY_INTERVAL_MIN,
    GETSCHEDULE_MAX_SCHEDULES,
    WINDOWS_ZONES,
    MsUser,
)
from devstack.emulators.microsoft.state import MicrosoftState


def windows_name(zone_name: str) -> str:
    """The Windows name Exchange shows for a zone (the IANA name when it has none here)."""
    if zone_name in WINDOWS_ZONES:
        return zone_name
    return next((win for win, iana in WINDOWS_ZONES.items() if iana == zone_name), zone_name)


_DIGIT = {"free": "0", "tentative": "1", "busy": "2", "oof": "3", "workingElsewhere": "4"}
#: Which status a slot shows when items overlap, weakest first (out of office wins).
_RANK = "01423"
_DAY = 86400


def blueprint(state: MicrosoftState) -> Blueprint:
    bp = Blueprint("microsoft_schedule", __name__, url_prefix=guards.API_PREFIX)

    def get_schedule() -> ResponseReturnValue:
        with state.lock:
            _, _user = guards.authorize(state, "getSchedule")
            body = graph_spec.pascal_schedule_body(guards.body_object())
            guards.check_body(state, "getSchedule", body, "microsoft.graph.getSchedule")
            schedules, start, end, interval = _parameters(state, body)
            tz_name = event_data.preferred_zone(request.headers.get("Prefer"))
            value = [_information(state, s, start, end, interval, tz_name) for s in schedules]
            context = "https://graph.microsoft.com/v1.0/$metadata#Collection(microsoft.graph.scheduleInformation)"
            return json_response({"@odata.context": context, "value": value})

    bp.add_url_rule("/me/calendar/getSchedule", "get_schedule", get_schedule, methods=["POST"])
    bp.add_url_rule("/me/calendar/microsoft.graph.getSchedule", "get_schedule_ns", get_schedule, methods=["POST"])
    return bp


def _parameters(state: MicrosoftState, body: Mapping[str, Any]) -> tuple[list[str], float, float, int]:
    schedules = body.get("Schedules")
    if not isinstance(schedules, list) or not schedules or not all(isinstance(s, str) and s for s in schedules):
        abort_with(bad_request("Schedules must name at least one SMTP address.", "ErrorInvalidParameter"))
    if len(schedules) > GETSCHEDULE_MAX_SCHEDULES:
        abort_with(
            bad_request(
                f"At most {GETSCHEDULE_MAX_SCHEDULES} schedules can be requested at once.", "ErrorInvalidParameter"
            )
        )
    try:
        start = event_data.parse_when(body.get("StartTime"), "StartTime")
        end = event_data.parse_when(body.get("EndTime"), "EndTime")
    except event_data.EventError as exc:
        abort_with(bad_request(str(exc), exc.code))
    if end <= start:
        abort_with(bad_request("The end time must be later than the start time.", "ErrorInvalidTimeInterval"))
    limit = state.settings.getschedule_max_days
    days = math.ceil((end - start) / _DAY)
    if end - start >= limit * _DAY:
        abort_with(
            bad_request(
                "The requested time duration specified for FreeBusyViewOptions.TimeWindow is too long. "
                f"The allowed limit = {limit} days; the actual limit = {days} days.",
                "ErrorTimeIntervalTooBig",
            )
        )
    raw = body.get("AvailabilityViewInterval")
    interval = AVAILABILITY_INTERVAL_DEFAULT if raw is None else raw
    if isinstance(interval, str) and interval.strip().isdigit():
        interval = int(interval)  # the docs' own example sends "15"
    if not isinstance(interval, int) or not AVAILABILITY_INTERVAL_MIN <= interval <= AVAILABILITY_INTERVAL_MAX:
        abort_with(
            bad_request(
                f"AvailabilityViewInterval must be between {AVAILABILITY_INTERVAL_MIN} and "
                f"{AVAILABILITY_INTERVAL_MAX} minutes.",
                "ErrorInvalidParameter",
            )
        )
    return [str(s) for s in schedules], start, end, interval


def _information(
    state: MicrosoftState, address: str, start: float, end: float, interval: int, tz_name: str
) -> JSONDict:
    user = state.user_by_email(address)
    if user is None:
        return {
            "scheduleId": address,
            "availabilityView": "",
            "error": {
                "message": f"The user '{address}' could not be found.",
                "responseCode": "ErrorMailRecipientNotFound",
            },
        }
    items = _items(state, user, start, end)
    slots = max(1, math.ceil((end - start) / (interval * 60)))
    view = []
    for i in range(slots):
        lo, hi = start + i * interval * 60, min(end, start + (i + 1) * interval * 60)
        digits = [_DIGIT.get(status, "2") for status, s, e, _ in items if s < hi and e > lo]
        view.append(max(digits, key=_RANK.index) if digits else "0")
    return {
        "scheduleId": address,
        "availabilityView": "".join(view),
        "scheduleItems": [
            {
                "isPrivate": False,
                "status": status,
                "subject": subject,
                "location": "",
                "start": event_data.show_when(s, tz_name),
                "end": event_data.show_when(e, tz_name),
            }
            for status, s, e, subject in items
        ],
        "workingHours": {
            "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
            "startTime": "08:00:00.0000000",
            "endTime": "17:00:00.0000000",
            "timeZone": {"name": windows_name(user.time_zone)},
        },
    }


def _items(state: MicrosoftState, user: MsUser, start: float, end: float) -> list[tuple[str, float, float, str]]:
    cal_id = state.default_calendar(user).id
    out = []
    for rec in state.events.values():
        show_as = str(rec.resource.get("showAs") or "busy")
        if rec.calendar_id != cal_id or rec.deleted or rec.resource.get("isCancelled") or show_as == "free":
            continue
        if rec.start_ts < end and rec.end_ts > start:
            out.append((show_as, rec.start_ts, rec.end_ts, str(rec.resource.get("subject") or "")))
    return sorted(out, key=lambda item: item[1])
