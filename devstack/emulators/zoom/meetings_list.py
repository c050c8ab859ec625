"""``meetings`` (List meetings, ``GET /v2/users/{userId}/meetings``): the host's meetings,
oldest start first.

Rules: ``type`` filters by time and status; ``from``/``to`` are days in ``timezone`` (the host's
by default); ``page_size`` is 1-300 (30 by default); a ``next_page_token`` is valid 15 minutes and
only for the same query; agendas are cut to 250 characters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta, tzinfo
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue

from devstack.emulators import spec
from devstack.emulators.common import JSONDict, abort_with, json_response, random_alnum, zone
from devstack.emulators.zoom import guards
from devstack.emulators.zoom.errors import zoom_error
from devstack.emulators.zoom.model import (
    LIST_AGENDA_MAX,
    LIST_PAGE_SIZE_DEFAULT,
    LIST_PAGE_SIZE_MAX,
    LIST_TYPES,
    OPS,
    PAGE_TOKEN_TTL,
    ZoomUser,
    start_time_utc,
)
from devstack.emulators.zoom.state import ZoomState


@dataclass
class _Query:
    list_type: str
    page_size: int
    tz: tzinfo
    start: date | None
    end: date | None
    fingerprint: str


def blueprint(state: ZoomState) -> Blueprint:
    bp = Blueprint("zoom_meetings_list", __name__, url_prefix="/v2")

    @bp.get("/users/<user_id>/meetings")
    def list_meetings(user_id: str) -> ResponseReturnValue:
        """``meetings`` (List meetings): the host's scheduled meetings, oldest start first."""
        with state.lock:
            _, me = guards.authorize(state, "meetings")
            host = guards.resolve_user(me, user_id)
            q = _query(state, host)
            now = state.now()
            offset = _offset(state, host, q, now)
            mine = [m for m in state.meetings.values() if m["host_id"] == host.id and _keep(m, q, host, now)]
            mine.sort(key=lambda m: (str(m.get("start_time", "")), int(m["id"])))
            page = mine[offset : offset + q.page_size]
            next_token = ""
            if offset + q.page_size < len(mine):
                next_token = random_alnum(32)
                state.page_tokens[next_token] = (host.id, q.fingerprint, offset + q.page_size, now + PAGE_TOKEN_TTL)
            return json_response(
                {
                    "page_size": q.page_size,
                    "total_records": len(mine),
                    "next_page_token": next_token,
                    "meetings": [_item(m) for m in page],
                }
            )

    return bp


def _invalid(field_name: str) -> Response:
    return zoom_error(400, 300, "Validation Failed.", errors=[{"field": field_name, "message": "Invalid field."}])


def _query(state: ZoomState, host: ZoomUser) -> _Query:
    args = request.args
    try:
        findings = spec.request_findings(
            None, zoom_operation=("GET", OPS["meetings"][1]), query=args.to_dict(flat=True)
        )
    except (spec.SpecNotFoundError, OSError, KeyError, ValueError):
        findings = []
    if findings:
        state.request_findings.append(
            {"ts": state.now(), "operation": "meetings", "findings": [str(f) for f in findings]}
        )
    list_type = args.get("type", "scheduled")
    if list_type not in LIST_TYPES:
        abort_with(_invalid("type"))
    try:
        page_size = int(args.get("page_size", LIST_PAGE_SIZE_DEFAULT))
    except ValueError:
        abort_with(_invalid("page_size"))
    if not 1 <= page_size <= LIST_PAGE_SIZE_MAX:
        abort_with(_invalid("page_size"))
    tz = zone(args.get("timezone") or host.timezone) or ZoneInfo("UTC")
    bounds: dict[str, date | None] = {}
    for name in ("from", "to"):
        raw = args.get(name)
        try:
            bounds[name] = date.fromisoformat(raw) if raw else None
        except ValueError:
            abort_with(_invalid(name))
    fingerprint = json.dumps(
        [list_type, page_size, args.get("from"), args.get("to"), args.get("timezone")], separators=(",", ":")
    )
    return _Query(list_type, page_size, tz, bounds["from"], bounds["to"], fingerprint)


def _offset(state: ZoomState, host: ZoomUser, q: _Query, now: float) -> int:
    page_token = request.args.get("next_page_token")
    if not page_token:
        return 0
    held = state.page_tokens.get(page_token)
    if held is None or held[0] != host.id or held[1] != q.fingerprint or held[3] <= now:
        abort_with(zoom_error(400, 300, "The next page token is invalid or expired."))
    return held[2]


def _keep(m: JSONDict, q: _Query, host: ZoomUser, now: float) -> bool:
    start = start_time_utc(str(m.get("start_time", "")), str(m.get("timezone") or host.timezone))
    if start is None:
        return q.list_type == "scheduled"
    end = start + timedelta(minutes=int(m.get("duration") or 0))
    if q.list_type in ("upcoming", "upcoming_meetings") and end.timestamp() <= now:
        return False
    if q.list_type == "previous_meetings" and end.timestamp() > now:
        return False
    if q.list_type == "live" and m.get("status") != "started":
        return False
    local_day = start.astimezone(q.tz).date()
    if q.start and local_day < q.start:
        return False
    return not (q.end and local_day > q.end)


def _item(m: JSONDict) -> JSONDict:
    item: JSONDict = {
        "uuid": m["uuid"],
        "id": m["id"],
        "host_id": m["host_id"],
        "topic": m.get("topic", ""),
        "type": m.get("type", 2),
        "start_time": m.get("start_time"),
        "duration": m.get("duration"),
        "timezone": m.get("timezone"),
        "agenda": str(m.get("agenda") or "")[:LIST_AGENDA_MAX],
        "created_at": m.get("created_at"),
        "join_url": m.get("join_url"),
    }
    if not item["agenda"]:
        item.pop("agenda")
    return item
