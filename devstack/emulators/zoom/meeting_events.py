"""Meeting event webhooks (Zoom -> app): ``meeting.deleted`` and ``meeting.updated``, in the payload
shapes of ``specs/zoom-meetings-webhooks-openapi.json``, signed like every Zoom webhook.

Rules: events go to ``settings.meeting_events_url`` (the app's Event Notification Endpoint URL with
the two meeting subscriptions; empty = not subscribed), signed with the webhook secret token of
``settings.meeting_events_client_id`` (default: the default client). Like Zoom, they are sent for
every change of a meeting — through the API (the app's own update / delete) and by the host in the
Zoom web portal or client (``POST|PATCH /_admin/meetings/{meetingId}/host``, or the Python knobs
``ZoomEmulator.host_delete_meeting`` / ``host_update_meeting``). Deliveries run on their own thread
after the change (never under the state lock) and are recorded in ``state.webhook_deliveries``;
``wait_idle`` waits for the ones in flight.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue

from devstack.emulators.common import ADMIN_PREFIX, JSONDict, empty_response, json_response, request_json_object
from devstack.emulators.zoom.model import DEFAULT_CLIENT_ID, ZoomUser
from devstack.emulators.zoom.state import ZoomState
from devstack.emulators.zoom.webhooks import secret_for, send_webhook

#: The meeting fields ``meeting.updated`` reports when they change (object / old_object).
UPDATED_FIELDS = ("topic", "type", "start_time", "duration", "timezone", "agenda", "join_url", "password")

_inflight: list[threading.Thread] = []
_inflight_lock = threading.Lock()


def deleted_payload(state: ZoomState, meeting: Mapping[str, Any], operator: ZoomUser) -> JSONDict:
    now_ms = int(state.now() * 1000)
    obj = {k: meeting[k] for k in ("uuid", "id", "host_id", "topic", "type", "start_time", "duration", "timezone")}
    return {
        "event": "meeting.deleted",
        "event_ts": now_ms,
        "payload": {
            "account_id": operator.account_id,
            "operator": operator.email,
            "operator_id": operator.id,
            "operation": "single",
            "object": obj,
        },
    }


def updated_payload(
    state: ZoomState, before: Mapping[str, Any], after: Mapping[str, Any], operator: ZoomUser
) -> JSONDict | None:
    """The ``meeting.updated`` event, or ``None`` when no reported field changed."""
    changed = [k for k in UPDATED_FIELDS if before.get(k) != after.get(k)]
    if not changed:
        return None
    now_ms = int(state.now() * 1000)
    return {
        "event": "meeting.updated",
        "event_ts": now_ms,
        "payload": {
            "account_id": operator.account_id,
            "operator": operator.email,
            "operator_id": operator.id,
            "scope": "single",
            "object": {"id": after["id"], "uuid": after.get("uuid"), **{k: after.get(k) for k in changed}},
            "old_object": {"id": before["id"], "uuid": before.get("uuid"), **{k: before.get(k) for k in changed}},
            "time_stamp": now_ms,
        },
    }


def emit(state: ZoomState, payload: JSONDict | None) -> None:
    """Send ``payload`` to the subscription on a thread of its own (no-op when not subscribed)."""
    url = state.settings.meeting_events_url
    if not url or payload is None:
        return
    secret = secret_for(state, state.settings.meeting_events_client_id or DEFAULT_CLIENT_ID, None)
    thread = threading.Thread(target=send_webhook, args=(state, url, payload, secret), daemon=True)
    with _inflight_lock:
        _inflight[:] = [t for t in _inflight if t.is_alive()]
        _inflight.append(thread)
    thread.start()


def wait_idle(timeout: float = 10.0) -> bool:
    """Wait until no meeting event is being delivered; ``False`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        with _inflight_lock:
            alive = [t for t in _inflight if t.is_alive()]
        if not alive:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        alive[0].join(remaining)


def _snapshot(meeting: Mapping[str, Any]) -> JSONDict:
    copied: JSONDict = json.loads(json.dumps(meeting))
    return copied


def host_delete(state: ZoomState, meeting_id: int) -> JSONDict:
    """The host deletes the meeting in Zoom; the event is sent. Raises ``KeyError`` if unknown."""
    with state.lock:
        meeting = state.meetings.pop(int(meeting_id))
        state.deleted_meetings[int(meeting_id)] = meeting
        host = next(u for u in state.users.values() if u.id == meeting["host_id"])
        payload = deleted_payload(state, meeting, host)
    emit(state, payload)
    return payload


def host_update(state: ZoomState, meeting_id: int, changes: Mapping[str, Any]) -> JSONDict | None:
    """The host edits the meeting in Zoom (``start_time`` in UTC ``Z`` form, ``duration``, ``topic``)."""
    from devstack.emulators.zoom.meetings import apply_fields

    with state.lock:
        meeting = state.meetings[int(meeting_id)]
        host = next(u for u in state.users.values() if u.id == meeting["host_id"])
        before = _snapshot(meeting)
        apply_fields(state, meeting, changes, host)
        payload = updated_payload(state, before, meeting, host)
    emit(state, payload)
    return payload


def blueprint(state: ZoomState) -> Blueprint:
    bp = Blueprint("zoom_meeting_events", __name__, url_prefix=f"{ADMIN_PREFIX}/meetings")

    @bp.delete("/<int:meeting_id>/host")
    def admin_host_delete(meeting_id: int) -> ResponseReturnValue:
        try:
            host_delete(state, meeting_id)
        except KeyError:
            return json_response({"error": "unknown meeting"}, 404)
        return empty_response(204)

    @bp.patch("/<int:meeting_id>/host")
    def admin_host_update(meeting_id: int) -> ResponseReturnValue:
        try:
            payload = host_update(state, meeting_id, request_json_object() or {})
        except KeyError:
            return json_response({"error": "unknown meeting"}, 404)
        return json_response({"event": payload})

    return bp
