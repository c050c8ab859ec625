"""Graph reads and writes for busy times (PRODUCT.md §2.7): ``getSchedule`` and change-notification
subscriptions.

* :meth:`MicrosoftBusyClient.schedule` - ``POST /me/calendar/getSchedule`` for the mailbox's own
  address over ``[start, end)``, split into periods of at most :data:`MAX_PERIOD` (Graph refuses
  62 days or more with ``ErrorTimeIntervalTooBig``). Times are asked and read in UTC.
* :meth:`MicrosoftBusyClient.subscribe` - ``POST /subscriptions`` on the selected calendar's events
  (``me/events`` for the default calendar) with a ``clientState`` and a lifecycle URL; Graph
  validates the URL (the ``validationToken`` handshake) before it answers.
* :meth:`MicrosoftBusyClient.renew` - ``PATCH /subscriptions/{id}`` with a new expiration
  (``None`` when Graph no longer knows the subscription: 404).

Errors are those of :class:`shared.providers.microsoft.graph.MicrosoftClient` (retries, 401,
throttling); no message carries a token or the clientState.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import SecretStr

from shared.providers.microsoft.errors import MicrosoftApiError
from shared.providers.microsoft.graph import MicrosoftClient

#: The longest getSchedule period asked at once (Graph refuses 62 days or more).
MAX_PERIOD: Final = timedelta(days=61)
#: The most schedule items kept from one answer (a bound on memory and on the busy set).
MAX_ITEMS: Final = 5000
#: The change types a subscription asks for.
CHANGE_TYPES: Final = "created,updated,deleted"


@dataclass(frozen=True)
class ScheduleItem:
    """One item of the mailbox's schedule: ``status`` is Graph's free/tentative/busy/oof/workingElsewhere/unknown."""

    start: datetime
    end: datetime
    status: str


@dataclass(frozen=True)
class Subscription:
    """A change-notification subscription as Graph answered it."""

    id: str
    resource: str
    expiration: datetime


def periods(start: datetime, end: datetime, longest: timedelta = MAX_PERIOD) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut into consecutive periods of at most ``longest``."""
    out: list[tuple[datetime, datetime]] = []
    cursor = start
    while cursor < end:
        upto = min(cursor + longest, end)
        out.append((cursor, upto))
        cursor = upto
    return out


def calendar_resource(calendar_id: str) -> str:
    """The events resource of a calendar: ``me/events`` for the default one (``primary``)."""
    return "me/events" if calendar_id in ("", "primary") else f"me/calendars/{calendar_id}/events"


def _utc_text(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _parse_time(value: Any) -> datetime | None:
    """A Graph ``dateTimeTimeZone`` as an aware UTC datetime (``None`` when unreadable)."""
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        return None
    text = value["dateTime"][:26]  # Graph sends 7 fractional digits; Python reads at most 6
    try:
        naive = datetime.fromisoformat(text.rstrip("Z"))
    except ValueError:
        return None
    zone = str(value.get("timeZone") or "UTC")
    try:
        tz = UTC if zone.upper() in ("UTC", "Z", "") else ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return (naive if naive.tzinfo else naive.replace(tzinfo=tz)).astimezone(UTC)


def _parse_expiration(value: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(value)[:26].rstrip("Z")).replace(tzinfo=UTC)
    except ValueError:
        raise MicrosoftApiError("Microsoft Graph answered a subscription without a readable expiration.") from None


class MicrosoftBusyClient(MicrosoftClient):
    """getSchedule and subscriptions over the configured Graph base."""

    def _post(self, url: str, token: SecretStr, body: dict[str, Any], method: str = "POST") -> dict[str, Any]:
        from shared.providers.rest import json_body

        answer = json_body(self._send(method, url, token, body))
        if not isinstance(answer, dict):
            raise MicrosoftApiError("Microsoft Graph answered with a body that is not a JSON object.")
        return answer

    def schedule(self, token: SecretStr, address: str, start: datetime, end: datetime) -> list[ScheduleItem]:
        """The mailbox's schedule items overlapping ``[start, end)``, one request per period."""
        items: list[ScheduleItem] = []
        for lo, hi in periods(start, end):
            body = {
                "schedules": [address],
                "startTime": {"dateTime": _utc_text(lo), "timeZone": "UTC"},
                "endTime": {"dateTime": _utc_text(hi), "timeZone": "UTC"},
                "availabilityViewInterval": 60,
            }
            answer = self._post(self._api.url("me", "calendar", "getSchedule"), token, body)
            for info in answer.get("value") or []:
                if not isinstance(info, dict):
                    continue
                if isinstance(info.get("error"), dict):
                    code = str(info["error"].get("responseCode") or "schedule_error")[:64]
                    raise MicrosoftApiError(f"Microsoft Graph could not read the schedule ({code}).", code=code)
                for raw in info.get("scheduleItems") or []:
                    item = self._item(raw)
                    if item is not None and len(items) < MAX_ITEMS:
                        items.append(item)
        return items

    @staticmethod
    def _item(raw: Any) -> ScheduleItem | None:
        if not isinstance(raw, dict):
            return None
        start, end = _parse_time(raw.get("start")), _parse_time(raw.get("end"))
        if start is None or end is None or end <= start:
            return None
        return ScheduleItem(start=start, end=end, status=str(raw.get("status") or "unknown")[:32])

    def subscribe(
        self, token: SecretStr, calendar_id: str, *, url: str, client_state: SecretStr, expiration: datetime
    ) -> Subscription:
        """Create a subscription on the calendar's events (notifications and lifecycle events to ``url``)."""
        body = {
            "changeType": CHANGE_TYPES,
            "notificationUrl": url,
            "lifecycleNotificationUrl": url,
            "resource": calendar_resource(calendar_id),
            "expirationDateTime": _utc_text(expiration) + "Z",
            "clientState": client_state.get_secret_value(),
        }
        answer = self._post(self._api.url("subscriptions"), token, body)
        if not answer.get("id"):
            raise MicrosoftApiError("Microsoft Graph answered a subscription without an id.")
        return Subscription(
            id=str(answer["id"])[:128],
            resource=str(answer.get("resource") or body["resource"])[:512],
            expiration=_parse_expiration(answer.get("expirationDateTime")),
        )

    def renew(self, token: SecretStr, subscription_id: str, expiration: datetime) -> datetime | None:
        """Move the subscription's expiration; the new one, or ``None`` when Graph no longer has it (404)."""
        try:
            answer = self._post(
                self._api.url("subscriptions", subscription_id),
                token,
                {"expirationDateTime": _utc_text(expiration) + "Z"},
                method="PATCH",
            )
        except MicrosoftApiError as exc:
            if exc.status == 404:
                return None
            raise
        return _parse_expiration(answer.get("expirationDateTime"))
