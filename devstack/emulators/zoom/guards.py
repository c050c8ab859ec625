"""Checks the Zoom API handlers run before doing anything: the bearer token and its granular
scopes, the user the path names, the JSON body, the daily create/update cap, and the meeting.

Rules: a guard returns what it found or refuses by raising Zoom's error answer
(:func:`abort_with`); handlers call them in the order the real API checks, under ``state.lock``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from flask import request

from devstack.emulators import spec
from devstack.emulators.common import JSONDict, abort_with, parse_bearer
from devstack.emulators.zoom.errors import zoom_error
from devstack.emulators.zoom.model import DAILY_CAP_MESSAGE, OPS, ZoomAccessToken, ZoomUser, cap_day
from devstack.emulators.zoom.state import ZoomState


def authorize(state: ZoomState, op: str) -> tuple[ZoomAccessToken, ZoomUser]:
    """The caller's token and user, if the token is live and has a scope ``op`` accepts."""
    tok = parse_bearer(request.headers.get("Authorization"))
    if tok is None:
        # Includes tokens sent as ?access_token=: rejected since 14 Feb 2023 with code 124
        # (devsupport.zoom.us "Access token change FAQ").
        abort_with(zoom_error(401, 124, "Invalid access token."))
    at = state.access_tokens.get(tok)
    if at is None or at.revoked:
        abort_with(zoom_error(401, 124, "Invalid access token."))
    if at.expires_at <= state.now():
        abort_with(zoom_error(401, 124, "Access token has expired."))
    granular, accepted = state.op_scopes[op]
    if not set(at.scopes) & set(accepted):
        abort_with(zoom_error(400, 4711, f"Invalid access token, does not contain scopes:[{', '.join(granular)}]."))
    user = state.users.get(at.user_id)
    if user is None:
        abort_with(zoom_error(401, 124, "Invalid access token."))
    return at, user


def resolve_user(me: ZoomUser, user_id: str) -> ZoomUser:
    """``me``, the caller's id or e-mail; any other user does not exist for this app."""
    if user_id in ("me", me.id) or user_id.lower() == me.email:
        return me
    abort_with(zoom_error(404, 1001, f"User does not exist: {user_id}."))


def parse_body(state: ZoomState, op: str) -> JSONDict:
    """The JSON object body, checked against the operation's schema (``strict_types``: refused)."""
    raw = request.get_data(cache=True)
    try:
        body = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError):
        abort_with(zoom_error(400, 300, "Request Body should be a valid JSON object."))
    if not isinstance(body, dict):
        abort_with(zoom_error(400, 300, "Request Body should be a valid JSON object."))
    method, path = OPS[op]
    try:
        findings = spec.request_findings(body, zoom_operation=(method, path))
    except (spec.SpecNotFoundError, OSError, KeyError, ValueError):
        findings = []
    if findings:
        state.request_findings.append({"ts": state.now(), "operation": op, "findings": [str(f) for f in findings]})
    errors = [f for f in findings if f.problem != spec.UNKNOWN]
    if errors and state.settings.strict_types:
        abort_with(
            zoom_error(
                400,
                300,
                "Validation Failed.",
                errors=[{"field": f.path.removeprefix("$."), "message": "Invalid field."} for f in errors],
            )
        )
    return body


def count_against_cap(state: ZoomState, user: ZoomUser) -> None:
    """Count one create/update for the user today, or refuse with 429 once the cap is reached."""
    now = state.now()
    cap = state.settings.meeting_daily_cap
    key = (user.id, cap_day(now))
    if state.daily_counts[key] >= cap:
        # The real answer (devforum capture, ../shared/specs/NOTES.md §6) carries only the message:
        # no X-RateLimit-Type and no Retry-After. The rate-limit docs' headers are opt-in knobs.
        headers: dict[str, str] = {}
        if state.settings.daily_cap_type_header:
            headers.update(
                {
                    "X-RateLimit-Category": "Light",
                    "X-RateLimit-Type": "Daily-limit",
                    "X-RateLimit-Limit": str(cap),
                    "X-RateLimit-Remaining": "0",
                }
            )
        midnight = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
            days=1
        )
        style = state.settings.daily_cap_retry_after
        if style == "iso":
            headers["Retry-After"] = midnight.strftime("%Y-%m-%dT%H:%M:%SZ")
        elif style == "seconds":
            headers["Retry-After"] = str(max(1, int(midnight.timestamp() - now)))
        abort_with(zoom_error(429, 429, DAILY_CAP_MESSAGE.format(cap=cap), headers))
    state.daily_counts[key] += 1


def meeting_for(state: ZoomState, user: ZoomUser, meeting_id: str) -> JSONDict:
    """The user's meeting ``meeting_id`` (another host's meeting does not exist for them)."""
    try:
        mid = int(meeting_id)
    except ValueError:
        abort_with(zoom_error(404, 3001, f"Meeting does not exist: {meeting_id}."))
    m = state.meetings.get(mid)
    if m is None or m["host_id"] != user.id:
        abort_with(zoom_error(404, 3001, f"Meeting does not exist: {meeting_id}."))
    return m
