"""``calendarList.list`` (``GET /calendar/v3/users/me/calendarList``): the calendars the caller
can see, primary first, paged with ``maxResults``/``pageToken``.

Rules: entries below ``minAccessRole`` and calendars with role ``none`` are left out; shared
calendars name their ``dataOwner``.
"""

from __future__ import annotations

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from devstack.emulators.common import JSONDict, json_response, random_urlsafe
from devstack.emulators.google.errors import bad_request
from devstack.emulators.google.guards import PREFIX, authorize
from devstack.emulators.google.model import ACCESS_ROLES, GoogleCalendar, GoogleUser
from devstack.emulators.google.state import GoogleState


def blueprint(state: GoogleState) -> Blueprint:
    bp = Blueprint("google_calendar_list", __name__, url_prefix=PREFIX)

    @bp.get("/users/me/calendarList")
    def calendar_list() -> ResponseReturnValue:
        with state.lock:
            _, user = authorize(state, "calendar.calendarList.list")
            min_role = request.args.get("minAccessRole")
            if min_role is not None and min_role not in ACCESS_ROLES[1:]:
                return bad_request(f"Invalid value '{min_role}' for minAccessRole", location="minAccessRole")
            items: list[JSONDict] = []
            for cid, role in user.calendars.items():
                if role == "none":
                    continue
                if min_role and ACCESS_ROLES.index(role) < ACCESS_ROLES.index(min_role):
                    continue
                items.append(_entry(state.calendars[cid], role, user))
            items.sort(key=lambda e: (not e.get("primary", False), e["summary"]))
            return _page(items)

    return bp


def _entry(cal: GoogleCalendar, role: str, user: GoogleUser) -> JSONDict:
    cid = cal.id
    entry: JSONDict = {
        "kind": "calendar#calendarListEntry",
        "etag": f'"{abs(hash((cid, role))) % 10**16}"',
        "id": cid,
        "summary": cal.summary,
        "timeZone": cal.time_zone,
        "colorId": "14",
        "backgroundColor": cal.background_color,
        "foregroundColor": "#000000",
        "selected": True,
        "accessRole": role,
        "defaultReminders": [{"method": "popup", "minutes": 10}] if role in ("owner", "writer") else [],
        "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
    }
    if cal.description:
        entry["description"] = cal.description
    if cid == user.email:
        entry["primary"] = True
        entry["notificationSettings"] = {
            "notifications": [
                {"type": t, "method": "email"}
                for t in ("eventCreation", "eventChange", "eventCancellation", "eventResponse")
            ]
        }
    elif cal.owner and cal.owner != user.email and role != "owner":
        entry["dataOwner"] = cal.owner
    return entry


def _page(items: list[JSONDict]) -> ResponseReturnValue:
    try:
        max_results = min(int(request.args.get("maxResults", "100")), 250)
        offset = int(request.args.get("pageToken", "0") or "0")
    except ValueError:
        return bad_request("Invalid page token or maxResults")
    page = items[offset : offset + max_results]
    body: JSONDict = {
        "kind": "calendar#calendarList",
        "etag": f'"p{abs(hash(tuple(e["id"] for e in items))) % 10**14}"',
        "items": page,
    }
    if offset + max_results < len(items):
        body["nextPageToken"] = str(offset + max_results)
    else:
        body["nextSyncToken"] = "CL" + random_urlsafe(12)
    return json_response(body)
