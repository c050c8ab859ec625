"""An e-mail never fails on its content (shared.notify.emails, issue 14): a title stored with CR/LF
once made every confirmation retry raise until the job reached the DLQ and the student got nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from typing import Any

import pytest

from shared.notify.emails import (
    MAX_SUBJECT,
    Mailer,
    SessionFacts,
    cancellation_email,
    confirmation_email,
    header_value,
    meeting_failed_email,
)

START = datetime(2027, 3, 1, 17, tzinfo=UTC)
HOSTILE = [
    "Yoga\r\nBcc: everyone@example.com",
    "Yoga\nflow",
    "Yoga\rflow",
    "Yoga\x00\x1b[2Jflow",
    "Yoga\u2028flow\u0085",
    "Yoga \ud800 flow",  # a lone surrogate: not encodable as UTF-8
    "Y" * 5000,
]


def _facts(title: str, start: datetime = START, timezone: str = "Europe/Berlin") -> SessionFacts:
    return SessionFacts(title, start, start + timedelta(hours=1), timezone, "Zoom")


class FakeSes:
    def __init__(self) -> None:
        self.raw: list[bytes] = []

    def send_email(self, **kwargs: Any) -> dict[str, str]:
        self.raw.append(kwargs["Content"]["Raw"]["Data"])
        return {"MessageId": f"msg-{len(self.raw)}"}


@pytest.mark.parametrize("title", HOSTILE)
def test_a_stored_title_of_any_content_still_makes_every_email(title: str) -> None:
    ses = FakeSes()
    mailer = Mailer(ses, sender="noreply@example.com")
    emails = [
        confirmation_email("student@example.com", "Ann", _facts(title), "https://zoom.us/j/1", b"BEGIN:VCALENDAR"),
        confirmation_email("student@example.com", "Ann", _facts(title), "https://zoom.us/j/1", b"X", moved=True),
        cancellation_email("student@example.com", "Ann", _facts(title), "session_cancelled"),
        meeting_failed_email("mentor@example.com", _facts(title), "zoom_unavailable", "https://app.example.com"),
    ]
    assert [mailer.send(e) for e in emails] == ["msg-1", "msg-2", "msg-3", "msg-4"]
    for raw in ses.raw:
        message = message_from_bytes(raw, policy=policy.default)
        subject = str(message["Subject"])
        assert "\n" not in subject
        assert "\r" not in subject
        assert len(subject) <= MAX_SUBJECT
        assert message["Bcc"] is None
        assert len(message.get_all("Subject") or []) == 1


def test_header_values_are_one_clean_line() -> None:
    assert header_value("Booked: Yoga\r\nBcc: x@example.com") == "Booked: Yoga Bcc: x@example.com"
    assert header_value("  a\t\tb\x00c  ") == "a b c"


@pytest.mark.parametrize(
    ("start", "timezone"),
    [(datetime(9999, 12, 31, 22, tzinfo=UTC), "Pacific/Kiritimati"), (START, "Mars/Olympus_Mons")],
)
def test_a_time_that_cannot_be_shown_in_its_zone_is_shown_in_utc(start: datetime, timezone: str) -> None:
    email = confirmation_email("s@example.com", "Ann", _facts("Yoga", start, timezone), "https://x", b"X")
    assert "(UTC)" in email.text
    assert email.mime("noreply@example.com")
