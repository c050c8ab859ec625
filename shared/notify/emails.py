"""Transactional e-mails sent through Amazon SES (API v2).

The "reconnect your account" e-mail a mentor gets once when a provider revokes our refresh token
(PRODUCT.md §2.3), and the booking e-mails of the meetings worker (§2.6): the student's
confirmation with the join link and an ``.ics`` attachment, cancellation and "moved" e-mails,
and the mentor's "no join link" e-mail. Booking e-mails are sent as raw MIME through SES v2.

An e-mail never fails on its content (a stored title with CR/LF once sent every confirmation
retry to the DLQ): :meth:`OutgoingEmail.mime` writes header values on one line without control
characters, and text that cannot be encoded (lone surrogates) with replacement characters; a time
that cannot be shown in its zone is shown in UTC.

The sender is ``SENDER_EMAIL`` (default ``noreply@mentor-connections.local``); links point at
``APP_URL`` (see :class:`shared.platform.config.BaseFunctionSettings`).
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from shared.platform.bounds import without_controls
from shared.platform.observability import logger
from shared.store.models import Provider
from shared.store.repository import Store

DEFAULT_SENDER = "noreply@mentor-connections.local"
#: Longest subject sent (RFC 5322 lines stop at 998 characters; mail clients show far fewer).
MAX_SUBJECT = 250
CONNECTIONS_PATH = "/mentor/settings/connections"

_DISPLAY_NAMES = {
    Provider.GOOGLE: "Google",
    Provider.ZOOM: "Zoom",
    Provider.APPLE: "Apple",
    Provider.MICROSOFT: "Microsoft 365",
}


def default_sender() -> str:
    """The From address: ``SENDER_EMAIL`` or :data:`DEFAULT_SENDER`."""
    return os.environ.get("SENDER_EMAIL") or DEFAULT_SENDER


def provider_display_name(provider: Provider | str) -> str:
    """``"Google"``, ``"Zoom"``, ``"Apple"`` or ``"Microsoft 365"``."""
    return _DISPLAY_NAMES[Provider(provider)]


def reconnect_subject(provider: Provider | str) -> str:
    """Subject line of the reconnect e-mail, e.g. ``"Reconnect your Zoom account"``."""
    return f"Reconnect your {provider_display_name(provider)} account"


def send_reconnect_email(
    mentor_email: str,
    provider: Provider | str,
    *,
    ses_client: Any,
    sender: str | None = None,
    app_url: str,
) -> str:
    """E-mail ``mentor_email`` that their ``provider`` connection must be reconnected.

    Sends one SES v2 ``SendEmail`` with Simple content (HTML and text bodies) linking to
    ``<app_url>/mentor/settings/connections``; returns the SES message id. ``sender`` defaults to
    :func:`default_sender`. SES errors propagate (``botocore`` ``ClientError``).
    """
    name = provider_display_name(provider)
    link = app_url.rstrip("/") + CONNECTIONS_PATH
    subject = reconnect_subject(provider)
    text = (
        f"Hello,\n\n"
        f"{name} no longer accepts the access you granted to Mentor Connections, so we cannot "
        f"create meetings or read your calendar through {name} until you reconnect it.\n\n"
        f"Reconnect it here: {link}\n\n"
        f"If you disconnected {name} on purpose you can ignore this e-mail.\n"
    )
    safe_link = html.escape(link, quote=True)
    body_html = (
        "<!doctype html><html><body>"
        "<p>Hello,</p>"
        f"<p>{name} no longer accepts the access you granted to Mentor Connections, so we cannot "
        f"create meetings or read your calendar through {name} until you reconnect it.</p>"
        f'<p><a href="{safe_link}">Reconnect your {name} account</a></p>'
        f"<p>If you disconnected {name} on purpose you can ignore this e-mail.</p>"
        "</body></html>"
    )
    response = ses_client.send_email(
        FromEmailAddress=sender or default_sender(),
        Destination={"ToAddresses": [mentor_email]},
        Content={
            "Simple": {
                "Subject": {"Data": subject, "Charset": "UTF-8"},
                "Body": {
                    "Text": {"Data": text, "Charset": "UTF-8"},
                    "Html": {"Data": body_html, "Charset": "UTF-8"},
                },
            }
        },
    )
    return str(response.get("MessageId", ""))


def reconnect_notifier(
    store: Store,
    *,
    ses_client: Any | None = None,
    sender: str | None = None,
    app_url: str | None = None,
) -> Callable[[str, Provider], None]:
    """A ``on_reconnect(mentor_id, provider)`` callback that e-mails the mentor (their profile e-mail).

    A mentor without an e-mail address is logged and skipped. The SES client and the app URL are
    resolved lazily (``shared.platform.aws.client("sesv2")``, ``settings().app_url``) on first use.
    """

    def notify(mentor_id: str, provider: Provider) -> None:
        mentor = store.get_mentor(mentor_id)
        if mentor is None or not mentor.email:
            logger.warning(
                "reconnect e-mail skipped: mentor has no e-mail address",
                extra={"mentor_id": mentor_id, "provider": Provider(provider).value},
            )
            return
        client = ses_client
        if client is None:
            from shared.platform.aws import client as aws_client

            client = aws_client("sesv2")
        url = app_url
        if url is None:
            from shared.platform.config import settings

            url = settings().app_url
        message_id = send_reconnect_email(mentor.email, provider, ses_client=client, sender=sender, app_url=url)
        logger.info(
            "reconnect e-mail sent",
            extra={"mentor_id": mentor_id, "provider": Provider(provider).value, "message_id": message_id},
        )

    return notify


# -- booking e-mails (PRODUCT.md §2.6): confirmation with link + .ics, cancellation, moved -----


@dataclass(frozen=True)
class Attachment:
    """A file attached to an e-mail."""

    filename: str
    content_type: str  # e.g. "text/calendar; method=PUBLISH"
    data: bytes


@dataclass(frozen=True)
class OutgoingEmail:
    """One e-mail, HTML + text, with optional attachments."""

    to: str
    subject: str
    text: str
    html: str
    attachments: tuple[Attachment, ...] = ()

    def mime(self, sender: str) -> bytes:
        """The raw MIME message (multipart/alternative inside multipart/mixed when attached)."""
        msg = EmailMessage()
        msg["From"] = header_value(sender)
        msg["To"] = header_value(self.to)
        msg["Subject"] = header_value(self.subject)[:MAX_SUBJECT]
        msg.set_content(_encodable(self.text))
        msg.add_alternative(_encodable(self.html), subtype="html")
        for att in self.attachments:
            maintype, _, rest = att.content_type.partition("/")
            subtype, *pairs = [p.strip() for p in rest.split(";")]
            params = dict(pair.partition("=")[::2] for pair in pairs)
            msg.add_attachment(att.data, maintype=maintype, subtype=subtype, filename=att.filename, params=params)
        return msg.as_bytes()


def header_value(value: str) -> str:
    """``value`` fit for a header: one line, no control characters, encodable (see the module doc)."""
    return without_controls(_encodable(value))


def _encodable(text: str) -> str:
    """``text`` with what UTF-8 cannot encode (lone surrogates) replaced."""
    return text.encode("utf-8", "replace").decode("utf-8")


class Mailer:
    """Sends :class:`OutgoingEmail` through SES v2 (raw content, so attachments travel too)."""

    def __init__(self, ses_client: Any, sender: str | None = None) -> None:
        self.ses = ses_client
        self.sender = sender or default_sender()

    def send(self, email: OutgoingEmail) -> str:
        """Send; returns the SES message id (SES errors propagate)."""
        response = self.ses.send_email(
            FromEmailAddress=self.sender,
            Destination={"ToAddresses": [email.to]},
            Content={"Raw": {"Data": email.mime(self.sender)}},
        )
        return str(response.get("MessageId", ""))


@dataclass(frozen=True)
class SessionFacts:
    """What a booking e-mail says about the session."""

    title: str
    start: datetime
    end: datetime
    timezone: str
    provider_name: str  # "Google Meet" / "Zoom"


def _when(facts: SessionFacts) -> str:
    from zoneinfo import ZoneInfo

    try:
        zone = ZoneInfo(facts.timezone)
        local, end, name = facts.start.astimezone(zone), facts.end.astimezone(zone), facts.timezone
    except (OverflowError, ValueError, KeyError, OSError):  # a time near year 9999, an unknown zone
        local, end, name = facts.start.astimezone(UTC), facts.end.astimezone(UTC), "UTC"
    return f"{local:%A %d %B %Y, %H:%M} to {end:%H:%M} ({name})"


def _page(paragraphs: list[str]) -> str:
    return "<!doctype html><html><body>" + "".join(f"<p>{p}</p>" for p in paragraphs) + "</body></html>"


def confirmation_email(
    to: str, name: str, facts: SessionFacts, join_url: str, ics: bytes, *, moved: bool = False
) -> OutgoingEmail:
    """The student's confirmation (or, with ``moved``, the "your class moved" e-mail): link + .ics."""
    when = _when(facts)
    subject = f"{'Moved' if moved else 'Booked'}: {facts.title} — {when}"
    lead = "has moved to a new time" if moved else "is confirmed"
    text = (
        f'Hi {name},\n\nYour class "{facts.title}" {lead}.\n\nWhen: {when}\n'
        f"Join ({facts.provider_name}): {join_url}\n\n"
        "The attached calendar file adds it to your calendar"
        f"{' and updates the entry you already have' if moved else ''}.\n"
    )
    esc = html.escape
    body = _page(
        [
            f"Hi {esc(name)},",
            f"Your class <strong>{esc(facts.title)}</strong> {lead}.",
            f"When: {esc(when)}",
            f'<a href="{esc(join_url, quote=True)}">Join with {esc(facts.provider_name)}</a>',
            "The attached calendar file adds it to your calendar.",
        ]
    )
    return OutgoingEmail(
        to=to,
        subject=subject,
        text=text,
        html=body,
        attachments=(Attachment("class.ics", "text/calendar; method=PUBLISH", ics),),
    )


def cancellation_email(to: str, name: str, facts: SessionFacts, reason: str | None) -> OutgoingEmail:
    """The student's "your booking is cancelled" e-mail."""
    when = _when(facts)
    why = {
        "refund": "Your payment was refunded.",
        "session_cancelled": "The mentor cancelled this session.",
        "mentor": "The mentor cancelled your booking.",
        "student": "You cancelled your booking.",
    }.get(reason or "", "")
    text = f'Hi {name},\n\nYour booking for "{facts.title}" on {when} is cancelled. {why}\n'
    body = _page(
        [
            f"Hi {html.escape(name)},",
            f"Your booking for <strong>{html.escape(facts.title)}</strong> on {html.escape(when)} is cancelled.",
            html.escape(why),
        ]
    )
    return OutgoingEmail(to=to, subject=f"Cancelled: {facts.title} — {when}", text=text, html=body)


def meeting_failed_email(to: str, facts: SessionFacts, reason: str, app_url: str) -> OutgoingEmail:
    """The mentor's "we could not create the meeting" e-mail (sent once per session)."""
    link = app_url.rstrip("/") + CONNECTIONS_PATH
    when = _when(facts)
    text = (
        f'Hello,\n\nWe could not create the {facts.provider_name} meeting for "{facts.title}" on {when}: '
        f"{reason}\n\nYour students have no join link yet. Check your connections: {link}\n"
    )
    body = _page(
        [
            "Hello,",
            f"We could not create the {html.escape(facts.provider_name)} meeting for "
            f"<strong>{html.escape(facts.title)}</strong> on {html.escape(when)}: {html.escape(reason)}",
            "Your students have no join link yet. "
            f'<a href="{html.escape(link, quote=True)}">Check your connections</a>.',
        ]
    )
    return OutgoingEmail(to=to, subject=f"Action needed: no join link for {facts.title}", text=text, html=body)


def over_capacity_email(to: str, facts: SessionFacts, student_name: str, booking_id: str) -> OutgoingEmail:
    """The mentor's "a late payment put this session over capacity" e-mail (once per booking)."""
    when = _when(facts)
    text = (
        f'Hello,\n\n{student_name} paid for "{facts.title}" on {when} after their seat hold had ended, '
        f"and the session was full by then. The booking ({booking_id}) is confirmed, so the session is "
        "now over capacity: make room, or cancel and refund the booking.\n"
    )
    body = _page(
        [
            "Hello,",
            f"{html.escape(student_name)} paid for <strong>{html.escape(facts.title)}</strong> on "
            f"{html.escape(when)} after their seat hold had ended, and the session was full by then.",
            f"The booking ({html.escape(booking_id)}) is confirmed, so the session is now over capacity: "
            "make room, or cancel and refund the booking.",
        ]
    )
    return OutgoingEmail(to=to, subject=f"Over capacity: {facts.title} — {when}", text=text, html=body)
