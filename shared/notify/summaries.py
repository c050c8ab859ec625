"""The mentor's summary after a reconnect resumed their bookings (PRODUCT.md §2.2, §2.6).

One e-mail per resume batch (:mod:`shared.meetings.resume` decides when): how many join links were
created after the reconnect, the bookings of sessions that had already started (listed, not
re-minted), and how many still have no link. Rendered like the other booking e-mails
(:class:`~shared.notify.emails.OutgoingEmail`, text + HTML, every stored value escaped).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.notify.emails import CONNECTIONS_PATH, OutgoingEmail, SessionFacts, _page, _when

#: Started sessions written out in one e-mail (the rest are counted).
MAX_LINES = 20


@dataclass(frozen=True)
class StartedSession:
    """A booking whose session had started before the reconnect."""

    title: str
    start: datetime
    end: datetime
    timezone: str
    student: str

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> StartedSession:
        """From the ``started`` entry a resume batch stores."""
        return cls(
            title=str(item.get("title") or ""),
            start=datetime.fromisoformat(str(item["start"])),
            end=datetime.fromisoformat(str(item["end"])),
            timezone=str(item.get("timezone") or "UTC"),
            student=str(item.get("student") or ""),
        )

    def line(self) -> str:
        facts = SessionFacts(self.title, self.start, self.end, self.timezone, provider_name="")
        return f'"{self.title}" on {_when(facts)}' + (f" ({self.student})" if self.student else "")


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def reconnect_summary_email(
    to: str,
    provider_name: str,
    *,
    links: int,
    bookings: int,
    started: Sequence[StartedSession],
    still_waiting: int,
    failed: int,
    app_url: str,
) -> OutgoingEmail:
    """The summary: ``links`` join links (for ``bookings`` bookings) created after reconnecting ``provider_name``."""
    link = app_url.rstrip("/") + CONNECTIONS_PATH
    made = _plural(links, "join link was", "join links were")
    head = f"{made} created after you reconnected {provider_name}"
    if bookings:
        head += f"; {_plural(bookings, 'student has', 'students have')} been e-mailed their link"
    paragraphs = [head + "."]
    lines = [s.line() for s in started[:MAX_LINES]]
    more = len(started) - len(lines)
    if started:
        paragraphs.append(
            f"{_plural(len(started), 'booking belongs', 'bookings belong')} to a session that had already started, "
            "so no link was created for it:"
        )
    rest: list[str] = []
    if still_waiting:
        rest.append(
            f"{_plural(still_waiting, 'booking', 'bookings')} still could not get a link because the "
            f"{provider_name} connection failed again. Check your connections: {link}"
        )
    if failed:
        rest.append(
            f"{_plural(failed, 'booking', 'bookings')} could not get a link for another reason; the booking shows why."
        )
    more_line = [f"… and {more} more."] if more > 0 else []
    text = "Hello,\n\n" + "\n\n".join(paragraphs) + "\n"
    if lines:
        text += "".join(f"  - {line}\n" for line in lines) + "".join(f"  {m}\n" for m in more_line)
    text += "".join(f"\n{r}\n" for r in rest)
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines + more_line)
    body = _page(
        ["Hello,", *(html.escape(p) for p in paragraphs)]
        + ([f"<ul>{items}</ul>"] if items else [])
        + [html.escape(r) for r in rest]
    )
    subject = f"{provider_name} reconnected: {made} created"
    return OutgoingEmail(to=to, subject=subject, text=text, html=body)
