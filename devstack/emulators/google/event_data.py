"""Calendar event data: validating and converting times, building event resources, Meet
conference data, rendering an event as the API returns it, and expanding events into busy spans.

Rules: helpers here work on plain resources and :class:`EventRecord`; the ones that refuse a
request raise (:func:`abort_with`) the same error answer the API gives; none takes the lock (the
callers hold it).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from dateutil.rrule import rruleset, rrulestr

from devstack.emulators.common import JSONDict, abort_with, parse_rfc3339, random_from, rfc3339_millis, zone
from devstack.emulators.google.errors import bad_request
from devstack.emulators.google.model import (
    BASE32HEX,
    EVENT_READ_ONLY,
    MEET_ICON,
    EventRecord,
    GoogleCalendar,
    GoogleUser,
)

if TYPE_CHECKING:
    from devstack.emulators.google.state import GoogleState


def touch(state: GoogleState, resource: JSONDict, *, bump_sequence: bool) -> None:
    resource["updated"] = rfc3339_millis(state.now())
    resource["etag"] = state.next_etag()
    if bump_sequence:
        resource["sequence"] = int(resource.get("sequence", 0)) + 1


def merge_patch(target: JSONDict, patch: Mapping[str, Any]) -> None:
    """Patch semantics: nested objects merge, arrays and scalars replace, null clears."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            merge_patch(target[key], value)
        else:
            target[key] = json.loads(json.dumps(value))


def validate_when(resource: Mapping[str, Any], which: str) -> str | None:
    when = resource.get(which)
    if not isinstance(when, Mapping) or not ("dateTime" in when or "date" in when):
        return f"Missing {which} time."
    if "dateTime" in when:
        dt = parse_rfc3339(str(when["dateTime"]))
        if dt is None:
            return f"Invalid {which} time."
        tz = when.get("timeZone")
        if tz is not None and zone(str(tz)) is None:
            return f"Invalid time zone definition for {which} time."
        if dt.tzinfo is None and not tz:
            return f"Missing time zone definition for {which} time."
    else:
        try:
            date.fromisoformat(str(when["date"]))
        except ValueError:
            return f"Invalid {which} time."
    return None


def when_to_utc(when: Mapping[str, Any], default_tz: str) -> datetime | None:
    if "dateTime" in when:
        dt = parse_rfc3339(str(when["dateTime"]))
        if dt is None:
            return None
        if dt.tzinfo is None:
            z = zone(str(when.get("timeZone") or default_tz)) or ZoneInfo("UTC")
            dt = dt.replace(tzinfo=z)
        return dt.astimezone(UTC)
    if "date" in when:
        try:
            d = date.fromisoformat(str(when["date"]))
        except ValueError:
            return None
        z = zone(str(when.get("timeZone") or default_tz)) or ZoneInfo("UTC")
        return datetime(d.year, d.month, d.day, tzinfo=z).astimezone(UTC)
    return None


def new_event_id() -> str:
    return random_from(BASE32HEX, 26)


def html_link(event_id: str, calendar_id: str) -> str:
    eid = base64.urlsafe_b64encode(f"{event_id} {calendar_id}".encode()).decode().rstrip("=")
    return f"https://www.google.com/calendar/event?eid={eid}"


def new_event_resource(
    state: GoogleState,
    cal: GoogleCalendar,
    creator: GoogleUser | None,
    body: JSONDict,
    event_id: Any,
) -> JSONDict:
    now = state.now()
    eid = str(event_id) if event_id else new_event_id()
    owner_email = cal.owner or cal.id
    resource: JSONDict = {
        "kind": "calendar#event",
        "etag": state.next_etag(),
        "id": eid,
        "status": "confirmed",
        "htmlLink": html_link(eid, cal.id),
        "created": rfc3339_millis(now),
        "updated": rfc3339_millis(now),
    }
    writable = {k: v for k, v in body.items() if k not in EVENT_READ_ONLY and k not in ("id", "conferenceData")}
    resource.update(json.loads(json.dumps(writable)))
    resource["creator"] = {"email": creator.email if creator else owner_email, "self": True}
    org: JSONDict = {"email": cal.id if cal.id != owner_email else owner_email, "self": True}
    if cal.id != owner_email:
        org["displayName"] = cal.summary
    resource["organizer"] = org
    resource["iCalUID"] = f"{eid}@google.com"
    resource.setdefault("sequence", 0)
    resource.setdefault("reminders", {"useDefault": True})
    resource.setdefault("eventType", "default")
    for att in resource.get("attendees", []) or []:
        if isinstance(att, dict):
            att.setdefault("responseStatus", "needsAction")
            if str(att.get("email", "")).lower() == owner_email:
                att["self"] = True
    return resource


def meet_code() -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return f"{random_from(letters, 3)}-{random_from(letters, 4)}-{random_from(letters, 3)}"


def conference_success(request_id: str, key_type: str) -> JSONDict:
    code = meet_code()
    return {
        "createRequest": {
            "requestId": request_id,
            "conferenceSolutionKey": {"type": key_type},
            "status": {"statusCode": "success"},
        },
        "entryPoints": [
            {"entryPointType": "video", "uri": f"https://meet.google.com/{code}", "label": f"meet.google.com/{code}"}
        ],
        "conferenceSolution": {"key": {"type": key_type}, "name": "Google Meet", "iconUri": MEET_ICON},
        "conferenceId": code,
    }


def apply_conference(state: GoogleState, rec: EventRecord, conf_in: Any, calendar_id: str) -> None:
    """conferenceDataVersion=1 handling of a body's ``conferenceData``; refuses invalid data (400)."""
    res = rec.resource
    if conf_in is None:
        res.pop("conferenceData", None)
        res.pop("hangoutLink", None)
        rec.pending_polls = 0
        rec.conference_pending = False
        return
    if not isinstance(conf_in, Mapping):
        abort_with(bad_request("Invalid conference data."))
    create = conf_in.get("createRequest")
    if isinstance(create, Mapping):
        request_id = create.get("requestId")
        key = create.get("conferenceSolutionKey") or {}
        key_type = key.get("type") if isinstance(key, Mapping) else None
        if not request_id or not isinstance(request_id, str):
            abort_with(bad_request("Invalid conference create request: missing request id."))
        if key_type != "hangoutsMeet":
            abort_with(bad_request("Invalid conference type value."))
        existing = res.get("conferenceData", {})
        if existing.get("createRequest", {}).get("requestId") == request_id:
            return  # same request on the same event: ignored, as the schema says
        conf = state.conferences.get((calendar_id, request_id))
        if conf is None:
            mode = state.settings.conference_mode
            if mode == "failure":
                conf = {
                    "createRequest": {
                        "requestId": request_id,
                        "conferenceSolutionKey": {"type": key_type},
                        "status": {"statusCode": "failure"},
                    }
                }
            else:
                conf = conference_success(request_id, key_type)
            state.conferences[(calendar_id, request_id)] = conf
            rec.conference_pending = mode == "pending"
            rec.pending_polls = state.settings.conference_pending_polls if mode == "pending" else 0
        res["conferenceData"] = json.loads(json.dumps(conf))
        sync_hangout_link(res)
        return
    # Copying existing conference data (entryPoints + conferenceSolution): kept as given.
    if "entryPoints" in conf_in or "conferenceSolution" in conf_in:
        res["conferenceData"] = json.loads(json.dumps(dict(conf_in)))
        sync_hangout_link(res)
    return


def sync_hangout_link(res: JSONDict) -> None:
    conf = res.get("conferenceData") or {}
    video = [e for e in conf.get("entryPoints", []) if e.get("entryPointType") == "video"]
    if video and conf.get("conferenceSolution", {}).get("key", {}).get("type") == "hangoutsMeet":
        res["hangoutLink"] = video[0]["uri"]
    else:
        res.pop("hangoutLink", None)


def render_event(rec: EventRecord, *, consume_poll: bool) -> JSONDict:
    """The event as the API returns it; a pending conference hides its entry points."""
    out: JSONDict = json.loads(json.dumps(rec.resource))
    conf = out.get("conferenceData")
    if conf and rec.conference_pending and consume_poll:
        if rec.pending_polls > 0:
            rec.pending_polls -= 1
        else:
            rec.conference_pending = False
    if conf and rec.conference_pending:
        out["conferenceData"] = {
            "createRequest": {**conf["createRequest"], "status": {"statusCode": "pending"}},
        }
        out.pop("hangoutLink", None)
    return out


def expand_busy(
    rec: EventRecord, cal_tz: str, win_start: datetime, win_end: datetime
) -> list[tuple[datetime, datetime]]:
    res = rec.resource
    start = when_to_utc(res.get("start", {}), cal_tz)
    end = when_to_utc(res.get("end", {}), cal_tz)
    if start is None or end is None or end <= start:
        return []
    rules = [r for r in res.get("recurrence", []) or [] if isinstance(r, str)]
    if not rules:
        return [(start, end)] if start < win_end and end > win_start else []
    duration = end - start
    tzname = str(res.get("start", {}).get("timeZone") or cal_tz)
    local_start = start.astimezone(zone(tzname) or ZoneInfo("UTC"))
    try:
        rset = rrulestr(
            "\n".join(rules),
            dtstart=local_start,
            forceset=True,
            tzids=lambda name: zone(name) or ZoneInfo("UTC"),
        )
    except (ValueError, TypeError):
        return [(start, end)] if start < win_end and end > win_start else []
    assert isinstance(rset, rruleset)
    out: list[tuple[datetime, datetime]] = []
    for occ in rset.between(win_start - duration, win_end, inc=True):
        occ_utc = occ.astimezone(UTC)
        occ_end = occ_utc + duration
        if occ_utc < win_end and occ_end > win_start:
            out.append((occ_utc, occ_end))
        if len(out) > 5000:
            break
    return out


def declined_by_owner(res: Mapping[str, Any], calendar_id: str) -> bool:
    for att in res.get("attendees", []) or []:
        if not isinstance(att, Mapping):
            continue
        if (att.get("self") or str(att.get("email", "")).lower() == calendar_id.lower()) and att.get(
            "responseStatus"
        ) == "declined":
            return True
    return False


def fmt_busy(dt: datetime, tz: ZoneInfo) -> str:
    local = dt.astimezone(tz)
    if local.utcoffset() == timedelta(0) and tz.key in ("UTC", "Etc/UTC", "GMT"):
        return local.strftime("%Y-%m-%dT%H:%M:%SZ")
    return local.isoformat(timespec="seconds")
