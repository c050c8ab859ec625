"""Microsoft's own admin routes: changes made in Outlook rather than through Graph (the mentor
editing their calendar) and the lifecycle-notification test hook.

* ``POST   /_admin/calendars/{calendarId}/events`` - create an event (as Outlook would)
* ``PATCH  /_admin/events/{eventId}`` / ``DELETE /_admin/events/{eventId}`` - change / delete one
* ``POST   /_admin/subscriptions/{id}/lifecycle`` ``{"event": "reauthorizationRequired" |
  "subscriptionRemoved" | "missed"}`` - send a lifecycle notification (``subscriptionRemoved`` also
  removes the subscription, as Graph does)

Rules: external changes notify subscriptions like API changes do; an unknown calendar, event or
subscription answers 404 ``{"error"}``; a bad event body 400 ``{"error"}``.
"""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from devstack.emulators.common import ADMIN_PREFIX, JSONDict, empty_response, json_response, request_json_object
from devstack.emulators.microsoft.event_data import EventError
from devstack.emulators.microsoft.model import LIFECYCLE_EVENTS
from devstack.emulators.microsoft.state import MicrosoftState
from devstack.emulators.microsoft.subscriptions import remove


def send_lifecycle(state: MicrosoftState, subscription_id: str, event: str) -> JSONDict:
    """Queue ``event`` for the subscription's lifecycleNotificationUrl; returns what was queued."""
    if event not in LIFECYCLE_EVENTS:
        raise ValueError(f"lifecycle event must be one of {', '.join(LIFECYCLE_EVENTS)}")
    with state.lock:
        sub = state.subscriptions.get(subscription_id)
        if sub is None:
            raise KeyError(f"unknown subscription {subscription_id}")
        payload = state.lifecycle_payload(sub, event)
        if event == "reauthorizationRequired":
            sub.reauthorization_required = True
        if event == "subscriptionRemoved":
            remove(state, sub, "subscriptionRemoved")
        if sub.lifecycle_url is None:
            return {"sent": False, "why": "the subscription has no lifecycleNotificationUrl", "payload": payload}
        state.deliver(sub.lifecycle_url, payload, kind="lifecycle", subscription_id=sub.id)
        return {"sent": True, "url": sub.lifecycle_url, "payload": payload}


def blueprint(state: MicrosoftState) -> Blueprint:
    bp = Blueprint("microsoft_admin", __name__, url_prefix=ADMIN_PREFIX)

    @bp.post("/calendars/<calendar_id>/events")
    def admin_seed_event(calendar_id: str) -> ResponseReturnValue:
        try:
            return json_response(state.seed_event(calendar_id, request_json_object() or {}), 201)
        except KeyError as exc:
            return json_response({"error": str(exc)}, 404)
        except EventError as exc:
            return json_response({"error": str(exc)}, 400)

    @bp.patch("/events/<event_id>")
    def admin_update_event(event_id: str) -> ResponseReturnValue:
        try:
            return json_response(state.update_event_external(event_id, request_json_object() or {}))
        except KeyError as exc:
            return json_response({"error": str(exc)}, 404)
        except EventError as exc:
            return json_response({"error": str(exc)}, 400)

    @bp.delete("/events/<event_id>")
    def admin_delete_event(event_id: str) -> ResponseReturnValue:
        try:
            state.delete_event_external(event_id)
        except KeyError as exc:
            return json_response({"error": str(exc)}, 404)
        return empty_response(204)

    @bp.post("/subscriptions/<subscription_id>/lifecycle")
    def admin_lifecycle(subscription_id: str) -> ResponseReturnValue:
        body = request_json_object() or {}
        try:
            return json_response(send_lifecycle(state, subscription_id, str(body.get("event", ""))))
        except KeyError as exc:
            return json_response({"error": str(exc)}, 404)
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)

    return bp
