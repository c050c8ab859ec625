"""Checks the Calendar handlers run before doing anything: the bearer token and its scopes, the
caller's access to a calendar or event, ``If-Match`` / ``If-None-Match``, the JSON body, and the
query parameters.

Rules: a guard returns what it found or refuses by raising the API's error answer
(:func:`abort_with`); handlers call them in the order the real API checks, under ``state.lock``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Response, request

from devstack.emulators import spec
from devstack.emulators.common import JSONDict, abort_with, parse_bearer
from devstack.emulators.google.errors import api_error, bad_request, insufficient_scope, not_found, unauthenticated
from devstack.emulators.google.event_data import validate_when
from devstack.emulators.google.model import ACCESS_ROLES, AccessToken, EventRecord, GoogleCalendar, GoogleUser
from devstack.emulators.google.state import GoogleState

PREFIX = "/calendar/v3"


def authorize(state: GoogleState, method_id: str) -> tuple[AccessToken, GoogleUser]:
    """The caller's token and user, if the token is live and has a scope ``method_id`` accepts."""
    header = request.headers.get("Authorization")
    tok = parse_bearer(header) or request.args.get("access_token") or request.args.get("oauth_token")
    if not tok:
        abort_with(unauthenticated(missing=not header))
    at = state.access_tokens.get(tok)
    if at is None or at.revoked or at.expires_at <= state.now():
        abort_with(unauthenticated(missing=False))
    accepted = state.method_scopes.get(method_id, ())
    if accepted and not set(at.scopes) & set(accepted):
        abort_with(insufficient_scope(method_id, accepted))
    user = state.users.get(at.email)
    if user is None:
        abort_with(unauthenticated(missing=False))
    return at, user


def calendar_for(state: GoogleState, user: GoogleUser, calendar_id: str, need: str) -> tuple[GoogleCalendar, str]:
    """The calendar and the user's role on it, which must be at least ``need``."""
    cid = user.email if calendar_id == "primary" else calendar_id
    role = user.calendars.get(cid)
    cal = state.calendars.get(cid)
    if cal is None or role is None or role == "none":
        abort_with(not_found())
    order = ACCESS_ROLES.index
    if order(role) < order(need):
        if need in ("writer", "owner"):
            abort_with(api_error(403, "You need to have writer access to this calendar.", "requiredAccessLevel"))
        abort_with(not_found())
    return cal, role


def find_event(
    state: GoogleState, user: GoogleUser, calendar_id: str, event_id: str, need: str
) -> tuple[GoogleCalendar, EventRecord]:
    cal, _ = calendar_for(state, user, calendar_id, need)
    rec = state.events.get(cal.id, {}).get(event_id)
    if rec is None:
        abort_with(not_found())
    return cal, rec


def check_preconditions(rec: EventRecord, *, read: bool) -> None:
    """``If-Match`` / ``If-None-Match`` against the event's ``etag`` (Calendar guide "Versioning
    resources", RFC 9110 §13.1): a stale ``If-Match`` is 412 ``conditionNotMet``; a matching
    ``If-None-Match`` is 304 with no body on a read and 412 on a write."""
    current = _opaque(str(rec.resource.get("etag", "")))
    if_match = request.headers.get("If-Match")
    if if_match is not None and not _etag_listed(if_match, current, weak=False):
        abort_with(_precondition_failed("If-Match"))
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None and _etag_listed(if_none_match, current, weak=True):
        if read:
            abort_with(Response(status=304, headers={"ETag": str(rec.resource.get("etag", ""))}))
        abort_with(_precondition_failed("If-None-Match"))


def _opaque(etag: str) -> str:
    return etag.strip().removeprefix("W/")


def _etag_listed(header: str, current: str, *, weak: bool) -> bool:
    """Whether ``header`` (``*`` or a comma-separated list of entity tags) names ``current``."""
    if header.strip() == "*":
        return True
    for tag in header.split(","):
        tag = tag.strip()
        if tag.startswith("W/") and not weak:
            continue  # If-Match compares strongly: a weak tag never matches
        if _opaque(tag) == current:
            return True
    return False


def _precondition_failed(header: str) -> Response:
    return api_error(412, "Precondition Failed", "conditionNotMet", location=header, location_type="header")


def body_object() -> JSONDict:
    """The JSON object body (an empty body is ``{}``)."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        abort_with(api_error(400, "Parse Error", "parseError", error_message="Parse Error"))
    if not isinstance(data, dict):
        abort_with(api_error(400, "Parse Error", "parseError"))
    return data


def record_findings(state: GoogleState, method_id: str, body: Any) -> list[spec.Finding]:
    """Check the body and query against the discovery document; keep what is off for the tests."""
    try:
        findings = spec.request_findings(body, google_method=method_id, query=request.args.to_dict(flat=False))
    except (spec.SpecNotFoundError, OSError, KeyError, ValueError):
        return []
    findings = [f for f in findings if f.path not in ("?access_token", "?oauth_token")]
    if findings:
        state.request_findings.append({"ts": state.now(), "method": method_id, "findings": [str(f) for f in findings]})
    return findings


def check_types(findings: list[spec.Finding]) -> None:
    """Refuse a body whose known fields have the wrong type (unknown fields pass, as Google's)."""
    bad = [f for f in findings if f.problem != spec.UNKNOWN and not f.path.startswith("?")]
    if bad:
        abort_with(bad_request(f"Invalid value for: {bad[0].path.removeprefix('$.')} ({bad[0].problem})"))


def conference_version() -> int:
    raw = request.args.get("conferenceDataVersion", "0")
    if raw not in ("0", "1"):
        abort_with(bad_request(f"Invalid conference data version: {raw}", location="conferenceDataVersion"))
    return int(raw)


def check_send_updates() -> None:
    su = request.args.get("sendUpdates")
    if su is not None and su not in ("all", "externalOnly", "none"):
        abort_with(
            bad_request(
                f"Invalid value '{su}'. Values must match the following regular expression: 'all|externalOnly|none'",
                location="sendUpdates",
            )
        )


def record_updates(state: GoogleState, action: str, calendar_id: str, resource: Mapping[str, Any]) -> None:
    """Note the e-mails Google would send to attendees (``sendUpdates``)."""
    su = request.args.get("sendUpdates") or ("all" if request.args.get("sendNotifications") == "true" else "none")
    attendees = [a.get("email") for a in resource.get("attendees", []) or [] if isinstance(a, Mapping)]
    if su != "none" and attendees:
        state.sent_updates.append(
            {
                "ts": state.now(),
                "action": action,
                "calendar_id": calendar_id,
                "event_id": resource.get("id"),
                "send_updates": su,
                "recipients": [a for a in attendees if a and a != calendar_id],
            }
        )


def check_when(resource: Mapping[str, Any], reason: str | None = None) -> None:
    """Refuse a missing or invalid ``start``/``end`` (``reason`` overrides the computed one)."""
    for which in ("start", "end"):
        problem = validate_when(resource, which)
        if problem:
            why = reason or ("required" if problem.startswith("Missing") else "invalid")
            abort_with(bad_request(problem, reason=why))
