"""The demo's Microsoft 365 chapter (issue 18 item 6), two steps: :func:`step_connect_microsoft`
connects Outlook through the real OAuth flow at the Microsoft emulator (after Apple, so the mentor's
connection list shows all four); :func:`step_teams_class` runs after the Zoom class: an online class
on Teams whose paid booking gets the session's Teams link (before the outbox step, which lists its
confirmation e-mail)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from devstack import flows

if TYPE_CHECKING:
    from devstack.demo import Demo

#: Ada's Microsoft 365 work account at the emulator (its default calendar "Calendar" hosts Teams).
MICROSOFT_EMAIL = "ada@contoso.com"
TEAMS_CLASS = "Office hours on Teams"


def step_connect_microsoft(demo: Demo) -> None:
    """Connect Microsoft 365 (Outlook calendar + Teams): OAuth code flow with PKCE, through the Microsoft emulator."""
    from devstack.demo import _connect_oauth, _connections

    microsoft = demo.stack.component("microsoft").emulator
    flows.seed_microsoft_account(microsoft, MICROSOFT_EMAIL, "Ada Lovelace")
    _connect_oauth(demo, "microsoft", MICROSOFT_EMAIL)
    view = _connections(demo)["microsoft"]
    demo.show("microsoft", {k: view[k] for k in ("status", "accountLabel", "selectedCalendar")})
    if view["accountLabel"] != f"Connected as {MICROSOFT_EMAIL}":
        raise flows.FlowError(f"Microsoft connected as {view['accountLabel']!r}")


def step_teams_class(demo: Demo) -> None:
    """A Teams class: booked and paid, the worker makes an Outlook event with a Teams link; the booking has it."""
    from devstack.demo import _api, _book, _next_weekday_at, _pay, _view

    microsoft = demo.stack.component("microsoft").emulator
    body = {
        "title": TEAMS_CLASS,
        "format": "online",
        "timezone": "Europe/Berlin",
        "durationMinutes": 45,
        "capacity": 3,
        "meetingProvider": "teams",
        "starts": [_next_weekday_at(4, 16)],
    }
    created = _api(demo, "POST", "/classes", 201, json=body, headers=demo.bearer())
    session = created["sessions"][0]
    demo.say(f"  POST /classes (online, meetingProvider teams) → 201 {created['classId']}, {session['start']}")
    booked = _book(demo, session["sessionId"], "Dorothy")
    _pay(demo, booked["bookingId"])
    demo.stack.drain()
    seen = _view(demo, booked)
    demo.show("Dorothy's booking", {k: seen.get(k) for k in ("status", "provider", "meetingUrl")})
    events: list[dict[str, Any]] = [e for e in microsoft.events(MICROSOFT_EMAIL) if e.get("subject") == TEAMS_CLASS]
    if len(events) != 1:
        raise flows.FlowError(f"expected one Outlook event for the Teams class, found {len(events)}")
    (event,) = events
    demo.show(
        "the Outlook event",
        {k: event.get(k) for k in ("isOnlineMeeting", "onlineMeetingProvider", "originalStartTimeZone")}
        | {"start": f"{event['start']['dateTime']} {event['start']['timeZone']}"},
    )
    url = str(seen.get("meetingUrl") or "")
    if seen["status"] != "CONFIRMED" or not url.startswith("https://teams.microsoft.com/"):
        raise flows.FlowError(f"the Teams booking: {seen['status']}, meetingUrl {url!r}")
    if event["onlineMeeting"]["joinUrl"] != url:
        raise flows.FlowError("the booking's link is not the Outlook event's Teams link")
    demo.say("  the booking's meetingUrl is the event's onlineMeeting.joinUrl: True")
