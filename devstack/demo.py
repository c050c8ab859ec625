"""``python -m devstack demo`` / ``make demo``: the whole story, end to end, on a private local stack.

Each step is a function taking the :class:`Demo` context; later issues append steps to ``STEPS``.
Everything the demo prints is recorded (``Demo.transcript``), and so is every API response
(``Demo.responses``): :func:`step_canary` checks that no token or password is in either.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

import httpx

from devstack import flows
from devstack.demo_availability import step_availability
from devstack.demo_microsoft import step_connect_microsoft, step_teams_class
from devstack.metering import count_calls
from devstack.stack import LocalStack
from shared import wiring

#: The demo's mentor and their provider accounts (all on the stack's own emulators / Radicale).
GOOGLE_EMAIL = "ada@example.com"
ZOOM_EMAIL = "ada@example.com"
APPLE_ID = "ada@icloud.com"
#: Another Google account of Ada's, which a consent URL from someone else tries to capture.
VICTIM_GOOGLE_EMAIL = "ada.personal@example.com"
#: An app-specific password (xxxx-xxxx-xxxx-xxxx): the demo never prints it.
APPLE_PASSWORD = "abcd-efgh-ijkl-mnop"
#: What a mentor pastes by mistake: the Apple ID password itself, and a well-formed but wrong one.
APPLE_REAL_PASSWORD = "Lovelace1815!"
APPLE_WRONG_PASSWORD = "wxyz-wxyz-wxyz-wxyz"
#: The mentor whose hand-sealed Google credential shows what the vault stores (step 3); the demo
#: mentor connects through OAuth later, so its connections start empty.
VAULT_MENTOR = "m-vault-demo"
VAULT_DEMO_TOKENS = ("ya29.demo-access-token-not-real", "1//demo-refresh-token-not-real")


@dataclass
class Demo:
    """What the steps share: the running stack, an HTTP client, and facts gathered on the way."""

    stack: LocalStack
    http: httpx.Client
    mentor_id: str = "m-demo"
    facts: dict[str, Any] = field(default_factory=dict)
    out: TextIO = field(default_factory=lambda: sys.stdout)
    #: Every line printed, and every API response seen ("<status> <headers> <body>"), for the canary.
    transcript: list[str] = field(default_factory=list)
    responses: list[str] = field(default_factory=list)

    def say(self, text: str = "") -> None:
        self.transcript.append(text)
        print(text, file=self.out, flush=True)

    def show(self, label: str, value: Any) -> None:
        rendered = value if isinstance(value, str) else json.dumps(value, indent=2, default=str)
        self.say(f"  {label}: {rendered}" if "\n" not in rendered else f"  {label}:\n{_indent(rendered)}")

    def bearer(self, mentor_id: str | None = None) -> dict[str, str]:
        return {"authorization": f"Bearer {self.stack.token(mentor_id or self.mentor_id)}"}


def _recorder(into: list[str]) -> Callable[[httpx.Response], None]:
    """An httpx response hook keeping what the API answered (status, headers, body) in ``into``."""

    def record(response: httpx.Response) -> None:
        response.read()
        into.append(f"{response.status_code} {dict(response.headers)} {response.text}")

    return record


def _indent(text: str, by: str = "    ") -> str:
    return "\n".join(by + line for line in text.splitlines())


def step_stack(demo: Demo) -> None:
    """The local stack is up."""
    demo.show("endpoints", demo.stack.endpoints())


def step_seed_mentor(demo: Demo) -> None:
    """Seed a mentor on the Pro plan."""

    mentor = wiring.store().upsert_mentor(demo.mentor_id, plan="pro", email="ada@example.com", timezone="Europe/Berlin")
    demo.show("mentor", mentor.model_dump(mode="json"))


def step_seal_and_store(demo: Demo) -> None:
    """Seal a Google credential with the vault, store it (for a side mentor), show the stored item."""
    from datetime import UTC, datetime, timedelta

    from pydantic import SecretStr

    from shared.platform.aws import client
    from shared.store import Connection, Provider
    from shared.vault import OAuthCredential

    vault = wiring.vault()
    credential = OAuthCredential(
        access_token=SecretStr(VAULT_DEMO_TOKENS[0]),
        refresh_token=SecretStr(VAULT_DEMO_TOKENS[1]),
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        scope="https://www.googleapis.com/auth/calendar.events https://www.googleapis.com/auth/calendar.readonly",
    )
    demo.show("credential (repr)", repr(credential))
    with count_calls(client("kms")) as kms_calls:
        blob = vault.seal_credential(credential, mentor_id=VAULT_MENTOR, provider="google")
    wiring.store().save_connection(
        Connection(
            mentor_id=VAULT_MENTOR,
            provider=Provider.GOOGLE,
            account_label="Connected as ada@example.com",
            selected_calendar="primary",
            credential=blob,
        ),
        expected_version=None,
    )
    raw = demo.stack.client("dynamodb").get_item(
        TableName=demo.stack.environment()["TABLE_NAME"],
        Key={"PK": {"S": f"MENTOR#{VAULT_MENTOR}"}, "SK": {"S": "CONN#google"}},
    )["Item"]
    sealed = raw["credential"]["B"]
    raw["credential"] = {"B": f"<{len(sealed)} bytes: {sealed[:12].hex()}…>"}
    demo.show("stored item (raw DynamoDB)", raw)
    header = vault.inspect(blob)
    demo.show("sealed header", {"version": header.version, "kms_key": header.key_arn, "branch": header.branch_id})
    demo.show("KMS calls to seal (first seal of the period)", dict(kms_calls.calls))
    assert not any(p.encode() in sealed for p in VAULT_DEMO_TOKENS), "plaintext found in the sealed item"
    demo.say("  plaintext tokens appear nowhere in the stored item")
    # The tokens above are not real: remove the connection so the busy-time poll (later) skips it.
    wiring.store().delete_connection(VAULT_MENTOR, Provider.GOOGLE)
    demo.say("  (connection deleted again: disconnect removes the sealed credential at once)")


def step_kms_budget(demo: Demo) -> None:
    """Seal 1,000 credentials for 1,000 mentors, then open them all in a fresh (cold-cache) vault."""
    from pydantic import SecretStr

    from shared.platform.aws import client
    from shared.platform.config import BaseFunctionSettings, settings
    from shared.vault import AppleCredential, Vault
    from shared.vault.branch_store import DynamoBranchStore

    sealer = wiring.vault()
    blobs = [
        (
            f"m-{n:04d}",
            sealer.seal_credential(
                AppleCredential(apple_id=f"m{n}@icloud.com", app_specific_password=SecretStr("abcd-efgh-ijkl-mnop")),
                mentor_id=f"m-{n:04d}",
                provider="apple",
            ),
        )
        for n in range(1000)
    ]
    cfg: BaseFunctionSettings = settings()
    reader = Vault(
        kms=client("kms"), store=DynamoBranchStore(client("dynamodb"), cfg.table_name), kms_key_id=cfg.kms_key_id
    )
    started = time.perf_counter()
    with count_calls(client("kms")) as kms_calls:
        for mentor_id, blob in blobs:
            reader.open_credential(blob, mentor_id=mentor_id, provider="apple")
    elapsed = time.perf_counter() - started
    demo.facts["kms_calls_1000_opens"] = kms_calls.total
    demo.show(
        "1,000 opens in a new process-like vault",
        f"{kms_calls.total} KMS call(s) {dict(kms_calls.calls)}, {elapsed * 1000:.0f} ms",
    )


def step_api(demo: Demo) -> None:
    """Ask the API for the mentor's connections through the local gateway (real HTTP, real JWT)."""
    resp = demo.http.get("/connections", headers=demo.bearer())
    demo.show(f"GET /connections → {resp.status_code}", resp.json())
    token = demo.stack.token(demo.mentor_id)
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    resp = demo.http.get("/connections", headers={"authorization": f"Bearer {tampered}"})
    demo.show(f"GET /connections with a tampered token → {resp.status_code}", resp.json())


# --- connections (issue 3) --------------------------------------------------------------------------


#: Query parameters of the OAuth redirects that are single-use secrets: shown as "…".
_HIDDEN_PARAMS = ("code", "state", "code_challenge", "pending")


def _redacted(url: str) -> str:
    """``url`` with the values of :data:`_HIDDEN_PARAMS` replaced by ``…``."""
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    shown = "&".join(f"{k}={'…' if k in _HIDDEN_PARAMS else v[0]}" for k, v in query.items())
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{shown}"


def _show_url(demo: Demo, label: str, url: str) -> None:
    """``label: <origin + path>``, then one query parameter a line (secrets as ``…``)."""
    parts = urlsplit(url)
    demo.say(f"  {label}: {parts.scheme}://{parts.netloc}{parts.path}")
    for key, values in parse_qs(parts.query, keep_blank_values=True).items():
        demo.say(f"      {key:<22} {'…' if key in _HIDDEN_PARAMS else values[0]}")


def _error(resp: httpx.Response) -> str:
    error = resp.json()["error"]
    return f"{resp.status_code} {error['code']}: {error['message']}"


def _connections(demo: Demo) -> dict[str, dict[str, Any]]:
    resp = demo.http.get("/connections", headers=demo.bearer())
    if resp.status_code != 200:
        raise flows.FlowError(f"GET /connections → {resp.status_code}: {resp.text[:300]}")
    return {c["provider"]: c for c in resp.json()["connections"]}


def _connect_oauth(demo: Demo, provider: str, account: str) -> dict[str, Any]:
    """Authorize → consent (emulator) → callback → complete, printing each hop; returns the connection view."""
    url = flows.authorize(demo.http, demo.bearer(), provider)
    _show_url(demo, f"POST /connections/{provider}/authorize → 200, authorizeUrl", url)
    back = flows.consent(url)
    demo.say(f"  the browser opens it; the emulator consents as {account} → 302 to")
    demo.say(f"      {_redacted(back)}")
    landed = flows.callback(demo.http, back)
    demo.say(f"  GET /oauth/{provider}/callback → 302, Location: {_redacted(landed)}")
    demo.say("      (nothing stored yet: the sealed tokens wait 10 minutes under a single-use handle)")
    if flows.pending_of(landed)[0] != provider:
        raise flows.FlowError(f"{provider} connect landed on {_redacted(landed)}")
    resp = flows.complete_response(demo.http, demo.bearer(), landed)
    demo.say(f'  the mentor app: POST /connections/{provider}/complete {{"pending": "…"}} (mentor\'s JWT)')
    demo.say(f"    → {resp.status_code}, status {resp.json().get('status')}")
    if resp.status_code != 200:
        raise flows.FlowError(f"{provider} completion: {resp.status_code} {resp.text[:300]}")
    return dict(resp.json())


def step_connect_google(demo: Demo) -> None:
    """Connect Google Calendar (+ Meet): OAuth code flow with PKCE, through the Google emulator."""
    google = demo.stack.component("google").emulator
    flows.seed_google_account(google, GOOGLE_EMAIL, "Ada Lovelace")
    _connect_oauth(demo, "google", GOOGLE_EMAIL)
    view = _connections(demo)["google"]
    demo.show("google", {k: view[k] for k in ("status", "accountLabel", "selectedCalendar")})


def step_connect_zoom(demo: Demo) -> None:
    """Connect Zoom: OAuth code flow with PKCE, through the Zoom emulator (a Basic, free account)."""
    zoom = demo.stack.component("zoom").emulator
    flows.seed_zoom_account(zoom, ZOOM_EMAIL, "Ada", "Lovelace", plan=flows.ZOOM_BASIC)
    _connect_oauth(demo, "zoom", ZOOM_EMAIL)
    view = _connections(demo)["zoom"]
    demo.show("zoom", {k: view[k] for k in ("status", "accountLabel", "planType")})
    demo.say("  planType 1 = Basic (free): Zoom ends its meetings after 40 minutes")


def step_oauth_mismatch(demo: Demo) -> None:
    """A consent URL sent to someone else cannot attach their account (OAuth completion is bound to its mentor)."""
    intruder = "m-mallory"
    google = demo.stack.component("google").emulator
    flows.seed_google_account(google, VICTIM_GOOGLE_EMAIL, "Ada (personal)")
    url = flows.authorize(demo.http, demo.bearer(intruder), "google")
    demo.say(f"  {intruder} asks for a Google consent URL and sends it to Ada")
    back = flows.consent(url)
    demo.say(f"  Ada opens it in her browser and consents as {VICTIM_GOOGLE_EMAIL}; our callback answers")
    landed = flows.callback(demo.http, back)
    demo.say(f"      302, Location: {_redacted(landed)}")
    resp = flows.complete_response(demo.http, demo.bearer(), landed)
    demo.say("  Ada's mentor app completes it with Ada's JWT")
    demo.say(f"    → {_error(resp)}")
    if (resp.status_code, resp.json()["error"]["code"]) != (403, "oauth_mentor_mismatch"):
        raise flows.FlowError(f"a foreign completion: {resp.status_code} {resp.text[:300]}")
    again = flows.complete_response(demo.http, demo.bearer(intruder), landed)
    demo.say(f"  {intruder} tries the same handle → {_error(again)}")
    if again.status_code != 400:
        raise flows.FlowError(f"a discarded handle: {again.status_code} {again.text[:300]}")
    theirs = demo.http.get("/connections", headers=demo.bearer(intruder)).json()["connections"]
    status = {c["provider"]: c["status"] for c in theirs}["google"]
    ada = _connections(demo)["google"]["accountLabel"]
    demo.say(f"  {intruder}'s google: {status}; Ada's google is still {ada!r}")
    if status != "not_connected" or ada != f"Connected as {GOOGLE_EMAIL}":
        raise flows.FlowError(f"the mismatch stored something: {status}, {ada}")


@contextlib.contextmanager
def _caldav_trap() -> Iterator[socket.socket]:
    """Point the functions at a CalDAV "server" that only accepts connections (to count them)."""

    with socket.socket() as trap:
        trap.bind(("127.0.0.1", 0))
        trap.listen(8)
        saved = os.environ["APPLE_CALDAV_URL"]
        os.environ["APPLE_CALDAV_URL"] = f"http://127.0.0.1:{trap.getsockname()[1]}"
        wiring.reset()
        try:
            yield trap
        finally:
            os.environ["APPLE_CALDAV_URL"] = saved
            wiring.reset()


def _connections_made(trap: socket.socket) -> int:
    """How many connections reached ``trap`` (all already queued: the request has returned)."""
    trap.setblocking(False)
    count = 0
    while True:
        try:
            conn, _ = trap.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


def step_connect_apple(demo: Demo) -> None:
    """Connect Apple iCloud Calendar: Apple ID + app-specific password, verified by CalDAV (Radicale)."""
    demo.stack.component("caldav").server.add_user(APPLE_ID, APPLE_PASSWORD)

    def post(password: str, shown_as: str) -> httpx.Response:
        demo.say(f'  POST /connections/apple {{"appleId": "{APPLE_ID}", "appSpecificPassword": <{shown_as}>}}')
        body = {"appleId": APPLE_ID, "appSpecificPassword": password}
        return demo.http.post("/connections/apple", headers=demo.bearer(), json=body)

    with _caldav_trap() as trap:
        resp = post(APPLE_REAL_PASSWORD, "the Apple ID password itself")
        reached = _connections_made(trap)
    demo.say(f"    → {_error(resp)}")
    demo.say(f"      (refused before any network call: {reached} connections reached the CalDAV server)")
    if (resp.status_code, reached) != (400, 0):
        raise flows.FlowError(f"a malformed password: {resp.status_code}, {reached} CalDAV connection(s)")

    resp = post(APPLE_WRONG_PASSWORD, "well-formed, but wrong")
    demo.say(f"    → {_error(resp)}")
    if resp.status_code != 400 or resp.json()["error"]["code"] != "apple_auth_failed":
        raise flows.FlowError(f"a wrong password: {resp.status_code} {resp.text[:300]}")

    resp = post(APPLE_PASSWORD, "the right app-specific password")
    demo.show(f"  → {resp.status_code}", resp.json())
    if resp.status_code != 201:
        raise flows.FlowError(f"Apple connect: {resp.status_code} {resp.text[:300]}")


def step_google_calendar(demo: Demo) -> None:
    """Choose the Google calendar bookings go to; list the mentor's connections."""
    resp = demo.http.get("/connections/google/calendars", headers=demo.bearer())
    if resp.status_code != 200:
        raise flows.FlowError(f"GET /connections/google/calendars → {resp.status_code}: {resp.text[:300]}")
    calendars = {c["summary"]: c for c in resp.json()["calendars"]}
    demo.say(f"  GET /connections/google/calendars → {resp.status_code}  (* = selected)")
    for cal in calendars.values():
        demo.say(f"    {'*' if cal['selected'] else ' '} {cal['summary']:<16} {cal['accessRole']:<7} {cal['id']}")
    teaching, holidays = calendars["Teaching"]["id"], calendars["Holidays"]["id"]
    resp = demo.http.put("/connections/google/calendar", headers=demo.bearer(), json={"calendarId": teaching})
    if resp.status_code != 200:
        raise flows.FlowError(f"PUT /connections/google/calendar → {resp.status_code}: {resp.text[:300]}")
    demo.show(f'PUT /connections/google/calendar {{"calendarId": "{teaching}"}} → {resp.status_code}', resp.json())
    resp = demo.http.put("/connections/google/calendar", headers=demo.bearer(), json={"calendarId": holidays})
    demo.show(f'PUT /connections/google/calendar {{"calendarId": "{holidays}"}} (read-only)', _error(resp))
    views = _connections(demo)
    demo.say("  GET /connections → 200")
    for provider, view in views.items():
        extra = ", ".join(f"{k}: {view[k]}" for k in ("selectedCalendar", "planType") if view.get(k) is not None)
        demo.say(f"    {provider:<9} {view['status']:<10} {view['accountLabel']}" + (f" ({extra})" if extra else ""))
    if any(v["status"] != "connected" for v in views.values()):
        raise flows.FlowError(f"not all connected: {views}")
    demo.facts["connections"] = {p: v["accountLabel"] for p, v in views.items()}


# --- classes, bookings, Stripe, meetings (issues 4 and 5) -------------------------------------------


def _next_weekday_at(weekday: int, hour: int, zone: str = "Europe/Berlin") -> str:
    """The next ``weekday`` (0 = Monday) at least a week away, ``hour``:00 local, as naive ISO."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    day = datetime.now(ZoneInfo(zone)).date() + timedelta(days=7)
    day += timedelta(days=(weekday - day.weekday()) % 7)
    return datetime(day.year, day.month, day.day, hour, 0).isoformat()


def _api(demo: Demo, method: str, path: str, expect: int, **kwargs: Any) -> Any:
    resp = demo.http.request(method, path, **kwargs)
    if resp.status_code != expect:
        raise flows.FlowError(f"{method} {path}: expected {expect}, got {resp.status_code}: {resp.text[:400]}")
    return resp.json() if resp.content else None


def _book(demo: Demo, session_id: str, student: str) -> dict[str, Any]:
    """The platform books a seat at checkout (PENDING); the booking token is a secret (never printed)."""
    body = {
        "sessionId": session_id,
        "studentEmail": f"{student.lower()}@example.com",
        "studentName": student,
        "priceAmount": 4900,
        "currency": "USD",
    }
    platform = {"authorization": f"Bearer {demo.stack.platform_token()}"}  # POST /bookings is the platform's
    booked: dict[str, Any] = _api(demo, "POST", "/bookings", 201, json=body, headers=platform)
    demo.facts.setdefault("secrets", []).append(booked["bookingToken"])
    demo.say(
        f"  POST /bookings ({student}, platform token) → 201 bookingId {booked['bookingId']}, "
        f"status {booked['status']}, seat held until {booked['holdExpiresAt']}"
    )
    return booked


def _pay(demo: Demo, booking_id: str, *, again: bool = False) -> None:
    """Stripe tells us the checkout was paid (a correctly signed event through the gateway)."""
    from devstack import stripe_events

    event = stripe_events.build_event("checkout.session.completed", booking_id=booking_id)
    secret = demo.stack.environment()["STRIPE_WEBHOOK_SECRET"]
    for attempt in range(2 if again else 1):
        resp = stripe_events.send(demo.stack.api_url, event, secret, client=demo.http)
        label = "redelivered" if attempt else "signed"
        demo.say(f"  POST /webhooks/stripe ({label} checkout.session.completed {event['id']}) → {resp.status_code}")


def _view(demo: Demo, booked: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = _api(
        demo, "GET", f"/bookings/{booked['bookingId']}", 200, params={"token": booked["bookingToken"]}
    )
    return found


def _meet_events(demo: Demo, title: str) -> list[dict[str, Any]]:
    google = demo.stack.component("google").emulator
    calendar = _connections(demo)["google"].get("selectedCalendar") or GOOGLE_EMAIL
    return [e for e in google.events(calendar) if e.get("summary") == title and e.get("status") != "cancelled"]


def step_online_class(demo: Demo) -> None:
    """Create an online class: 4 weekly sessions (RRULE, Europe/Berlin) on Google Meet."""
    body = {
        "title": "Python for mentors",
        "format": "online",
        "timezone": "Europe/Berlin",
        "durationMinutes": 60,
        "capacity": 4,
        "meetingProvider": "google_meet",
        "rrule": "FREQ=WEEKLY;COUNT=4",
        "dtstart": _next_weekday_at(1, 18),
    }
    created = _api(demo, "POST", "/classes", 201, json=body, headers=demo.bearer())
    demo.facts["class"] = created
    demo.show("POST /classes", {k: body[k] for k in ("format", "meetingProvider", "rrule", "dtstart")})
    demo.say(f"  → 201 classId {created['classId']}")
    for s in created["sessions"]:
        demo.say(f"    {s['sessionId']}  {s['start']}  seats {s['seatsTaken']}/{s['capacity']}  {s['status']}")


def step_book_and_pay(demo: Demo) -> None:
    """Grace books the first session, Stripe confirms the payment; the worker mints the Meet link."""
    session = demo.facts["class"]["sessions"][0]
    grace = _book(demo, session["sessionId"], "Grace")
    demo.facts["grace"] = grace
    _pay(demo, grace["bookingId"], again=True)
    demo.stack.drain()
    view = _view(demo, grace)
    demo.show(
        "GET /bookings/{id}?token=…", {k: view.get(k) for k in ("status", "provider", "meetingUrl", "meetingStatus")}
    )
    demo.say(f"  Google Calendar now holds {len(_meet_events(demo, 'Python for mentors'))} event for the session")


def step_second_booking(demo: Demo) -> None:
    """Alan books the same session: he gets the same link (one meeting per session)."""
    session = demo.facts["class"]["sessions"][0]
    alan = _book(demo, session["sessionId"], "Alan")
    demo.facts["alan"] = alan
    _pay(demo, alan["bookingId"])
    demo.stack.drain()
    same = _view(demo, alan)["meetingUrl"] == _view(demo, demo.facts["grace"])["meetingUrl"]
    events = _meet_events(demo, "Python for mentors")
    demo.say(f"  Alan's meetingUrl is Grace's: {same}; events for the session in Google Calendar: {len(events)}")
    if not same or len(events) != 1:
        raise flows.FlowError("the second booking did not reuse the session's meeting")


def _seats(demo: Demo, session_id: str) -> str:
    klass = _api(demo, "GET", f"/classes/{demo.facts['class']['classId']}", 200, headers=demo.bearer())
    (session,) = [s for s in klass["sessions"] if s["sessionId"] == session_id]
    return f"{session['seatsTaken']}/{session['capacity']}"


def _stripe(demo: Demo, event_type: str, booking_id: str, **kwargs: Any) -> dict[str, Any]:
    from devstack import stripe_events

    event = stripe_events.build_event(event_type, booking_id=booking_id, **kwargs)
    secret = demo.stack.environment()["STRIPE_WEBHOOK_SECRET"]
    resp = stripe_events.send(demo.stack.api_url, event, secret, client=demo.http)
    answer: dict[str, Any] = resp.json()
    demo.say(f"  POST /webhooks/stripe ({event_type}{_amount(kwargs)}) → {resp.status_code} {answer.get('outcome')}")
    return answer


def _amount(kwargs: dict[str, Any]) -> str:
    return f", {kwargs['amount']} {kwargs['currency'].upper()}" if "amount" in kwargs else ""


def step_trust_boundaries(demo: Demo) -> None:
    """Only the platform books; a payment must match; an abandoned checkout gives its seat back."""
    session_id = demo.facts["class"]["sessions"][1]["sessionId"]
    body = {"sessionId": session_id, "studentEmail": "eve@example.com", "studentName": "Eve"}
    refused = demo.http.post("/bookings", json={**body, "priceAmount": 1, "currency": "USD"}, headers=demo.bearer())
    demo.say(f"  POST /bookings with a mentor's token → {_error(refused)}")
    if refused.status_code != 403:
        raise flows.FlowError("a mentor token booked a seat")
    linus = _book(demo, session_id, "Linus")
    demo.say(f"  seats taken: {_seats(demo, session_id)}")
    mismatch = _stripe(demo, "checkout.session.completed", linus["bookingId"], amount=1, currency="jpy")
    status = _view(demo, linus)["status"]
    demo.say(f"  the booking is still {status}: a payment must be the booking's amount and currency")
    expired = _stripe(demo, "checkout.session.expired", linus["bookingId"])
    status = _view(demo, linus)["status"]
    demo.say(f"  the hold ended: the booking is {status}, seats taken: {_seats(demo, session_id)}")
    if (mismatch.get("outcome"), expired.get("outcome"), status) != ("payment_mismatch", "expired", "EXPIRED"):
        raise flows.FlowError("the payment mismatch or the hold's end did not behave")


def step_zoom_class(demo: Demo) -> None:
    """A Zoom class of 60 minutes on a Basic (free) Zoom account: created, with a warning; a booking gets a link."""
    body = {
        "title": "Code review clinic",
        "format": "online",
        "timezone": "Europe/Berlin",
        "durationMinutes": 60,
        "capacity": 2,
        "meetingProvider": "zoom",
        "starts": [_next_weekday_at(3, 17)],
    }
    created = _api(demo, "POST", "/classes", 201, json=body, headers=demo.bearer())
    for warning in created.get("warnings", []):
        demo.say(f"  warning {warning['code']}: {warning['message']}")
    booked = _book(demo, created["sessions"][0]["sessionId"], "Katherine")
    _pay(demo, booked["bookingId"])
    demo.stack.drain()
    view = _view(demo, booked)
    demo.show("Katherine's booking", {k: view.get(k) for k in ("status", "provider", "meetingUrl")})
    zoom = demo.stack.component("zoom").emulator
    (meeting,) = [m for m in zoom.meetings() if m.get("topic") == "Code review clinic"]
    demo.show(
        "the Zoom meeting",
        {k: meeting[k] for k in ("type", "start_time", "timezone", "duration")}
        | {k: meeting["settings"][k] for k in ("join_before_host", "waiting_room")},
    )


def step_move_session(demo: Demo) -> None:
    """The mentor moves the first session by an hour: the Meet event is patched, the link stays."""
    klass, session = demo.facts["class"], demo.facts["class"]["sessions"][0]
    new_start = session["start"][:11] + "19:00:00"
    moved = _api(
        demo,
        "PATCH",
        f"/classes/{klass['classId']}/sessions/{session['sessionId']}",
        200,
        json={"start": new_start},
        headers=demo.bearer(),
    )
    demo.stack.drain()
    (event,) = _meet_events(demo, "Python for mentors")
    demo.say(
        f"  PATCH …/sessions/{session['sessionId']} {{start: {new_start}}} → 200, sequence {moved.get('sequence')}"
    )
    demo.say(f"  the Google event now starts {event['start']['dateTime']} ({event['start']['timeZone']})")
    unchanged = _view(demo, demo.facts["grace"])["meetingUrl"] == event.get("hangoutLink")
    demo.say(f"  Grace's link is unchanged: {unchanged}")


def step_cancel_bookings(demo: Demo) -> None:
    """Grace cancels (the meeting stays for Alan); then Alan cancels: the last booking gone, the event is deleted."""
    for name in ("grace", "alan"):
        booked = demo.facts[name]
        _api(demo, "POST", f"/bookings/{booked['bookingId']}/cancel", 202, params={"token": booked["bookingToken"]})
        demo.stack.drain()
        left = len(_meet_events(demo, "Python for mentors"))
        demo.say(f"  {name.title()} cancels → 202; events for the session in Google Calendar: {left}")


def step_outbox(demo: Demo) -> None:
    """The e-mails the system sent (python -m devstack outbox)."""
    from devstack.outbox import read_outbox

    sent = read_outbox(demo.stack.environment()["AWS_ENDPOINT_URL"])
    for mail in sent:
        attached = f"  [+ {', '.join(mail.attachments)}]" if mail.attachments else ""
        demo.say(f"  to {', '.join(mail.to):<28} {mail.subject}{attached}")
    confirmation = next((m for m in sent if m.subject.startswith("Booked:") and "class.ics" in m.attachments), None)
    if confirmation is None:
        raise flows.FlowError("no confirmation e-mail with an .ics attachment was sent")
    from icalendar import Calendar, Event

    (event,) = Calendar.from_ical(confirmation.attachments["class.ics"]).walk("VEVENT")
    assert isinstance(event, Event)
    demo.say(f"  the .ics parses: UID {event.uid}, starts {event.start.isoformat()}")


# --- the teaching-schedule feed (issue 6) ------------------------------------------------------------


def _feed_token(demo: Demo, url: str) -> str:
    """The secret in a feed URL, remembered for the canary (like a booking token: never printed)."""
    token = url.rsplit("/", 1)[1].removesuffix(".ics")
    demo.facts.setdefault("secrets", []).append(token)
    return token


def _elided(url: str) -> str:
    """A feed URL with its token elided."""
    return url.rsplit("/", 1)[0] + "/<redacted>.ics"


def _show_feed(demo: Demo, resp: httpx.Response) -> dict[str, Any]:
    """Print the VEVENTs of a fetched feed: UID, local start, STATUS, SEQUENCE, where."""
    from icalendar import Calendar, Event

    cal = Calendar.from_ical(resp.content)
    zones = ", ".join(str(z["TZID"]) for z in cal.walk("VTIMEZONE"))
    demo.say(f"  {cal['X-WR-CALNAME']} (METHOD:{cal['METHOD']}), VTIMEZONE: {zones}")
    events = {str(e["UID"]): e for e in cal.walk("VEVENT") if isinstance(e, Event)}
    for uid, event in events.items():
        start = event.start.strftime("%a %Y-%m-%d %H:%M %Z")
        where = str(event.get("URL") or event.get("LOCATION") or "(join link once booked)")
        where = "-" if event["STATUS"] == "CANCELLED" else where
        demo.say(f"    {uid:<40} {start:<24} {event['STATUS']!s:<9} SEQ {event['SEQUENCE']}  {where}")
    return events


def step_feed(demo: Demo) -> None:
    """The teaching-schedule feed: a secret URL any calendar app subscribes to, ETag / 304, rotation."""
    meetup = {
        "title": "Pair programming meetup",
        "format": "in_person",
        "timezone": "Europe/Berlin",
        "durationMinutes": 120,
        "capacity": 12,
        "location": "Café Einstein, Kurfürstenstraße 58, Berlin",
        "starts": [_next_weekday_at(5, 10)],
    }
    _api(demo, "POST", "/classes", 201, json=meetup, headers=demo.bearer())
    demo.say(f"  POST /classes (in person, {meetup['location']}) → 201: the feed holds both kinds")
    urls = _api(demo, "GET", "/mentors/me/feed", 200, headers=demo.bearer())
    _feed_token(demo, urls["url"])
    demo.say(f"  GET /mentors/me/feed → 200 url {_elided(urls['url'])}")
    demo.say(f"                               webcalUrl {_elided(urls['webcalUrl'])}")
    resp = demo.http.get(urls["url"])  # a calendar app: no credentials
    if resp.status_code != 200:
        raise flows.FlowError(f"feed: {resp.status_code} {resp.text[:300]}")
    etag = resp.headers["etag"]
    demo.say(
        f"  GET {_elided(urls['url'])} (no login) → 200 {resp.headers['content-type']}, "
        f"{len(resp.content)} bytes, ETag {etag}, Cache-Control {resp.headers['cache-control']}"
    )
    before = _show_feed(demo, resp)
    again = demo.http.get(urls["url"], headers={"if-none-match": etag})
    demo.say(f"  again with If-None-Match: {etag} → {again.status_code}, {len(again.content)} bytes")
    if again.status_code != 304:
        raise flows.FlowError(f"an unchanged feed answered {again.status_code} to its ETag")

    klass = demo.facts["class"]
    last = klass["sessions"][-1]["sessionId"]
    _api(demo, "DELETE", f"/classes/{klass['classId']}/sessions/{last}", 202, headers=demo.bearer())
    demo.stack.drain()
    changed = demo.http.get(urls["url"], headers={"if-none-match": etag})
    demo.say(f"  DELETE …/sessions/{last} → 202, then If-None-Match: {etag} → {changed.status_code}")
    after = _show_feed(demo, changed)
    uid = f"{last}@mentor-connections"
    if changed.status_code != 200 or str(after[uid]["STATUS"]) != "CANCELLED" or set(after) != set(before):
        raise flows.FlowError("the cancelled session is not marked in the feed")

    rotated = _api(demo, "POST", "/mentors/me/feed/rotate", 200, headers=demo.bearer())
    _feed_token(demo, rotated["url"])
    old, new = demo.http.get(urls["url"]).status_code, demo.http.get(rotated["url"]).status_code
    demo.say(f"  POST /mentors/me/feed/rotate → 200 url {_elided(rotated['url'])}")
    demo.say(f"  the old URL → {old}, the new one → {new}")
    if (old, new) != (404, 200):
        raise flows.FlowError(f"rotation: old URL {old}, new URL {new}")


def step_busy(demo: Demo) -> None:
    """Busy times: a weekly iCloud event (one week skipped) and a Google event, polled and merged."""
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    import caldav
    from icalendar import Calendar, Event

    berlin = ZoneInfo("Europe/Berlin")
    monday = datetime.fromisoformat(_next_weekday_at(0, 9)).replace(tzinfo=berlin)
    demo.facts["busy_monday"] = monday.replace(tzinfo=None).isoformat()
    weekly = Event()
    weekly.add("uid", "demo-weekly-standup")
    weekly.add("summary", "Standup (private)")
    weekly.add("dtstamp", datetime.now(UTC))
    weekly.add("dtstart", monday)
    weekly.add("dtend", monday + timedelta(minutes=30))
    weekly.add("rrule", {"FREQ": "WEEKLY", "COUNT": 4})
    weekly.add("exdate", monday + timedelta(weeks=1))
    cal = Calendar()
    cal.add("prodid", "-//demo//EN")
    cal.add("version", "2.0")
    cal.add_component(weekly)
    cal.add_missing_timezones()
    client = caldav.DAVClient(url=demo.stack.component("caldav").server.url, username=APPLE_ID, password=APPLE_PASSWORD)  # type: ignore[operator]
    home = client.principal().make_calendar(name="Home")
    home.add_event(cal.to_ical().decode())
    demo.say(f"  iCloud (Radicale): weekly 09:00-09:30 Europe/Berlin from {monday:%a %d %b}, 4 times, 2nd skipped")
    google = demo.stack.component("google").emulator
    calendar_id = _connections(demo)["google"].get("selectedCalendar") or GOOGLE_EMAIL
    lunch = (monday + timedelta(days=2)).replace(hour=12)
    google.seed_event(
        calendar_id,
        {
            "summary": "Dentist (private)",
            "start": {"dateTime": lunch.isoformat(), "timeZone": "Europe/Berlin"},
            "end": {"dateTime": (lunch + timedelta(hours=1)).isoformat(), "timeZone": "Europe/Berlin"},
        },
    )
    demo.say(f"  Google Calendar: {lunch:%a %d %b} 12:00-13:00 Europe/Berlin")
    fanned = demo.stack.tick("calendar-poll")
    demo.stack.drain(timeout=60)
    demo.say(f"  the scheduled poll fanned out {fanned.get('total')} sync(s); the busy-sync worker ran them")
    window = {
        "from": (monday - timedelta(days=1)).astimezone(UTC).isoformat(),
        "to": (monday + timedelta(weeks=4)).astimezone(UTC).isoformat(),
    }
    body = _api(demo, "GET", "/mentors/me/busy", 200, params=window, headers=demo.bearer())
    for block in body["busy"]:
        start = datetime.fromisoformat(block["start"]).astimezone(berlin)
        end = datetime.fromisoformat(block["end"]).astimezone(berlin)
        demo.say(f"    {start:%a %d %b %H:%M}-{end:%H:%M}  {', '.join(block['sources'])}")
    sources = {name: source["status"] for name, source in body["sources"].items()}
    demo.say(f"  sources: {sources}")
    if len(body["busy"]) < 4:
        raise flows.FlowError(f"expected 3 weekly blocks and the Google event, got {body['busy']}")


def step_canary(demo: Demo) -> None:
    """Canary: no token or password in anything the demo printed, the API answered or the table holds."""
    google, zoom = demo.stack.component("google").emulator, demo.stack.component("zoom").emulator
    microsoft = demo.stack.component("microsoft").emulator
    tokens = flows.google_tokens(google, include_codes=True) + flows.zoom_tokens(zoom, include_codes=True)
    tokens += flows.microsoft_tokens(microsoft, include_codes=True)
    secrets = [*tokens, APPLE_PASSWORD, APPLE_REAL_PASSWORD, APPLE_WRONG_PASSWORD, *VAULT_DEMO_TOKENS]
    # Booking tokens are handed to the platform once (the POST /bookings answer) and must appear
    # nowhere else: not printed, not stored (only their hash is).
    booking_tokens = demo.facts.get("secrets", [])
    pages = (
        demo.stack.client("dynamodb").get_paginator("scan").paginate(TableName=demo.stack.environment()["TABLE_NAME"])
    )
    items = [item for page in pages for item in page["Items"]]
    stored = [json.dumps(item, default=lambda b: b.hex() if isinstance(b, bytes) else str(b)) for item in items]
    raw_blobs = [
        attr["B"]
        for item in items
        for attr in item.values()
        if isinstance(attr, dict) and isinstance(attr.get("B"), bytes)
    ]
    found = [
        where
        for where, texts in (("printed", demo.transcript), ("API responses", demo.responses), ("table", stored))
        for text in texts
        if any(secret in text for secret in secrets)
    ]
    found += ["table (binary)" for blob in raw_blobs if any(secret.encode() in blob for secret in secrets)]
    found += [
        f"{where} (booking token)"
        for where, texts in (("printed", demo.transcript), ("table", stored))
        for text in texts
        if any(token in text for token in booking_tokens)
    ]
    if found:
        raise flows.FlowError(f"a secret appeared in: {sorted(set(found))}")
    demo.say(
        f"  {len(secrets)} secrets (every code and token the emulators issued, the passwords) and "
        f"{len(booking_tokens)} booking and feed tokens checked against "
        f"{len(demo.transcript)} printed lines, {len(demo.responses)} API responses and {len(items)} stored "
        "items: none found"
    )


STEPS: list[Callable[[Demo], None]] = [
    step_stack,
    step_seed_mentor,
    step_seal_and_store,
    step_kms_budget,
    step_api,
    step_connect_google,
    step_connect_zoom,
    step_oauth_mismatch,
    step_connect_apple,
    step_connect_microsoft,
    step_google_calendar,
    step_online_class,
    step_book_and_pay,
    step_second_booking,
    step_trust_boundaries,
    step_zoom_class,
    step_teams_class,
    step_move_session,
    step_cancel_bookings,
    step_outbox,
    step_feed,
    step_busy,
    step_availability,
    step_canary,
]


def main(argv: list[str] | None = None) -> int:
    """Run every step on a private stack; exit non-zero if one fails."""
    import logging
    import warnings

    out = sys.stdout
    quiet = not os.environ.get("DEMO_VERBOSE")
    started = time.perf_counter()
    with contextlib.ExitStack() as scope:
        # The story is the output: function logs and EMF metric lines stay out of it unless asked for.
        if quiet:
            os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
            os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
            logging.basicConfig(level=logging.WARNING)
            logging.getLogger().setLevel(logging.WARNING)
            for noisy in ("httpx", "devstack", "botocore"):
                logging.getLogger(noisy).setLevel(logging.WARNING)
            import authlib.deprecate  # noqa: F401  (it adds an "always" filter; ours must come after)

            warnings.filterwarnings("ignore", message="The httpx module is deprecated")
            # Powertools prints the ColdStart EMF line even with metrics disabled: what the functions
            # print goes to /dev/null, the demo writes to the real stdout (DEMO_VERBOSE=1 shows all).
            devnull = scope.enter_context(open(os.devnull, "w"))
            scope.enter_context(contextlib.redirect_stdout(devnull))
        stack = scope.enter_context(LocalStack())
        responses: list[str] = []
        http = scope.enter_context(
            httpx.Client(base_url=stack.api_url, timeout=10, event_hooks={"response": [_recorder(responses)]})
        )
        demo = Demo(stack=stack, http=http, out=out, responses=responses)
        for number, step in enumerate(STEPS, 1):
            title = (step.__doc__ or step.__name__).strip().splitlines()[0]
            demo.say(f"\n== {number}. {title}")
            step(demo)
    print(f"\ndemo finished in {time.perf_counter() - started:.1f}s", file=out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
