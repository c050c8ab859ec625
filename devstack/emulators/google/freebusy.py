"""``freebusy.query`` (``POST /calendar/v3/freeBusy``): busy spans of up to 50 calendars.

Rules: cancelled, transparent, working-location and birthday events and events the calendar's
owner declined are free; recurring events are expanded; spans are clipped to the window, merged,
and written in the requested ``timeZone``. Windows longer than ``freebusy_max_days`` are refused;
calendars past the limit or not visible get an ``errors`` entry instead of spans.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue

from devstack.emulators.common import JSONDict, abort_with, json_response, parse_rfc3339, rfc3339_millis, zone
from devstack.emulators.google import guards
from devstack.emulators.google.errors import bad_request
from devstack.emulators.google.event_data import declined_by_owner, expand_busy, fmt_busy
from devstack.emulators.google.model import GoogleCalendar, GoogleUser
from devstack.emulators.google.state import GoogleState


def blueprint(state: GoogleState) -> Blueprint:
    bp = Blueprint("google_freebusy", __name__, url_prefix=guards.PREFIX)

    @bp.post("/freeBusy")
    def freebusy() -> ResponseReturnValue:
        with state.lock:
            _, user = guards.authorize(state, "calendar.freebusy.query")
            body = guards.body_object()
            guards.check_types(guards.record_findings(state, "calendar.freebusy.query", body))
            tmin, tmax = _window(state, body)
            tzname = str(body.get("timeZone") or "UTC")
            out_tz = zone(tzname)
            if out_tz is None:
                return bad_request(f"Invalid time zone: {tzname}", location="timeZone")
            limit = state.settings.freebusy_max_calendars
            cem = body.get("calendarExpansionMax")
            if isinstance(cem, int) and 0 < cem < limit:
                limit = cem
            calendars: dict[str, JSONDict] = {}
            for i, item in enumerate(body.get("items") or []):
                key = str(item.get("id", "")) if isinstance(item, Mapping) else ""
                if i >= limit:
                    calendars[key] = {
                        "busy": [],
                        "errors": [{"domain": "global", "reason": "tooManyCalendarsRequested"}],
                    }
                    continue
                calendars[key] = _calendar_busy(state, user, key, tmin, tmax, out_tz)
            return json_response(
                {
                    "kind": "calendar#freeBusy",
                    "timeMin": rfc3339_millis(tmin.timestamp()),
                    "timeMax": rfc3339_millis(tmax.timestamp()),
                    "calendars": calendars,
                }
            )

    return bp


def _window(state: GoogleState, body: Mapping[str, Any]) -> tuple[datetime, datetime]:
    raw_min, raw_max = body.get("timeMin"), body.get("timeMax")
    if not raw_min:
        abort_with(bad_request("Missing timeMin parameter.", reason="required", location="timeMin"))
    if not raw_max:
        abort_with(bad_request("Missing timeMax parameter.", reason="required", location="timeMax"))
    tmin, tmax = parse_rfc3339(str(raw_min)), parse_rfc3339(str(raw_max))
    if tmin is None or tmin.tzinfo is None:
        abort_with(bad_request("Bad Request", location="timeMin"))
    if tmax is None or tmax.tzinfo is None:
        abort_with(bad_request("Bad Request", location="timeMax"))
    tmin, tmax = tmin.astimezone(UTC), tmax.astimezone(UTC)
    if tmax <= tmin:
        abort_with(
            bad_request(
                "The specified time range is empty.", reason="timeRangeEmpty", domain="calendar", location="timeMax"
            )
        )
    max_days = state.settings.freebusy_max_days
    if max_days is not None and tmax - tmin > timedelta(days=max_days):
        abort_with(
            bad_request(
                "The requested time range is too long.",
                reason="timeRangeTooLong",
                domain="calendar",
                location="timeMax",
            )
        )
    return tmin, tmax


def _calendar_busy(
    state: GoogleState, user: GoogleUser, key: str, tmin: datetime, tmax: datetime, out_tz: Any
) -> JSONDict:
    cid = user.email if key == "primary" else key
    role = user.calendars.get(cid)
    cal = state.calendars.get(cid)
    if cal is None or role in (None, "none"):
        return {"busy": [], "errors": [{"domain": "global", "reason": "notFound"}]}
    merged = _merged_spans(state, cal, cid, tmin, tmax)
    return {"busy": [{"start": fmt_busy(s, out_tz), "end": fmt_busy(e, out_tz)} for s, e in merged]}


def _merged_spans(
    state: GoogleState, cal: GoogleCalendar, cid: str, tmin: datetime, tmax: datetime
) -> list[list[datetime]]:
    spans: list[tuple[datetime, datetime]] = []
    for rec in state.events.get(cid, {}).values():
        res = rec.resource
        if res.get("status") == "cancelled" or res.get("transparency") == "transparent":
            continue
        if res.get("eventType") in ("workingLocation", "birthday"):
            continue
        if declined_by_owner(res, cid):
            continue
        spans.extend(expand_busy(rec, cal.time_zone, tmin, tmax))
    spans = sorted((max(s, tmin), min(e, tmax)) for s, e in spans)
    merged: list[list[datetime]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return merged
