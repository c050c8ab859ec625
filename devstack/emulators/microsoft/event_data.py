"""Outlook event resources: time zones (Windows and IANA names), ``dateTimeTimeZone`` values,
Teams meeting data, and building, changing and showing an event.

Rules:

* Start and end are held as UTC instants; an answer shows them in the zone of the
  ``Prefer: outlook.timezone="..."`` header, else in UTC (NOTES-msgraph §5).
* ``isOnlineMeeting: true`` with ``onlineMeetingProvider: teamsForBusiness`` (or no provider, the
  calendar's default) on a calendar set up for Teams gets ``onlineMeeting.joinUrl``; once online an
  event stays online with the same link and provider (§5) - a move keeps the link. On a calendar
  without online meetings the event is created offline, as Outlook does.
* Read-only properties in a request are ignored; ``transactionId`` is set once, at creation.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from devstack.emulators.common import JSONDict, b64url, random_from, zone
from devstack.emulators.microsoft.model import TEAMS, WINDOWS_ZONES, MsCalendar, MsUser

#: Properties the server owns; a client's values for them are dropped.
READ_ONLY = frozenset(
    {
        "id",
        "@odata.etag",
        "@odata.context",
        "createdDateTime",
        "lastModifiedDateTime",
        "changeKey",
        "iCalUId",
        "webLink",
        "onlineMeeting",
        "onlineMeetingUrl",
        "organizer",
        "isOrganizer",
        "type",
        "seriesMasterId",
        "responseStatus",
        "hasAttachments",
        "bodyPreview",
        "isCancelled",
        "originalStartTimeZone",
        "originalEndTimeZone",
        "calendar",
        "instances",
        "attachments",
        "extensions",
    }
)

_OWA = "https://outlook.office365.com/owa/"
_PREFER_TZ = re.compile(r'outlook\.timezone\s*=\s*"([^"]+)"', re.IGNORECASE)


class EventError(ValueError):
    """A request value Graph refuses: ``code`` and ``message`` of its 400 answer."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def zone_for(name: str | None) -> ZoneInfo | None:
    """The zone a Graph ``timeZone`` names (Windows or IANA); ``None`` when unknown."""
    if not name:
        return None
    iana = WINDOWS_ZONES.get(name)
    return zone(iana) if iana else zone(name)


def preferred_zone(prefer_header: str | None) -> str:
    """The zone of ``Prefer: outlook.timezone="..."`` when known, else ``UTC``."""
    match = _PREFER_TZ.search(prefer_header or "")
    if match and zone_for(match.group(1)) is not None:
        return match.group(1)
    return "UTC"


def parse_when(value: Any, what: str) -> float:
    """A ``dateTimeTimeZone`` as a UTC timestamp; refuses what Graph refuses."""
    if not isinstance(value, Mapping) or not isinstance(value.get("dateTime"), str):
        raise EventError("ErrorInvalidRequest", f"The {what} property must be a dateTimeTimeZone with a dateTime.")
    tz_name = value.get("timeZone") or "UTC"
    tz = zone_for(str(tz_name))
    if tz is None:
        raise EventError(
            "TimeZoneNotSupportedException",
            f"A valid TimeZone value must be specified. The following TimeZone value is not supported: '{tz_name}'.",
        )
    raw = value["dateTime"].strip()
    raw = re.sub(r"(\.\d{6})\d+", r"\1", raw)  # Graph writes 7 fractional digits
    try:
        dt = datetime.fromisoformat(raw)
    except ValueError:
        raise EventError(
            "ErrorInvalidRequest", f"Cannot convert the literal '{raw}' to the expected type 'Edm.DateTime'."
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.timestamp()


def show_when(ts: float, tz_name: str) -> JSONDict:
    tz = zone_for(tz_name) or UTC
    local = datetime.fromtimestamp(ts, tz)
    return {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond:06d}0", "timeZone": tz_name}


def graph_timestamp(ts: float) -> str:
    """``2017-04-15T03:00:50.7579581Z`` - Graph's seven fractional digits."""
    d = datetime.fromtimestamp(ts, UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond:06d}0Z"


def new_event_id() -> str:
    return "AAMkAD" + b64url(secrets.token_bytes(96)).replace("_", "-") + "="


def change_key() -> str:
    return b64url(secrets.token_bytes(24)).replace("-", "+").replace("_", "/") + "=="


def teams_meeting(user: MsUser, tenant_id: str) -> JSONDict:
    thread = b64url(secrets.token_bytes(36))
    context = quote(f'{{"Tid":"{tenant_id}","Oid":"{user.id}"}}', safe="")
    return {
        "joinUrl": f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_{thread}%40thread.v2/0?context={context}",
        "conferenceId": random_from("0123456789", 9),
        "tollNumber": "+1 425 555 0123",
    }


def writable_fields(body: Mapping[str, Any]) -> JSONDict:
    """The client's values, read-only ones dropped and ``body.contentType`` as Graph spells it."""
    fields = {k: v for k, v in body.items() if k not in READ_ONLY}
    if isinstance(fields.get("body"), Mapping):
        item = dict(fields["body"])
        item["contentType"] = str(item.get("contentType") or "text").lower()
        fields["body"] = item
    return fields


def new_event(
    event_id: str, calendar: MsCalendar, user: MsUser, body: Mapping[str, Any], now: float, tenant_id: str
) -> tuple[JSONDict, float, float]:
    """A new event's stored resource and its UTC start and end (``EventError`` on bad input)."""
    fields = writable_fields(body)
    if "start" not in fields or "end" not in fields:
        raise EventError("ErrorInvalidRequest", "An event needs both a start and an end.")
    start, end = parse_when(fields["start"], "start"), parse_when(fields["end"], "end")
    if end < start:
        raise EventError("ErrorInvalidRequest", "The end time of the event must be after its start time.")
    subject = str(fields.get("subject") or "")
    content = (fields.get("body") or {}).get("content") if isinstance(fields.get("body"), Mapping) else None
    resource: JSONDict = {
        "id": event_id,
        "createdDateTime": graph_timestamp(now),
        "lastModifiedDateTime": graph_timestamp(now),
        "changeKey": change_key(),
        "categories": [],
        "originalStartTimeZone": str(fields["start"].get("timeZone") or "UTC"),
        "originalEndTimeZone": str(fields["end"].get("timeZone") or "UTC"),
        "iCalUId": "040000008200E00074C5B7101A82E008" + hashlib.sha256(event_id.encode()).hexdigest()[:80].upper(),
        "reminderMinutesBeforeStart": 15,
        "isReminderOn": True,
        "hasAttachments": False,
        "subject": subject,
        "bodyPreview": str(content or "")[:255],
        "importance": "normal",
        "sensitivity": "normal",
        "isAllDay": False,
        "isCancelled": False,
        "isDraft": False,
        "isOrganizer": True,
        "responseRequested": True,
        "seriesMasterId": None,
        "showAs": "busy",
        "type": "singleInstance",
        "webLink": f"{_OWA}?itemid={quote(event_id, safe='')}&exvsurl=1&path=/calendar/item",
        "onlineMeetingUrl": None,
        "isOnlineMeeting": False,
        "onlineMeetingProvider": "unknown",
        "allowNewTimeProposals": True,
        "hideAttendees": False,
        "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
        "body": {"contentType": "html", "content": str(content or "")},
        "location": {"displayName": "", "locationType": "default", "uniqueIdType": "unknown"},
        "locations": [],
        "recurrence": None,
        "attendees": [],
        "organizer": {"emailAddress": {"name": user.display_name, "address": user.address}},
        "onlineMeeting": None,
    }
    for key, value in fields.items():
        if key not in ("start", "end", "isOnlineMeeting", "onlineMeetingProvider"):
            resource[key] = value
    _go_online(resource, fields, calendar, user, tenant_id)
    return resource, start, end


def _go_online(
    resource: JSONDict, fields: Mapping[str, Any], calendar: MsCalendar, user: MsUser, tenant_id: str
) -> None:
    if not fields.get("isOnlineMeeting") or resource.get("isOnlineMeeting"):
        return
    provider = fields.get("onlineMeetingProvider") or TEAMS
    if provider != TEAMS or not calendar.online_meetings:
        return  # Outlook creates the event without a meeting when it cannot make one
    resource["isOnlineMeeting"] = True
    resource["onlineMeetingProvider"] = TEAMS
    resource["onlineMeeting"] = teams_meeting(user, tenant_id)


def apply_patch(
    resource: JSONDict, body: Mapping[str, Any], calendar: MsCalendar, user: MsUser, tenant_id: str, now: float
) -> tuple[float | None, float | None]:
    """Change an event's resource in place; returns the new UTC start/end (``None`` = unchanged)."""
    fields = writable_fields(body)
    if "transactionId" in fields and fields["transactionId"] != resource.get("transactionId"):
        raise EventError("ErrorInvalidRequest", "The transactionId of an event cannot be changed after it is created.")
    if resource.get("isOnlineMeeting"):
        if fields.get("isOnlineMeeting") is False:
            raise EventError("ErrorInvalidRequest", "An online meeting cannot be changed back to an offline event.")
        provider = fields.get("onlineMeetingProvider")
        if provider is not None and provider != resource.get("onlineMeetingProvider"):
            raise EventError("ErrorInvalidRequest", "The online meeting provider of an event cannot be changed.")
    start = parse_when(fields["start"], "start") if "start" in fields else None
    end = parse_when(fields["end"], "end") if "end" in fields else None
    for key, value in fields.items():
        if key not in ("start", "end", "isOnlineMeeting", "onlineMeetingProvider", "transactionId"):
            resource[key] = value
    if "start" in fields:
        resource["originalStartTimeZone"] = str(fields["start"].get("timeZone") or "UTC")
    if "end" in fields:
        resource["originalEndTimeZone"] = str(fields["end"].get("timeZone") or "UTC")
    if isinstance(fields.get("body"), Mapping):
        resource["bodyPreview"] = str(fields["body"].get("content") or "")[:255]
    _go_online(resource, fields, calendar, user, tenant_id)
    touch(resource, now)
    return start, end


def touch(resource: JSONDict, now: float) -> None:
    resource["lastModifiedDateTime"] = graph_timestamp(now)
    resource["changeKey"] = change_key()


def show_event(resource: Mapping[str, Any], start: float, end: float, tz_name: str, context: str) -> JSONDict:
    """The event as an answer: ``@odata.context``, ``@odata.etag``, then its properties."""
    out: JSONDict = {"@odata.context": context, "@odata.etag": f'W/"{resource["changeKey"]}"'}
    for key, value in resource.items():
        out[key] = value
        if key == "body":
            out["start"] = show_when(start, tz_name)
            out["end"] = show_when(end, tz_name)
    return out
