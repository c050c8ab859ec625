"""Google's own admin routes: changes to a calendar made outside the API (the mentor editing their
calendar), under ``/_admin/calendars/{calendarId}/events``, and a watch channel Google drops silently
(``POST /_admin/channels/{channelId}/drop``). Clients, users and consent use the shared OAuth admin
routes; state, faults, clock and tokens the common ones.

Rules: external changes notify watch channels like API changes do; an unknown calendar or event
answers 404 ``{"error"}``.
"""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from devstack.emulators.common import ADMIN_PREFIX, empty_response, json_response, request_json_object
from devstack.emulators.google.state import GoogleState


def blueprint(state: GoogleState) -> Blueprint:
    bp = Blueprint("google_admin", __name__, url_prefix=ADMIN_PREFIX)

    @bp.post("/calendars/<calendar_id>/events")
    def admin_seed_event(calendar_id: str) -> ResponseReturnValue:
        b = request_json_object() or {}
        try:
            return json_response(state.seed_event(calendar_id, b), 201)
        except KeyError as exc:
            return json_response({"error": str(exc)}, 404)

    @bp.patch("/calendars/<calendar_id>/events/<event_id>")
    def admin_update_event(calendar_id: str, event_id: str) -> ResponseReturnValue:
        b = request_json_object() or {}
        try:
            return json_response(state.update_event_external(calendar_id, event_id, b))
        except KeyError as exc:
            return json_response({"error": str(exc)}, 404)

    @bp.delete("/calendars/<calendar_id>/events/<event_id>")
    def admin_delete_event(calendar_id: str, event_id: str) -> ResponseReturnValue:
        try:
            state.delete_event_external(calendar_id, event_id)
        except KeyError as exc:
            return json_response({"error": str(exc)}, 404)
        return empty_response(204)

    @bp.post("/channels/<channel_id>/drop")
    def admin_drop_channel(channel_id: str) -> ResponseReturnValue:
        try:
            state.drop_channel(channel_id)
        except KeyError as exc:
            return json_response({"error": str(exc)}, 404)
        return empty_response(204)

    return bp
