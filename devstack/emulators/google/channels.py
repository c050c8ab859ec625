"""Push channels: ``events.watch`` (``POST /calendar/v3/calendars/{calendarId}/events/watch``) and
``channels.stop`` (``POST /calendar/v3/channels/stop``).

Rules: a channel id is unique; the address must be ``https://`` as Google demands (400
``push.webhookUrlNotHttps``), except ``http://`` on loopback when the emulator was built with
``allow_http_loopback_push`` (the local stack) or any ``http://`` with the ``require_https_push``
setting off; the expiration is capped at 30 days (7 by default). A new channel
gets a ``sync`` message at once; only the OAuth client that made a channel can stop it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint
from flask.typing import ResponseReturnValue

from devstack.emulators.common import JSONDict, abort_with, empty_response, json_response
from devstack.emulators.google import guards
from devstack.emulators.google.errors import api_error, bad_request
from devstack.emulators.google.model import CHANNEL_DEFAULT_TTL, CHANNEL_MAX_TTL, Channel
from devstack.emulators.google.state import GoogleState

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def blueprint(state: GoogleState) -> Blueprint:
    bp = Blueprint("google_channels", __name__, url_prefix=guards.PREFIX)

    @bp.post("/calendars/<calendar_id>/events/watch")
    def events_watch(calendar_id: str) -> ResponseReturnValue:
        with state.lock:
            at, user = guards.authorize(state, "calendar.events.watch")
            cal, _ = guards.calendar_for(state, user, calendar_id, "reader")
            body = guards.body_object()
            guards.check_types(guards.record_findings(state, "calendar.events.watch", body))
            address = _check_channel(state, body)
            params = body.get("params") or {}
            expiration_ms = _expiration(state, body, params)
            channel = Channel(
                id=str(body["id"]),
                resource_id=state.resource_id_for(cal.id),
                resource_uri=f"{state.base_url}{guards.PREFIX}/calendars/{calendar_id}/events?alt=json",
                address=address,
                expiration_ms=expiration_ms,
                calendar_id=cal.id,
                email=user.email,
                client_id=at.client_id,
                token=str(body["token"]) if body.get("token") is not None else None,
                created=state.now(),
                params={str(k): str(v) for k, v in params.items()} if isinstance(params, Mapping) else {},
            )
            state.channels[channel.id] = channel
            channel.message_number = 1
            state._enqueue_push(channel, "sync")
            out: JSONDict = {
                "kind": "api#channel",
                "id": channel.id,
                "resourceId": channel.resource_id,
                "resourceUri": channel.resource_uri,
                "expiration": str(channel.expiration_ms),
            }
            if channel.token is not None:
                out["token"] = channel.token
            return json_response(out)

    @bp.post("/channels/stop")
    def channels_stop() -> ResponseReturnValue:
        with state.lock:
            at, _user = guards.authorize(state, "calendar.channels.stop")
            body = guards.body_object()
            cid, rid = body.get("id"), body.get("resourceId")
            if not cid:
                return bad_request("Required", reason="required", location="id")
            if not rid:
                return bad_request("Required", reason="required", location="resourceId")
            ch = state.channels.get(str(cid))
            if ch is None or ch.resource_id != rid or ch.stopped or ch.client_id != at.client_id:
                return api_error(404, f"Channel '{cid}' not found for project", "notFound")
            ch.stopped = True
            return empty_response(204)

    return bp


def _check_channel(state: GoogleState, body: Mapping[str, Any]) -> str:
    """Refuse a watch request without a unique id, a web-hook type and a usable address."""
    cid, ctype, address = body.get("id"), body.get("type"), body.get("address")
    if not cid:
        abort_with(bad_request("Required", reason="required", location="id"))
    if ctype not in ("web_hook", "webhook"):
        abort_with(bad_request(f"Invalid channel type: {ctype}", reason="push.invalidType"))
    if not address or not isinstance(address, str):
        abort_with(bad_request("Required", reason="required", location="address"))
    if state.settings.require_https_push and not address.startswith("https://") and not _loopback_ok(state, address):
        abort_with(bad_request(f"WebHook callback must be HTTPS: {address}", reason="push.webhookUrlNotHttps"))
    if not address.startswith(("http://", "https://")):
        abort_with(bad_request(f"Invalid webhook address: {address}", reason="push.webhookUrlUnknownType"))
    if cid in state.channels:
        abort_with(bad_request(f"Channel id {cid} not unique", reason="channelIdNotUnique", domain="push"))
    return address


def _loopback_ok(state: GoogleState, address: str) -> bool:
    """An ``http://`` address on loopback, accepted only where the emulator allows it (local stack)."""
    if not state.allow_http_loopback_push or not address.startswith("http://"):
        return False
    return urlsplit(address).hostname in _LOOPBACK_HOSTS


def _expiration(state: GoogleState, body: Mapping[str, Any], params: Any) -> int:
    now_ms = int(state.now() * 1000)
    ttl = CHANNEL_DEFAULT_TTL
    if isinstance(params, Mapping) and str(params.get("ttl", "")).isdigit():
        ttl = int(params["ttl"])
    expiration = now_ms + min(ttl, CHANNEL_MAX_TTL) * 1000
    if body.get("expiration") is not None:
        try:
            expiration = min(int(body["expiration"]), now_ms + CHANNEL_MAX_TTL * 1000)
        except (TypeError, ValueError):
            abort_with(bad_request("Invalid expiration", location="expiration"))
    return expiration
