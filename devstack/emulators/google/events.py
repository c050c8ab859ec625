"""Calendar events: ``events.insert``/``list``/``get``/``patch``/``update``/``delete`` under
``/calendar/v3/calendars/{calendarId}/events``, and the ``404`` every other Calendar path gets.

Rules: writes need the writer role, reads the reader role; a write that fails validation leaves
the event as it was; every change bumps ``etag``/``updated`` (and ``sequence`` when the timing
changed), notes the attendee e-mails ``sendUpdates`` asks for, and notifies watch channels.
Deleting marks the event ``cancelled``; ``get`` still returns it. ``get``/``patch``/``update``/
``delete`` honour ``If-Match`` (stale: 412) and ``If-None-Match`` (current: 304 on ``get``).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from devstack.emulators.common import (
    Answer,
    JSONDict,
    empty_response,
    json_response,
    parse_rfc3339,
    random_urlsafe,
    rfc3339_millis,
)
from devstack.emulators.google import guards
from devstack.emulators.google.errors import api_error, bad_request, gone, not_found
from devstack.emulators.google.event_data import (
    apply_conference,
    merge_patch,
    new_event_resource,
    render_event,
    touch,
    when_to_utc,
)
from devstack.emulators.google.model import EVENT_READ_ONLY, EventRecord, GoogleCalendar
from devstack.emulators.google.state import GoogleState

#: What ``events.update`` keeps of the stored event (the rest is replaced by the body).
_KEPT_ON_UPDATE = (
    "kind",
    "id",
    "htmlLink",
    "created",
    "creator",
    "organizer",
    "iCalUID",
    "conferenceData",
    "hangoutLink",
    "eventType",
)


def blueprint(state: GoogleState) -> Blueprint:
    bp = Blueprint("google_events", __name__, url_prefix=guards.PREFIX)
    _install_reads(bp, state)
    _install_writes(bp, state)

    @bp.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def calendar_unknown(rest: str) -> ResponseReturnValue:
        return not_found()

    return bp


def _time_range_empty(location: str | None = None) -> Answer:
    return Answer(
        bad_request("The specified time range is empty.", reason="timeRangeEmpty", domain="calendar", location=location)
    )


def _install_reads(bp: Blueprint, state: GoogleState) -> None:
    @bp.get("/calendars/<calendar_id>/events")
    def events_list(calendar_id: str) -> ResponseReturnValue:
        with state.lock:
            _, user = guards.authorize(state, "calendar.events.list")
            cal, role = guards.calendar_for(state, user, calendar_id, "reader")
            tmin = parse_rfc3339(request.args.get("timeMin", "")) if request.args.get("timeMin") else None
            tmax = parse_rfc3339(request.args.get("timeMax", "")) if request.args.get("timeMax") else None
            if tmin and tmax and tmax <= tmin:
                raise _time_range_empty("timeMax")
            return json_response(
                {
                    "kind": "calendar#events",
                    "etag": state.next_etag(),
                    "summary": cal.summary,
                    "updated": rfc3339_millis(state.now()),
                    "timeZone": cal.time_zone,
                    "accessRole": role,
                    "defaultReminders": [{"method": "popup", "minutes": 10}],
                    "nextSyncToken": "CP" + random_urlsafe(12),
                    "items": _listed(state, cal, tmin, tmax),
                }
            )

    @bp.get("/calendars/<calendar_id>/events/<event_id>")
    def events_get(calendar_id: str, event_id: str) -> ResponseReturnValue:
        with state.lock:
            _, user = guards.authorize(state, "calendar.events.get")
            _, rec = guards.find_event(state, user, calendar_id, event_id, "reader")
            guards.check_preconditions(rec, read=True)
            # "The get method always returns them" (Event.status): cancelled events included.
            return json_response(render_event(rec, consume_poll=True))


def _listed(state: GoogleState, cal: GoogleCalendar, tmin: datetime | None, tmax: datetime | None) -> list[JSONDict]:
    # updatedMin: only events modified since; "entries deleted since this time will always be
    # included regardless of showDeleted" (events.list reference).
    updated_min = parse_rfc3339(request.args["updatedMin"]) if request.args.get("updatedMin") else None
    show_deleted = request.args.get("showDeleted") == "true" or updated_min is not None
    items = []
    for rec in state.events.get(cal.id, {}).values():
        res = rec.resource
        if res.get("status") == "cancelled" and not show_deleted:
            continue
        if updated_min is not None and (parse_rfc3339(str(res.get("updated", ""))) or updated_min) < updated_min:
            continue
        s = when_to_utc(res.get("start", {}), cal.time_zone)
        e = when_to_utc(res.get("end", {}), cal.time_zone)
        if tmin and e and e <= tmin.astimezone(UTC) and not res.get("recurrence"):
            continue
        if tmax and s and s >= tmax.astimezone(UTC):
            continue
        items.append((s or datetime.min.replace(tzinfo=UTC), render_event(rec, consume_poll=False)))
    items.sort(key=lambda p: p[0])
    return [i for _, i in items]


def _install_writes(bp: Blueprint, state: GoogleState) -> None:
    @bp.post("/calendars/<calendar_id>/events")
    def events_insert(calendar_id: str) -> ResponseReturnValue:
        with state.lock:
            _, user = guards.authorize(state, "calendar.events.insert")
            cal, _role = guards.calendar_for(state, user, calendar_id, "writer")
            body = guards.body_object()
            version = guards.conference_version()
            guards.check_send_updates()
            guards.check_types(guards.record_findings(state, "calendar.events.insert", body))
            guards.check_when(body)
            start = when_to_utc(body["start"], cal.time_zone)
            end = when_to_utc(body["end"], cal.time_zone)
            if start is None or end is None or end < start:
                raise _time_range_empty()
            wanted_id = body.get("id")
            if wanted_id is not None:
                if not isinstance(wanted_id, str) or not re.fullmatch(r"[a-v0-9]{5,1024}", wanted_id):
                    return bad_request("Invalid resource id value.")
                if wanted_id in state.events.get(cal.id, {}):
                    return api_error(409, "The requested identifier already exists.", "duplicate")
            resource = new_event_resource(state, cal, user, body, wanted_id)
            rec = EventRecord(cal.id, resource)
            if version >= 1 and "conferenceData" in body:
                apply_conference(state, rec, body["conferenceData"], cal.id)
            state.events.setdefault(cal.id, {})[resource["id"]] = rec
            guards.record_updates(state, "insert", cal.id, resource)
            state.notify_change(cal.id)
            return json_response(render_event(rec, consume_poll=False))

    @bp.patch("/calendars/<calendar_id>/events/<event_id>")
    def events_patch(calendar_id: str, event_id: str) -> ResponseReturnValue:
        return _modify(state, calendar_id, event_id, "calendar.events.patch", replace=False)

    @bp.put("/calendars/<calendar_id>/events/<event_id>")
    def events_update(calendar_id: str, event_id: str) -> ResponseReturnValue:
        return _modify(state, calendar_id, event_id, "calendar.events.update", replace=True)

    @bp.delete("/calendars/<calendar_id>/events/<event_id>")
    def events_delete(calendar_id: str, event_id: str) -> ResponseReturnValue:
        with state.lock:
            _, user = guards.authorize(state, "calendar.events.delete")
            cal, rec = guards.find_event(state, user, calendar_id, event_id, "writer")
            guards.check_preconditions(rec, read=False)
            guards.check_send_updates()
            if rec.resource.get("status") == "cancelled":
                return gone()
            rec.resource["status"] = "cancelled"
            touch(state, rec.resource, bump_sequence=False)
            guards.record_updates(state, "delete", cal.id, rec.resource)
            state.notify_change(cal.id)
            return empty_response(204)


def _modify(state: GoogleState, calendar_id: str, event_id: str, method_id: str, replace: bool) -> ResponseReturnValue:
    """``events.patch`` (merge) and ``events.update`` (replace)."""
    with state.lock:
        _, user = guards.authorize(state, method_id)
        cal, rec = guards.find_event(state, user, calendar_id, event_id, "writer")
        guards.check_preconditions(rec, read=False)
        body = guards.body_object()
        version = guards.conference_version()
        guards.check_send_updates()
        guards.check_types(guards.record_findings(state, method_id, body))
        res = rec.resource
        before = json.loads(json.dumps(res))
        changes = {k: v for k, v in body.items() if k not in EVENT_READ_ONLY and k not in ("id", "conferenceData")}
        if replace:
            guards.check_when(body, reason="required")
            _replace(res, changes, before)
        else:
            merge_patch(res, changes)
        try:
            _check_times(res, cal)
            if version >= 1 and "conferenceData" in body:
                apply_conference(state, rec, body["conferenceData"], cal.id)
        except Answer:
            rec.resource = before
            raise
        timing_changed = before.get("start") != res.get("start") or before.get("end") != res.get("end")
        touch(state, res, bump_sequence=timing_changed)
        guards.record_updates(state, "update", cal.id, res)
        state.notify_change(cal.id)
        return json_response(render_event(rec, consume_poll=False))


def _replace(res: JSONDict, changes: dict[str, Any], before: JSONDict) -> None:
    keep: JSONDict = {k: res[k] for k in _KEPT_ON_UPDATE if k in res}
    res.clear()
    res.update(keep)
    res.update(json.loads(json.dumps(changes)))
    res.setdefault("status", "confirmed")
    res.setdefault("reminders", {"useDefault": True})
    res["sequence"] = before.get("sequence", 0)


def _check_times(res: JSONDict, cal: GoogleCalendar) -> None:
    guards.check_when(res)
    s = when_to_utc(res["start"], cal.time_zone)
    e = when_to_utc(res["end"], cal.time_zone)
    if s is None or e is None or e < s:
        raise _time_range_empty()
