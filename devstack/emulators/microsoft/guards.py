"""Checks the Graph handlers run before doing anything: the bearer token and its delegated
permissions, the per-app-and-mailbox request window, the JSON body against the OpenAPI cut, and
the calendar, event or subscription a path names.

Rules: a guard returns what it found or refuses by raising Graph's error answer
(:func:`abort_with`); handlers call them in the order Graph checks, under ``state.lock``.
Unknown body properties are 400 ``RequestBodyRead`` (Graph's OData reader refuses them) unless
``strict_properties`` is off; every finding is kept in ``state.request_findings``.
"""

from __future__ import annotations

import json
import math
from collections import deque
from typing import Any

from flask import request

from devstack.emulators import spec
from devstack.emulators.common import JSONDict, abort_with, parse_bearer
from devstack.emulators.microsoft import graph_spec
from devstack.emulators.microsoft.errors import access_denied, bad_request, item_not_found, throttled, unauthenticated
from devstack.emulators.microsoft.model import OPS, EventRecord, MsAccessToken, MsCalendar, MsUser
from devstack.emulators.microsoft.state import MicrosoftState

API_PREFIX = "/v1.0"


def authorize(state: MicrosoftState, op: str) -> tuple[MsAccessToken, MsUser]:
    """The caller's token and user, if the token is live, has a permission ``op`` accepts, and the
    app is within its request window for the mailbox."""
    header = request.headers.get("Authorization")
    tok = parse_bearer(header)
    if not tok:
        abort_with(unauthenticated("Access token is empty."))
    at = state.access_tokens.get(tok)
    if at is None or at.revoked:
        abort_with(
            unauthenticated(
                "IDX14100: JWT is not well formed, there are no dots (.)." if "." not in tok else "Invalid signature."
            )
        )
    if at.expires_at <= state.now():
        abort_with(unauthenticated("Lifetime validation failed, the token is expired."))
    accepted = OPS[op][2]
    if not set(at.scopes) & set(accepted):
        abort_with(access_denied())
    user = state.users.get(at.user_id)
    if user is None:
        abort_with(unauthenticated("Invalid signature."))
    _count_request(state, at.client_id, user.id)
    return at, user


def _count_request(state: MicrosoftState, client_id: str, user_id: str) -> None:
    """Outlook's per-app-and-mailbox limit (NOTES-msgraph §7): over it, 429 ``ApplicationThrottled``
    with ``Retry-After`` = seconds until the oldest request leaves the window."""
    now = state.now()
    window = state.settings.rate_limit_window_seconds
    seen = state.windows.setdefault((client_id, user_id), deque())
    while seen and seen[0] <= now - window:
        seen.popleft()
    if len(seen) >= state.settings.rate_limit_requests:
        wait = max(1, math.ceil(seen[0] + window - now))
        abort_with(throttled(wait, "ApplicationThrottled", "Application is over its MailboxConcurrency limit."))
    seen.append(now)


def body_object() -> JSONDict:
    raw = request.get_data(cache=True)
    if not raw.strip():
        abort_with(bad_request("Empty Payload. JSON content expected.", "BadRequest"))
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        abort_with(
            bad_request(
                "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of "
                "valid JSON format.",
                "BadRequest",
            )
        )
    if not isinstance(data, dict):
        abort_with(bad_request("Unable to read JSON request payload: an object is expected.", "BadRequest"))
    return data


def check_body(state: MicrosoftState, op: str, body: Any, type_name: str) -> None:
    """The body against the cut: wrong types and (``strict_properties``) unknown properties are
    refused as Graph's reader does; everything found is recorded."""
    method, template, _ = OPS[op]
    try:
        findings = graph_spec.request_findings(method, template, body)
    except (spec.SpecNotFoundError, OSError, KeyError, ValueError):
        return
    findings = [f for f in findings if f.problem != "null not allowed"]
    if not findings:
        return
    state.request_findings.append({"ts": state.now(), "operation": op, "findings": [str(f) for f in findings]})
    unknown = [f for f in findings if f.problem == spec.UNKNOWN]
    if unknown and state.settings.strict_properties:
        name = unknown[0].path.rsplit(".", 1)[-1].strip('[]"')
        abort_with(
            bad_request(
                f"The property '{name}' does not exist on type '{type_name}'. Make sure to only use property "
                "names that are defined by the type or mark the type as open type.",
                "RequestBodyRead",
            )
        )
    wrong = [f for f in findings if f.problem != spec.UNKNOWN]
    if wrong:
        abort_with(
            bad_request(
                f"Cannot read the value of {wrong[0].path.removeprefix('$.')}: {wrong[0].problem}.", "RequestBodyRead"
            )
        )


def calendar_for(state: MicrosoftState, user: MsUser, calendar_id: str) -> MsCalendar:
    cal = state.calendars.get(calendar_id)
    if cal is None or calendar_id not in user.calendars:
        abort_with(item_not_found())
    return cal


def event_for(state: MicrosoftState, user: MsUser, event_id: str) -> EventRecord:
    rec = state.events.get(event_id)
    if rec is None or rec.deleted or rec.calendar_id not in user.calendars:
        abort_with(item_not_found())
    return rec
