"""The e-mails of drift repair (PRODUCT.md §2.6, self-healing): a meeting we created was deleted or
moved outside MoveMentors and has been restored to the session's truth.

* :func:`new_link_email` — a student whose join link changed (the meeting was re-created): the new
  link and an updated ``.ics``; sent once per student per new meeting.
* :func:`meeting_restored_email` — the mentor: what happened, what we did, and that sessions are
  cancelled or moved in MoveMentors (a change made in Zoom / Google Calendar does not stick).
"""

from __future__ import annotations

import html
from typing import Final, Literal

from shared.notify.emails import Attachment, OutgoingEmail, SessionFacts, _page, _when

Restored = Literal["recreated", "moved_back"]

#: Where a mentor manages (moves, cancels) sessions.
SCHEDULE_PATH: Final = "/mentor/schedule"


def new_link_email(to: str, name: str, facts: SessionFacts, join_url: str, ics: bytes) -> OutgoingEmail:
    """The student's "your class has a new join link" e-mail (time unchanged)."""
    when = _when(facts)
    text = (
        f'Hi {name},\n\nYour class "{facts.title}" on {when} has a new join link; the old one no longer works.\n\n'
        f"Join ({facts.provider_name}): {join_url}\n\nThe attached calendar file updates your calendar entry.\n"
    )
    esc = html.escape
    body = _page(
        [
            f"Hi {esc(name)},",
            f"Your class <strong>{esc(facts.title)}</strong> on {esc(when)} has a new join link; "
            "the old one no longer works.",
            f'<a href="{esc(join_url, quote=True)}">Join with {esc(facts.provider_name)}</a>',
            "The attached calendar file updates your calendar entry.",
        ]
    )
    return OutgoingEmail(
        to=to,
        subject=f"New join link: {facts.title} — {when}",
        text=text,
        html=body,
        attachments=(Attachment("class.ics", "text/calendar; method=PUBLISH", ics),),
    )


def meeting_restored_email(
    to: str, facts: SessionFacts, what: Restored, app_url: str, *, students_told: int = 0
) -> OutgoingEmail:
    """The mentor's "your meeting was changed outside MoveMentors and restored" e-mail."""
    when = _when(facts)
    link = app_url.rstrip("/") + SCHEDULE_PATH
    provider = facts.provider_name or "your video provider"
    if what == "recreated":
        happened = f"The {provider} meeting of this session was deleted outside MoveMentors."
        done = "We created a new meeting for the session" + (
            f" and sent the new join link to {students_told} student{'s' if students_told != 1 else ''}."
            if students_told
            else "."
        )
    else:
        happened = f"The {provider} meeting of this session was moved outside MoveMentors."
        done = "We moved it back to the session's time; your students' join link did not change."
    rule = (
        "Sessions are cancelled or moved in MoveMentors: changes made only in the meeting or calendar "
        "are undone so your students keep a working link."
    )
    text = f'Hello,\n\n"{facts.title}" on {when}: {happened}\n\n{done}\n\n{rule}\nYour schedule: {link}\n'
    esc = html.escape
    body = _page(
        [
            "Hello,",
            f"<strong>{esc(facts.title)}</strong> on {esc(when)}: {esc(happened)}",
            esc(done),
            f'{esc(rule)} <a href="{esc(link, quote=True)}">Your schedule</a>.',
        ]
    )
    verb = "re-created" if what == "recreated" else "moved back"
    return OutgoingEmail(to=to, subject=f"Meeting {verb}: {facts.title} — {when}", text=text, html=body)
