"""Zoom meetings: create (``POST /v2/users/{userId}/meetings``), read, update and delete
(``GET|PATCH|DELETE /v2/meetings/{meetingId}``), and the 404 every other ``/v2`` path gets.
Listing lives in :mod:`.meetings_list`.

Rules: creates (and, with ``daily_cap_counts_updates``, updates) count against the host's daily
cap; a refused write leaves the meeting as it was and gives the count back; update and delete
answer 204 and send ``meeting.updated`` / ``meeting.deleted`` to a subscribed app
(:mod:`.meeting_events`); deleted meetings are kept aside for the admin API.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue

from devstack.emulators import spec
from devstack.emulators.common import (
    Answer,
    JSONDict,
    abort_with,
    empty_response,
    fake_jwt,
    json_response,
    random_alnum,
    random_from,
    rfc3339_seconds,
    zone,
)
from devstack.emulators.zoom import guards, meeting_events
from devstack.emulators.zoom.errors import zoom_error
from devstack.emulators.zoom.model import DEFAULT_MEETING_SETTINGS, ZoomUser, cap_day, start_time_utc
from devstack.emulators.zoom.state import ZoomState

#: Body fields copied onto the meeting as given.
_COPIED = ("topic", "agenda", "duration", "type", "pre_schedule", "tracking_fields", "recurrence", "template_id")


def blueprint(state: ZoomState) -> Blueprint:
    bp = Blueprint("zoom_meetings", __name__, url_prefix="/v2")
    _install_create(bp, state)
    _install_by_id(bp, state)

    @bp.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def unknown(rest: str) -> ResponseReturnValue:
        return zoom_error(404, 404, "Not Found")

    return bp


def _install_create(bp: Blueprint, state: ZoomState) -> None:
    @bp.post("/users/<user_id>/meetings")
    def create_meeting(user_id: str) -> ResponseReturnValue:
        with state.lock:
            _, me = guards.authorize(state, "meetingCreate")
            host = guards.resolve_user(me, user_id)
            body = guards.parse_body(state, "meetingCreate")
            guards.count_against_cap(state, host)
            now = state.now()
            m = _new_meeting(state, host, body, now)
            body_no_pwd = {k: v for k, v in body.items() if k != "password"}
            try:
                apply_fields(state, m, body_no_pwd, host)
            except Answer:
                state.daily_counts[(host.id, cap_day(now))] -= 1
                raise
            m["timezone"] = m.get("timezone") or str(body.get("timezone") or host.timezone)
            state.meetings[int(m["id"])] = m
            return json_response(m, 201)


def _install_by_id(bp: Blueprint, state: ZoomState) -> None:
    @bp.get("/meetings/<meeting_id>")
    def get_meeting(meeting_id: str) -> ResponseReturnValue:
        with state.lock:
            _, user = guards.authorize(state, "meeting")
            return json_response(guards.meeting_for(state, user, meeting_id))

    @bp.patch("/meetings/<meeting_id>")
    def update_meeting(meeting_id: str) -> ResponseReturnValue:
        with state.lock:
            _, user = guards.authorize(state, "meetingUpdate")
            m = guards.meeting_for(state, user, meeting_id)
            body = guards.parse_body(state, "meetingUpdate")
            counts = state.settings.daily_cap_counts_updates
            if counts:
                guards.count_against_cap(state, user)
            before = json.loads(json.dumps(m))
            try:
                apply_fields(state, m, body, user)
            except Answer:
                m.clear()
                m.update(before)
                if counts:
                    state.daily_counts[(user.id, cap_day(state.now()))] -= 1
                raise
            event = meeting_events.updated_payload(state, before, m, user)
        meeting_events.emit(state, event)  # like Zoom: API changes are reported too
        return empty_response(204)

    @bp.delete("/meetings/<meeting_id>")
    def delete_meeting(meeting_id: str) -> ResponseReturnValue:
        with state.lock:
            _, user = guards.authorize(state, "meetingDelete")
            m = guards.meeting_for(state, user, meeting_id)
            mid = int(m["id"])
            state.deleted_meetings[mid] = state.meetings.pop(mid)
            event = meeting_events.deleted_payload(state, m, user)
        meeting_events.emit(state, event)
        return empty_response(204)


def _new_meeting(state: ZoomState, host: ZoomUser, body: Mapping[str, Any], now: float) -> JSONDict:
    mid = _meeting_id(state)
    password = str(body["password"]) if body.get("password") else _passcode()
    encrypted = random_alnum(32) + ".1"
    numeric = _numeric_passcode()
    web = state.settings.web_base
    zak = fake_jwt({"aud": "clientsm", "uid": host.id, "iss": "web", "sk": "0", "exp": int(now) + 7200})
    return {
        "uuid": base64.b64encode(secrets.token_bytes(16)).decode(),
        "id": mid,
        "host_id": host.id,
        "host_email": host.email,
        "assistant_id": "",
        "topic": body.get("topic", "Zoom meeting"),
        "type": body.get("type", 2),
        "status": "waiting",
        "start_time": rfc3339_seconds(now),
        "duration": body.get("duration", 60),
        "timezone": str(body.get("timezone") or host.timezone),
        "agenda": body.get("agenda", ""),
        "created_at": rfc3339_seconds(now),
        "start_url": f"{web}/s/{mid}?zak=" + zak,
        "join_url": f"{web}/j/{mid}?pwd={encrypted}",
        "password": password,
        "h323_password": numeric,
        "pstn_password": numeric,
        "encrypted_password": encrypted,
        "settings": _settings_out(dict(DEFAULT_MEETING_SETTINGS)),
        "pre_schedule": False,
        "creation_source": "open_api",
    }


def apply_fields(state: ZoomState, m: JSONDict, body: Mapping[str, Any], user: ZoomUser) -> None:
    """Copy the body's fields onto the meeting; refuses an unknown timezone or a bad start_time."""
    for k in _COPIED:
        if k in body:
            m[k] = body[k]
    if "timezone" in body:
        if zone(str(body["timezone"])) is None:
            abort_with(zoom_error(400, 300, f"Invalid timezone: {body['timezone']}."))
        m["timezone"] = body["timezone"]
    if "start_time" in body:
        st = start_time_utc(str(body["start_time"]), str(m.get("timezone") or user.timezone))
        if st is None:
            abort_with(zoom_error(400, 300, "Invalid start_time."))
        m["start_time"] = rfc3339_seconds(st.timestamp())
    if "password" in body:
        m["password"] = str(body["password"])
        m["encrypted_password"] = random_alnum(32) + ".1"
        m["h323_password"] = m["pstn_password"] = _numeric_passcode()
        m["join_url"] = f"{state.settings.web_base}/j/{m['id']}?pwd={m['encrypted_password']}"
    if isinstance(body.get("settings"), Mapping):
        merged = dict(m.get("settings", {}))
        merged.update(json.loads(json.dumps(body["settings"])))
        m["settings"] = _settings_out(merged)


def _meeting_id(state: ZoomState) -> int:
    while True:
        mid = int(secrets.choice("89") + "".join(secrets.choice("0123456789") for _ in range(10)))
        if mid not in state.meetings and mid not in state.deleted_meetings:
            return mid


def _passcode() -> str:
    return random_from("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789", 6)


def _numeric_passcode() -> str:
    return random_from("0123456789", 6)


def _settings_out(settings: Mapping[str, Any]) -> JSONDict:
    """Only keys the GET response schema declares (the request schema has a few more)."""
    try:
        doc = spec.zoom_meetings_openapi()
        schema = spec.openapi_response_schema(doc, "/meetings/{meetingId}", "get", 200)
        allowed = set(((schema or {}).get("properties", {}).get("settings", {}) or {}).get("properties", {}))
    except (spec.SpecNotFoundError, OSError, KeyError, ValueError):
        allowed = set()
    if not allowed:
        return dict(settings)
    return {k: v for k, v in settings.items() if k in allowed}
