"""Classes and their sessions (PRODUCT.md §2.4, §3): create, read, move a session, cancel a session.

* ``POST /classes`` — :func:`create_class`. The body is checked field by field (400
  ``invalid_request`` with ``fields``), the sessions are expanded (explicit ``starts``, or
  ``rrule`` + ``dtstart`` in the class's zone, see :mod:`shared.schedule.recurrence`), then the rules of
  §2.4 apply in this order:

  1. ``format: "online"`` needs plan Pro or Premium — else 403 ``plan_required`` (no profile = Free);
  2. the video provider (:func:`resolve_provider`): the named one must be connected — else 409
     ``provider_not_connected``; when none is named, only Google → ``google_meet``, only Zoom →
     ``zoom``, both → 400 ``meeting_provider_required`` with ``choices``, neither → 409
     ``no_video_provider`` with ``connectUrl``. Apple never counts (it cannot mint meetings), nor
     does a connection that ``needs_reconnect``;
  3. a Zoom Basic account (plan type 1) and a duration over 40 minutes → created, with the warning
     ``zoom_free_40_min_cap``.

  The class and all its sessions are written in one transaction: nothing is half-written. Sessions
  that overlap the mentor's calendar busy times or a held / booked private session are named in a
  ``calendar_conflict`` warning (:mod:`shared.schedule.conflicts`): the class is created anyway.
* ``GET /classes/{id}`` — :func:`get_class` (the owner only; anyone else gets 404).
* ``PATCH`` / ``DELETE /classes/{id}/sessions/{sid}`` — :func:`move_session` and
  :func:`cancel_session`, in :mod:`shared.schedule.sessions` (re-exported here).

Times: a start with an offset is that instant; a naive one is a wall time in the class's zone.
Responses give every time in the class's zone with its offset.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from http import HTTPStatus
from itertools import pairwise
from zoneinfo import ZoneInfo

from shared.platform.api import ApiError
from shared.platform.bounds import date_range
from shared.platform.observability import logger
from shared.schedule.class_models import (
    WARNINGS,
    ClassView,
    CreateClassRequest,
    LocalDateTime,
    MoveSessionRequest,
    SessionCancelled,
    SessionView,
    WarningView,
    class_view,
    invalid,
    owned_class,
    placed_in_range,
    session_end,
    session_view,
)
from shared.schedule.class_models import instant as _instant
from shared.schedule.conflicts import conflict_warning, find_conflicts
from shared.schedule.recurrence import RecurrenceError, expand, to_wall, zone
from shared.schedule.sessions import cancel_session, move_session
from shared.store import (
    MAX_SESSIONS,
    ClassFormat,
    ClassItem,
    Connection,
    ConnectionStatus,
    MeetingProvider,
    Plan,
    ScheduleStore,
    Session,
    Store,
)
from shared.store.busy import BusyStore
from shared.store.schedule import session_id_for

__all__ = [
    "CONNECTIONS_PAGE",
    "WARNINGS",
    "ClassView",
    "CreateClassRequest",
    "LocalDateTime",
    "MoveSessionRequest",
    "SessionCancelled",
    "SessionView",
    "WarningView",
    "cancel_session",
    "class_view",
    "class_warnings",
    "create_class",
    "get_class",
    "invalid",
    "mentor_plan",
    "move_session",
    "new_class_id",
    "online_rules",
    "owned_class",
    "resolve_provider",
    "session_end",
    "session_starts",
    "session_view",
]

#: Where the mentor app connects providers (``connectUrl`` of ``no_video_provider``).
CONNECTIONS_PAGE = "/mentor/settings/connections"
ONLINE_PLANS = (Plan.PRO, Plan.PREMIUM)
#: Zoom user type 1 is Basic (free): meetings with others end after 40 minutes.
ZOOM_BASIC = 1
ZOOM_FREE_CAP_MINUTES = 40


def session_starts(body: CreateClassRequest, tz: ZoneInfo, now: datetime) -> list[datetime]:
    """The sessions' starts (aware, in ``tz``, sorted), or 400 ``invalid_request`` naming the field."""
    if body.starts is not None and body.rrule is not None:
        raise invalid("starts", "give either starts (one-off sessions) or rrule + dtstart (a recurrence), not both")
    if body.starts is None and body.rrule is None:
        raise invalid("starts", "the class needs sessions: starts (one-off) or rrule + dtstart (a recurrence)")
    if body.rrule is None:
        if body.dtstart is not None:
            raise invalid("dtstart", "dtstart goes with rrule")
        # Compared as UTC instants: aware datetimes sharing a tzinfo compare by wall time (PEP 495),
        # which would merge the two 02:30s of a fall-back night.
        starts = sorted((placed_in_range(s, tz, "starts", now) for s in body.starts or []), key=_instant)
        for first, second in pairwise(starts):
            if _instant(first) == _instant(second):
                raise invalid("starts", f"{first.isoformat()} is given twice")
    else:
        if body.dtstart is None:
            raise invalid("dtstart", "rrule needs dtstart, the first session's start")
        placed_in_range(body.dtstart, tz, "dtstart", now)  # before to_wall: converting 9999-12-31 overflows
        try:
            starts = expand(
                body.rrule, to_wall(body.dtstart, tz), tz, max_sessions=MAX_SESSIONS, bounds=date_range(now)
            )
        except RecurrenceError as exc:
            raise invalid(exc.field, exc.message, code=exc.code) from None
    if _instant(starts[0]) <= now:
        field = "starts" if body.rrule is None else "dtstart"
        raise invalid(field, f"sessions must start in the future ({starts[0].isoformat()} has passed)")
    return starts


def mentor_plan(store: Store, mentor_id: str) -> Plan:
    """The mentor's plan; a mentor without a profile is on Free."""
    mentor = store.get_mentor(mentor_id)
    return mentor.plan if mentor is not None else Plan.FREE


#: How the resolution messages name each video provider.
_VIDEO_NAMES = {
    MeetingProvider.GOOGLE_MEET: "Google Meet",
    MeetingProvider.ZOOM: "Zoom",
    MeetingProvider.TEAMS: "Microsoft Teams",
}


def resolve_provider(
    requested: MeetingProvider | None, connections: Iterable[Connection]
) -> tuple[MeetingProvider, Connection]:
    """The online class's video provider and its connection, by the rules of PRODUCT.md §2.4."""
    found = {c.provider: c for c in connections}
    if requested is not None:
        conn = found.get(requested.connection)
        if conn is None or conn.status is not ConnectionStatus.CONNECTED:
            state = conn.status.value if conn is not None else ConnectionStatus.NOT_CONNECTED.value
            verb = "needs reconnecting" if conn is not None else "is not connected"
            raise ApiError(
                HTTPStatus.CONFLICT,
                "provider_not_connected",
                f"{requested.value} {verb}; connect it or choose another provider.",
                provider=requested.value,
                connectionStatus=state,
                connectUrl=CONNECTIONS_PAGE,
            )
        return requested, conn
    usable = [
        (p, found[p.connection])
        for p in MeetingProvider
        if p.connection in found and found[p.connection].status is ConnectionStatus.CONNECTED
    ]
    if len(usable) == 1:
        return usable[0]
    if usable:
        named = [_VIDEO_NAMES[p] for p, _ in usable]
        names = ", ".join(named[:-1]) + " and " + named[-1]
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "meeting_provider_required",
            f"{names} are connected: choose meetingProvider.",
            choices=[p.value for p, _ in usable],
        )
    raise ApiError(
        HTTPStatus.CONFLICT,
        "no_video_provider",
        "Online classes need Google (Meet), Zoom or Microsoft 365 (Teams) connected; "
        "Apple Calendar cannot host meetings.",
        connectUrl=CONNECTIONS_PAGE,
    )


def class_warnings(provider: MeetingProvider | None, conn: Connection | None, duration_minutes: int) -> list[str]:
    """Warnings of a class that is created anyway (codes of :data:`WARNINGS`)."""
    if (
        provider is MeetingProvider.ZOOM
        and conn is not None
        and conn.plan_type == ZOOM_BASIC
        and duration_minutes > ZOOM_FREE_CAP_MINUTES
    ):
        return ["zoom_free_40_min_cap"]
    return []


def new_class_id() -> str:
    return "cls_" + secrets.token_hex(8)


# --- operations -----------------------------------------------------------------------------------


def _check_place(body: CreateClassRequest, *, online: bool) -> None:
    """An online class has no location but may name a provider; an in-person one is the reverse."""
    if online and body.location is not None:
        raise invalid("location", "an online class has no location (its meeting link is minted per session)")
    if not online and body.location is None:
        raise invalid("location", "an in-person class needs a location")
    if not online and body.meeting_provider is not None:
        raise invalid("meetingProvider", "only online classes have a meeting provider")


def online_rules(
    store: Store, mentor_id: str, requested: MeetingProvider | None, duration_minutes: int, *, what: str = "classes"
) -> tuple[MeetingProvider, list[str]]:
    """An online class's (or private session's) plan gate, its video provider and its warnings
    (PRODUCT.md §2.4, rules 1-3)."""
    if mentor_plan(store, mentor_id) not in ONLINE_PLANS:
        raise ApiError(
            HTTPStatus.FORBIDDEN,
            "plan_required",
            f"Online {what} need the Pro or Premium plan.",
            plans=[p.value for p in ONLINE_PLANS],
        )
    provider, conn = resolve_provider(requested, store.list_connections(mentor_id))
    return provider, class_warnings(provider, conn, duration_minutes)


def create_class(
    store: Store,
    schedule: ScheduleStore,
    mentor_id: str,
    body: CreateClassRequest,
    *,
    now: datetime | None = None,
    busy: BusyStore | None = None,
) -> ClassView:
    """Check, resolve and write a class with all its sessions (one transaction); then warn of sessions
    that overlap the calendar (``busy``) or a private session (:mod:`shared.schedule.conflicts`)."""
    now = now or datetime.now(UTC)
    tz = zone(body.timezone)
    online = body.format is ClassFormat.ONLINE
    _check_place(body, online=online)
    starts = session_starts(body, tz, now)
    provider, warnings = (
        online_rules(store, mentor_id, body.meeting_provider, body.duration_minutes) if online else (None, [])
    )

    class_id = new_class_id()
    item = ClassItem(
        class_id=class_id,
        mentor_id=mentor_id,
        title=body.title,
        format=body.format,
        timezone=body.timezone,
        duration_minutes=body.duration_minutes,
        capacity=body.capacity,
        location=body.location,
        meeting_provider=provider,
        recurrence=body.rrule,
        warnings=tuple(warnings),
    )
    sessions = [
        Session(
            class_id=class_id,
            session_id=session_id_for(class_id, n),
            mentor_id=mentor_id,
            start=start,
            end=session_end(start, body.duration_minutes, tz),
            capacity=body.capacity,
        )
        for n, start in enumerate(starts, start=1)
    ]
    schedule.create_class(item, sessions)
    logger.info(
        "class created",
        extra={"class_id": class_id, "format": item.format.value, "sessions": len(sessions), "warnings": warnings},
    )
    view = class_view(item, sessions)
    overlaps = find_conflicts(schedule, busy, mentor_id, sessions, tz)
    if overlaps:
        logger.info("class overlaps busy time", extra={"class_id": class_id, "sessions": len(overlaps)})
    return view.model_copy(update={"warnings": [*view.warnings, *conflict_warning(overlaps)]})


def get_class(schedule: ScheduleStore, mentor_id: str, class_id: str) -> ClassView:
    item = owned_class(schedule, mentor_id, class_id)
    return class_view(item, schedule.list_sessions(class_id))
