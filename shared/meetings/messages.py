"""What the meetings worker tells people: e-mail facts, readable failure reasons, the ``.ics``."""

from __future__ import annotations

from shared.notify.emails import SessionFacts
from shared.store import Booking, ClassItem, MeetingProvider, Session

PROVIDER_NAMES = {
    MeetingProvider.GOOGLE_MEET: "Google Meet",
    MeetingProvider.ZOOM: "Zoom",
    MeetingProvider.TEAMS: "Microsoft Teams",
}


def student(booking: Booking) -> tuple[str, str]:
    """The booking's student: e-mail address and name."""
    return booking.student_email, booking.student_name


def facts(klass: ClassItem, session: Session) -> SessionFacts:
    """The session as the e-mails describe it."""
    provider = PROVIDER_NAMES.get(klass.meeting_provider) if klass.meeting_provider else None
    return SessionFacts(
        title=klass.title, start=session.start, end=session.end, timezone=klass.timezone, provider_name=provider or ""
    )


def words(reason: str | None) -> str:
    """The booking's readable ``meetingError`` for a recorded reason."""
    if not reason:
        return "The meeting could not be created."
    code, _, detail = reason.partition(":")
    return {
        "needs_reconnect": "The mentor's video provider needs to be reconnected; the join link will follow.",
        "not_connected": "The mentor's video provider is not connected; the join link will follow.",
    }.get(code, f"The meeting could not be created ({detail.strip() or code}).")


def ics(klass: ClassItem, session: Session, url: str | None) -> bytes:
    """The session as a one-event iCalendar file (its ``SEQUENCE`` is the session's)."""
    from shared.notify.ics import calendar, session_event

    event = session_event(
        session_id=session.session_id,
        title=klass.title,
        start=session.start,
        end=session.end,
        timezone=klass.timezone,
        sequence=session.sequence,
        url=url,
        stamp=session.updated_at,
    )
    return bytes(calendar([event]).to_ical())
