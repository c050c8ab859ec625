"""Outlook events: create (``POST /v1.0/me/events``, ``POST /v1.0/me/calendars/{calendar-id}/events``),
read, update and delete (``GET|PATCH|DELETE /v1.0/me/events/{event-id}``).

Rules: a create with a ``transactionId`` the mailbox already used for a live event answers that
event again (201) instead of creating a second one - Graph's "avoid redundant POST operations in
case of client retries" (user-post-events, NOTES-msgraph §5); the id is kept after the event is
deleted only while it lives. Writing needs ``canEdit`` on the calendar (403 otherwise). Every
change notifies the subscriptions on the calendar. Answers show times in the
``Prefer: outlook.timezone`` zone (UTC by default) and carry ``Preference-Applied``.
"""

from __future__ import annotations

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from devstack.emulators.common import JSONDict, abort_with, empty_response, json_response
from devstack.emulators.microsoft import event_data, guards
from devstack.emulators.microsoft.errors import access_denied, bad_request
from devstack.emulators.microsoft.model import EventRecord, MsCalendar, MsUser
from devstack.emulators.microsoft.state import MicrosoftState

_EVENT_TYPE = "microsoft.graph.event"


def _answer(state: MicrosoftState, rec: EventRecord, status: int = 200) -> ResponseReturnValue:
    tz_name = event_data.preferred_zone(request.headers.get("Prefer"))
    headers = {"ETag": f'W/"{rec.resource["changeKey"]}"'}
    if tz_name != "UTC" or "outlook.timezone" in (request.headers.get("Prefer") or ""):
        headers["Preference-Applied"] = f'outlook.timezone="{tz_name}"'
    return json_response(state.show(rec, tz_name), status, headers)


def blueprint(state: MicrosoftState) -> Blueprint:
    bp = Blueprint("microsoft_events", __name__, url_prefix=guards.API_PREFIX)

    @bp.post("/me/events")
    def create_event() -> ResponseReturnValue:
        with state.lock:
            _, user = guards.authorize(state, "createEvent")
            return _create(state, user, state.default_calendar(user), "createEvent")

    @bp.post("/me/calendars/<calendar_id>/events")
    def create_calendar_event(calendar_id: str) -> ResponseReturnValue:
        with state.lock:
            _, user = guards.authorize(state, "createCalendarEvent")
            cal = guards.calendar_for(state, user, calendar_id)
            return _create(state, user, cal, "createCalendarEvent")

    @bp.get("/me/events/<event_id>")
    def get_event(event_id: str) -> ResponseReturnValue:
        with state.lock:
            _, user = guards.authorize(state, "getEvent")
            return _answer(state, guards.event_for(state, user, event_id))

    @bp.patch("/me/events/<event_id>")
    def update_event(event_id: str) -> ResponseReturnValue:
        with state.lock:
            _, user = guards.authorize(state, "updateEvent")
            rec = guards.event_for(state, user, event_id)
            cal = _writable(state, rec.calendar_id)
            body = guards.body_object()
            guards.check_body(state, "updateEvent", body, _EVENT_TYPE)
            before = dict(rec.resource)
            try:
                start, end = event_data.apply_patch(rec.resource, body, cal, user, state.tenant_id, state.now())
            except event_data.EventError as exc:
                rec.resource.clear()
                rec.resource.update(before)
                abort_with(bad_request(str(exc), exc.code))
            new_start = start if start is not None else rec.start_ts
            new_end = end if end is not None else rec.end_ts
            if new_end < new_start:
                rec.resource.clear()
                rec.resource.update(before)
                abort_with(bad_request("The end time of the event must be after its start time."))
            rec.start_ts, rec.end_ts = new_start, new_end
            state.notify_change(rec, "updated")
            return _answer(state, rec)

    @bp.delete("/me/events/<event_id>")
    def delete_event(event_id: str) -> ResponseReturnValue:
        with state.lock:
            _, user = guards.authorize(state, "deleteEvent")
            rec = guards.event_for(state, user, event_id)
            _writable(state, rec.calendar_id)
            rec.deleted = True
            tx = rec.resource.get("transactionId")
            if tx:
                state.transactions.pop((user.id, str(tx)), None)
            state.notify_change(rec, "deleted")
            return empty_response(204)

    return bp


def _writable(state: MicrosoftState, calendar_id: str) -> MsCalendar:
    cal = state.calendars[calendar_id]
    if not cal.can_edit:
        abort_with(access_denied())
    return cal


def _create(state: MicrosoftState, user: MsUser, cal: MsCalendar, op: str) -> ResponseReturnValue:
    if not cal.can_edit:
        abort_with(access_denied())
    body: JSONDict = guards.body_object()
    guards.check_body(state, op, body, _EVENT_TYPE)
    tx = body.get("transactionId")
    if isinstance(tx, str) and tx:
        existing = state.events.get(state.transactions.get((user.id, tx), ""))
        if existing is not None and not existing.deleted:
            return _answer(state, existing, 201)
    eid = event_data.new_event_id()
    try:
        resource, start, end = event_data.new_event(eid, cal, user, body, state.now(), state.tenant_id)
    except event_data.EventError as exc:
        abort_with(bad_request(str(exc), exc.code))
    rec = EventRecord(eid, cal.id, resource, start, end)
    state.events[eid] = rec
    if isinstance(tx, str) and tx:
        state.transactions[(user.id, tx)] = eid
    state.notify_change(rec, "created")
    return _answer(state, rec, 201)
