"""Canary credentials through every path (issue 8, "Secrets"): none appears in a log line, an API
response, an e-mail, a stored attribute or a queued message.

One story through the local gateway, with a canary planted wherever a secret enters the system:

* **Google and Zoom OAuth** — the emulators issue canary codes, access and refresh tokens
  (``set_token_factory``). Access tokens live two minutes, under the accessor's five-minute
  refresh-ahead, so every use refreshes (Zoom rotates its refresh token on each). Both are
  disconnected with ``?revoke=true`` (the token goes back to the provider) and reconnected; Zoom is
  then deauthorized by webhook, and Google's grant revoked at Google (``invalid_grant`` →
  ``needs_reconnect`` → the reconnect e-mail).
* **Microsoft 365 OAuth** — the emulator issues canary codes and tokens too; a Teams class is minted
  with the connect's token, then Microsoft invalidates it early and the move's ``PATCH`` gets 401:
  one forced refresh (a rotated refresh token); disconnected at the end (Microsoft has no revocation).
* **Configured secrets** the functions read from the environment: the three OAuth client secrets, the
  Zoom webhook secret token, the Stripe signing secret — and a wrong Stripe secret a forger uses.
* **Apple** app-specific passwords: the right one, a wrong one (CalDAV answers 401) and a malformed
  one (refused before any network call).
* **Secrets the code makes**: Google push channel tokens (sent to Google once, stored as a hash),
  booking tokens and feed tokens. PRODUCT.md hands the last two to their owner: a booking token may
  appear only in its ``POST /bookings`` answer, a feed token only in the ``GET /mentors/me/feed`` /
  ``POST /mentors/me/feed/rotate`` answers that give it out (no e-mail carries a feed URL).

Planted canaries start with ``Cnry`` and are shaped like no real secret, so the log formatter's
shape-based masking cannot hide a leak: only the code keeping them out (or the vault's registry of
opened secrets) can.

Every path is driven: connect (four providers), calendar list and switch, plan by Stripe
subscription, class create, booking, signed Stripe confirmation → meetings queue → mint (Meet event,
Zoom meeting, Teams event, e-mail with ``.ics``), move (Teams: after a forced refresh), cancel by
the student, session cancelled by the mentor, Google push, scheduled busy poll (Google and Apple),
busy read, feed get / serve / rotate, token refresh, revoke, deauthorization, reconnect e-mail,
disconnect — and the error paths (bad Apple password, forged Stripe signature, forged Zoom
signature, wrong push channel token).

Then every canary is looked for — raw, hex, and base64 / URL-safe base64 at each of the three
alignments, so one inside a larger base64 blob (a raw MIME e-mail in a botocore log line, say) is
found too — in:

* **logs**: the functions' logger through its own (masking) formatter at DEBUG; every other logger
  at DEBUG, unmasked (botocore request and response bodies included: every DynamoDB write, SQS
  message and SES e-mail in transit); stdout / stderr (Powertools metrics). Provider-side loggers
  (the emulators, Radicale, moto's server) and the test client's own lines about the gateway URLs
  it called (feed and booking tokens travel in them by design) are left out;
* **responses**: status, headers and body of every gateway answer the test saw;
* **e-mails**: every e-mail in moto's SES — raw MIME, decoded parts and attachments;
* **stored attributes**: every attribute of every item of every DynamoDB table (full scan, all
  types, nested);
* **queues**: every SQS message the pumps handed to a worker during the test, and every message
  still in any queue or dead-letter queue;
* **what users see at the providers**: the Google events, Zoom meetings and Outlook events the worker wrote.

The counts of what was scanned are asserted non-zero, so the test cannot pass by scanning nothing.
"""

from __future__ import annotations

import base64
import email
import email.policy
import io
import json
import logging
import os
import secrets
import string
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from classes_support import create, future, online, tables
from e2e_support import Providers, Recorder, utc_z

from devstack import flows, stripe_events
from devstack.emulators import zoom as zoom_emulator
from devstack.pumps import QueuePump
from devstack.stack import LocalStack, _reset_function_caches
from shared.platform.observability import logger as fn_logger
from shared.store import ConnectionStatus, Provider
from shared.store.channels import ChannelStore

TAG = "Cnry"
#: Loggers of the providers' side of the wire (their own access logs are not ours to keep clean).
PROVIDER_SIDE = ("werkzeug", "radicale", "moto", "devstack.emulators", "devstack.radicale")
ROOT_FORMAT = "%(name)s %(levelname)s [%(threadName)s] %(message)s"
TOKEN_TTL_S = 120  # under CredentialAccessor's 300 s refresh-ahead: every use refreshes


# --- canaries and how they are looked for ------------------------------------------------------------


def _canary(label: str) -> str:
    return f"{TAG}{label}{secrets.token_hex(12)}"


def _apple_password() -> str:
    """A well-formed app-specific password (xxxx-xxxx-xxxx-xxxx, lower-case letters)."""
    letters = "".join(secrets.choice(string.ascii_lowercase) for _ in range(16))
    return "-".join(letters[i : i + 4] for i in range(0, 16, 4))


def _forms(secret: str) -> set[bytes]:
    """The byte strings that betray ``secret``: raw, hex, and base64 / URL-safe base64 at each alignment.

    A secret inside a larger base64 blob is encoded differently depending on its offset modulo 3;
    for each offset this keeps the characters that depend on the secret's bytes alone.
    """
    raw = secret.encode()
    found = {raw, raw.hex().encode(), raw.hex().upper().encode()}
    for pad in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * pad + raw)
            found.add(text[4 if pad else 0 : 4 * ((pad + len(raw)) // 3)])
    return {form for form in found if len(form) >= 16}


@dataclass
class Part:
    """One scanned thing: where it came from, its bytes, and the canaries allowed in it."""

    where: str
    data: bytes
    allowed: frozenset[str] = frozenset()


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


@dataclass
class Scanner:
    """Every canary's forms, searched for in batches of parts; findings name canary and place."""

    canaries: dict[str, str] = field(default_factory=dict)  # name → value
    findings: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, name: str, value: str) -> str:
        assert value not in self.canaries.values(), f"canary {name} is not unique"
        self.canaries[name] = value
        return value

    def scan(self, kind: str, parts: list[Part], *, count: int | None = None) -> None:
        """Search every part; ``count`` (default: the number of parts) is what the report counts."""
        self.counts[kind] += len(parts) if count is None else count
        if not parts:
            return
        joined = b"\n\x00\n".join(p.data for p in parts)
        for name, value in self.canaries.items():
            for form in _forms(value):
                if form not in joined:
                    continue
                for part in parts:
                    if form in part.data and name not in part.allowed:
                        at = part.data.find(form)
                        context = part.data[max(0, at - 120) : at + len(form) + 40].decode("utf-8", "replace")
                        self.findings.append(
                            f"{name} ({'raw' if form == value.encode() else 'encoded'}) in {part.where}: …{context}…"
                        )


# --- capture: logs, responses, queued messages ----------------------------------------------------------


class _SystemSide(logging.Filter):
    """Keep our side's records: drop the providers' loggers, and the HTTP client lines of the test itself.

    The test plays the browser, the student and the mentor app from the main thread: its own HTTP
    client logs the URLs it asks for (feed and booking tokens travel in them by design) and the
    headers it gets back (a provider's consent redirect carries the authorization code to the
    browser). Functions run in the gateway's and the pumps' threads — and in the main thread while
    a schedule is ticked, which ``system`` marks.
    """

    def __init__(self) -> None:
        super().__init__()
        self.main = threading.main_thread()
        self.system = threading.Event()

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if any(name == p or name.startswith(p + ".") for p in PROVIDER_SIDE):
            return False
        if name.split(".")[0] in ("httpx", "httpcore") and threading.current_thread() is self.main:
            return self.system.is_set()
        return True


@dataclass
class Capture:
    root: io.StringIO
    functions: io.StringIO
    delivered: list[Part]
    side: _SystemSide

    @contextmanager
    def system_in_main_thread(self) -> Iterator[None]:
        """While a function runs in the test's thread (a ticked schedule), its HTTP lines are ours."""
        self.side.system.set()
        try:
            yield
        finally:
            self.side.system.clear()


@contextmanager
def _capture(mp: pytest.MonkeyPatch) -> Iterator[Capture]:
    """Every log record at DEBUG (ours through our formatter, the rest unformatted) and every SQS delivery."""
    cap = Capture(io.StringIO(), io.StringIO(), [], _SystemSide())
    root = logging.getLogger()
    root_handler = logging.StreamHandler(cap.root)
    root_handler.setLevel(logging.DEBUG)
    root_handler.setFormatter(logging.Formatter(ROOT_FORMAT))
    root_handler.addFilter(cap.side)
    ours = logging.getLogger(fn_logger.name)
    fn_handler = logging.StreamHandler(cap.functions)
    fn_handler.setLevel(logging.DEBUG)
    fn_handler.setFormatter(fn_logger.registered_formatter)
    original = QueuePump._process

    def recording(pump: QueuePump, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            where = f"SQS message delivered from {pump.worker.queue}"
            cap.delivered.append(Part(where, _bytes(json.dumps(message, default=str))))
        original(pump, messages)

    mp.setattr(QueuePump, "_process", recording)
    old_root, old_ours = root.level, fn_logger.log_level
    root.addHandler(root_handler)
    root.setLevel(logging.DEBUG)
    ours.addHandler(fn_handler)
    fn_logger.setLevel("DEBUG")
    try:
        yield cap
    finally:
        ours.removeHandler(fn_handler)
        fn_logger.setLevel(old_ours)
        root.removeHandler(root_handler)
        root.setLevel(old_root)


# --- the story's steps --------------------------------------------------------------------------------


@dataclass
class Story:
    """What the test drives through, and what it must remember for the scan."""

    api: httpx.Client
    stack: LocalStack
    providers: Providers
    headers: dict[str, str]
    mentor: str
    recorder: Recorder
    scanner: Scanner
    #: response index → canaries that response may carry (the one answer that hands them out)
    allowed: dict[int, set[str]] = field(default_factory=dict)

    def allow_last(self, *names: str) -> None:
        self.allowed.setdefault(len(self.recorder.seen) - 1, set()).update(names)

    def ok(self, resp: httpx.Response, *statuses: int) -> dict[str, Any]:
        assert resp.status_code in (statuses or (200,)), f"{resp.request.method} {resp.status_code}: {resp.text[:300]}"
        if resp.headers.get("content-type", "").startswith("application/json") and resp.content:
            body: dict[str, Any] = resp.json()
            return body
        return {}

    def stripe(self, event: dict[str, Any], secret: str) -> httpx.Response:
        return stripe_events.send(self.stack.api_url, event, secret, client=self.api)

    def drain(self) -> None:
        self.stack.drain(timeout=30)


def _zoom_webhook(story: Story, payload: dict[str, Any], secret: str) -> httpx.Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    ts = str(int(time.time()))
    headers = {
        "content-type": "application/json",
        "x-zm-request-timestamp": ts,
        "x-zm-signature": zoom_emulator.sign_webhook(secret, ts, body),
    }
    return story.api.post("/webhooks/zoom", content=body, headers=headers)


def _apple_event(caldav_url: str, apple_id: str, password: str, start: datetime) -> None:
    """A calendar with one event in the mentor's iCloud (Radicale), written as the mentor's phone would."""
    fmt = "%Y%m%dT%H%M%SZ"
    ics = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//canary//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uuid.uuid4().hex}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start.strftime(fmt)}\r\n"
        f"DTEND:{(start + timedelta(hours=1)).strftime(fmt)}\r\nSUMMARY:private\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    home = f"{caldav_url.rstrip('/')}/{apple_id}/home/"
    with httpx.Client(auth=(apple_id, password), timeout=10) as dav:
        assert dav.request("MKCALENDAR", home).status_code == 201
        put = dav.put(home + "e1.ics", content=ics, headers={"content-type": "text/calendar; charset=utf-8"})
        assert put.status_code == 201, put.text


# --- the scan -------------------------------------------------------------------------------------------


def _dynamodb_parts(stack: LocalStack) -> list[Part]:
    """Every item of every table, every attribute flattened (all types, nested) into one part per item."""
    ddb = stack.client("dynamodb")
    parts: list[Part] = []

    def leaves(value: Any) -> Iterator[bytes]:
        if isinstance(value, dict):
            for key, inner in value.items():
                yield _bytes(str(key))
                yield from leaves(inner)
        elif isinstance(value, list | tuple | set):
            for inner in value:
                yield from leaves(inner)
        elif isinstance(value, bytes | bytearray):
            yield bytes(value)
        else:
            yield _bytes(str(value))

    for table in ddb.list_tables()["TableNames"]:
        for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            for item in page["Items"]:
                key = f"{item.get('PK', {}).get('S', '?')} / {item.get('SK', {}).get('S', '?')}"
                parts.append(Part(f"DynamoDB {table} item {key}", b"\x1f".join(leaves(item))))
    return parts


def _email_parts(stack: LocalStack) -> tuple[list[Part], int]:
    """Every e-mail moto's SES holds: raw MIME, each decoded part and attachment; simple messages whole."""
    endpoint = stack.environment()["AWS_ENDPOINT_URL"]
    data = httpx.get(endpoint.rstrip("/") + "/moto-api/data.json", timeout=10).json()
    ses = data.get("ses", {})
    parts: list[Part] = []
    raw_messages, simple = ses.get("RawMessage", []), ses.get("Message", [])
    for n, message in enumerate(raw_messages):
        raw = str(message.get("raw_data", ""))
        parsed = email.message_from_string(raw, policy=email.policy.default)
        where = f"e-mail {n} {parsed.get('Subject', '')!r} to {parsed.get('To', '')}"
        parts.append(Part(f"{where} (raw MIME)", _bytes(raw)))
        for piece in parsed.walk():
            if piece.is_multipart():
                continue
            payload = piece.get_payload(decode=True)
            if isinstance(payload, bytes):
                name = piece.get_filename() or piece.get_content_type()
                parts.append(Part(f"{where} ({name})", payload))
    for n, message in enumerate(simple):
        parts.append(
            Part(f"simple e-mail {n} {message.get('subject', '')!r}", _bytes(json.dumps(message, default=str)))
        )
    return parts, len(raw_messages) + len(simple)


def _queue_parts(stack: LocalStack) -> list[Part]:
    """Every message still in any queue or dead-letter queue (peeked: received with visibility 0)."""
    sqs = stack.client("sqs")
    parts: list[Part] = []
    for url in sqs.list_queues().get("QueueUrls", []):
        seen: set[str] = set()
        for _ in range(5):
            got = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=0,
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            fresh = [m for m in got if m["MessageId"] not in seen]
            if not fresh:
                break
            for message in fresh:
                seen.add(message["MessageId"])
                parts.append(Part(f"SQS message in {url.rsplit('/', 1)[-1]}", _bytes(json.dumps(message, default=str))))
    return parts


# --- the test -------------------------------------------------------------------------------------------


def _factory(label: str) -> Callable[[str], str]:
    """A token factory for an emulator: every code / access / refresh token is a fresh canary."""
    short = {"code": "Code", "access_token": "Access", "refresh_token": "Refresh"}

    def make(kind: str) -> str:
        return f"{TAG}{label}{short.get(kind, 'Token')}{secrets.token_hex(16)}"

    return make


@pytest.fixture
def canary_env(providers: Providers, local_stack: LocalStack) -> Iterator[tuple[pytest.MonkeyPatch, dict[str, str]]]:
    """Canary client secrets / webhook secrets in the functions' environment, canary-issuing emulators
    with short-lived access tokens; all undone (and the functions' caches reset) afterwards."""
    google, zoom = providers.google, providers.zoom
    microsoft = local_stack.component("microsoft").emulator  # the stack's: MICROSOFT_* point at it
    planted = {
        "google_client_secret": _canary("GoogleClientSecret"),
        "zoom_client_secret": _canary("ZoomClientSecret"),
        "microsoft_client_secret": _canary("MicrosoftClientSecret"),
        "zoom_webhook_secret": _canary("ZoomWebhookSecret"),
        "stripe_webhook_secret": _canary("StripeSigningSecret"),
    }
    google_id, zoom_id = f"canary-{uuid.uuid4().hex[:8]}.apps.googleusercontent.com", f"canary{uuid.uuid4().hex[:12]}"
    google.add_client(google_id, planted["google_client_secret"], [f"{local_stack.api_url}/oauth/google/callback"])
    zoom.add_client(zoom_id, planted["zoom_client_secret"], [f"{local_stack.api_url}/oauth/zoom/callback"])
    microsoft_id = str(uuid.uuid4())
    microsoft.add_client(
        microsoft_id, planted["microsoft_client_secret"], [f"{local_stack.api_url}/oauth/microsoft/callback"]
    )
    saved_ttl = (google.state.settings.access_token_ttl_seconds, zoom.state.settings.access_token_ttl_seconds)
    google.configure(access_token_ttl_seconds=TOKEN_TTL_S)
    zoom.configure(access_token_ttl_seconds=TOKEN_TTL_S)
    google.set_token_factory(_factory("Google"))
    zoom.set_token_factory(_factory("Zoom"))
    microsoft.set_token_factory(_factory("Microsoft"))  # its access tokens keep their hour: see the move
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in {
                "GOOGLE_CLIENT_ID": google_id,
                "GOOGLE_CLIENT_SECRET": planted["google_client_secret"],
                "ZOOM_CLIENT_ID": zoom_id,
                "ZOOM_CLIENT_SECRET": planted["zoom_client_secret"],
                "ZOOM_WEBHOOK_SECRET_TOKEN": planted["zoom_webhook_secret"],
                "MICROSOFT_CLIENT_ID": microsoft_id,
                "MICROSOFT_CLIENT_SECRET": planted["microsoft_client_secret"],
                "STRIPE_WEBHOOK_SECRET": planted["stripe_webhook_secret"],
                "GOOGLE_PUSH_COALESCE_S": "0",  # a push queues its sync at once
                "BUSY_MAX_ATTEMPTS": "1",  # other tests' connections in the shared table fail fast
                "BUSY_MIN_INTERVAL_S": "0",
            }.items():
                mp.setenv(name, value)
            _reset_function_caches()
            yield mp, planted
    finally:
        google.set_token_factory(None)
        zoom.set_token_factory(None)
        microsoft.set_token_factory(None)
        google.configure(access_token_ttl_seconds=saved_ttl[0])
        zoom.configure(access_token_ttl_seconds=saved_ttl[1])
        _reset_function_caches()


def test_no_canary_reaches_a_log_a_response_an_email_a_stored_attribute_or_a_queue(
    api: httpx.Client,
    local_stack: LocalStack,
    providers: Providers,
    headers: dict[str, str],
    mentor: str,
    recorder: Recorder,
    canary_env: tuple[pytest.MonkeyPatch, dict[str, str]],
    capfd: pytest.CaptureFixture[str],
) -> None:
    started = time.monotonic()
    mp, planted = canary_env
    scanner = Scanner()
    for name, value in planted.items():
        scanner.add(name, value)
    story = Story(api, local_stack, providers, headers, mentor, recorder, scanner)
    store, _ = tables(local_stack)
    google, zoom = providers.google, providers.zoom
    microsoft = local_stack.component("microsoft").emulator
    mentor_email = f"{mentor}@mentor.example.com"
    google_email = f"{mentor}@gmail.example.com"
    zoom_email = f"{mentor}@zoom.example.com"
    apple_id = f"{mentor}@icloud.com"
    microsoft_email = f"{mentor}@contoso.example"
    refreshes_before = (google.token_calls("refresh_token"), zoom.token_calls("refresh_token"))
    microsoft_refreshes_before = microsoft.token_calls("refresh_token")

    with _capture(mp) as cap:
        # -- the mentor: a profile e-mail, and Pro through a signed Stripe subscription event ------------
        store.upsert_mentor(mentor, email=mentor_email, timezone="Europe/Berlin")
        sub = stripe_events.build_event("customer.subscription.created", mentor_id=mentor, plan="pro")
        story.ok(story.stripe(sub, planted["stripe_webhook_secret"]))
        assert store.get_mentor(mentor).plan == "pro"  # type: ignore[union-attr]
        # a forged event (another secret) and an unsigned one change nothing
        forger = scanner.add("stripe_forged_secret", _canary("StripeForgedSecret"))
        forged = stripe_events.build_event("customer.subscription.deleted", mentor_id=mentor)
        assert story.stripe(forged, forger).status_code == 400
        unsigned = api.post("/webhooks/stripe", content=stripe_events.encode(forged))
        assert unsigned.status_code == 400
        assert store.get_mentor(mentor).plan == "pro"  # type: ignore[union-attr]

        # -- connect Google, Zoom and Microsoft (canary codes, access and refresh tokens) ---------------
        flows.seed_google_account(google, google_email)
        assert flows.connect_oauth(api, headers, "google")["status"] == "connected"
        flows.seed_zoom_account(zoom, zoom_email, plan=2)
        assert flows.connect_oauth(api, headers, "zoom")["status"] == "connected"
        flows.seed_microsoft_account(microsoft, microsoft_email)
        assert flows.connect_oauth(api, headers, "microsoft")["status"] == "connected"

        # -- Apple: malformed and wrong passwords refused (never echoed), the right one connects --------
        malformed = scanner.add("apple_malformed_password", _canary("ApplePassword"))
        wrong = scanner.add("apple_wrong_password", _apple_password())
        right = scanner.add("apple_password", _apple_password())
        providers.caldav.add_user(apple_id, right)
        resp = api.post(
            "/connections/apple", headers=headers, json={"appleId": apple_id, "appSpecificPassword": malformed}
        )
        assert (resp.status_code, resp.json()["error"]["code"]) == (400, "invalid_app_specific_password")
        resp = api.post("/connections/apple", headers=headers, json={"appleId": apple_id, "appSpecificPassword": wrong})
        assert (resp.status_code, resp.json()["error"]["code"]) == (400, "apple_auth_failed")
        resp = api.post("/connections/apple", headers=headers, json={"appleId": apple_id, "appSpecificPassword": right})
        assert story.ok(resp, 201)["status"] == "connected"

        # -- list, calendars, switch to the Teaching calendar (a new push channel) ----------------------
        views = {c["provider"]: c["status"] for c in story.ok(api.get("/connections", headers=headers))["connections"]}
        assert views == dict.fromkeys(("google", "zoom", "apple", "microsoft"), "connected")
        calendars = story.ok(api.get("/connections/google/calendars", headers=headers))["calendars"]
        teaching = f"teaching-{google_email}"
        assert teaching in {c["id"] for c in calendars}
        story.ok(api.put("/connections/google/calendar", headers=headers, json={"calendarId": teaching}))

        # -- classes, bookings (tokens handed out once), Stripe confirmations → mint → e-mails ----------
        meet_class = create(
            api, headers, online(title=f"Meet {mentor}", meetingProvider="google_meet", starts=[future(20)])
        )
        zoom_class = create(api, headers, online(title=f"Zoom {mentor}", meetingProvider="zoom", starts=[future(21)]))
        teams_class = create(
            api, headers, online(title=f"Teams {mentor}", meetingProvider="teams", starts=[future(22)])
        )
        meet_session, zoom_session = meet_class["sessions"][0]["sessionId"], zoom_class["sessions"][0]["sessionId"]
        teams_session = teams_class["sessions"][0]["sessionId"]
        booked: dict[str, dict[str, Any]] = {}
        platform = {"authorization": f"Bearer {local_stack.platform_token()}"}  # POST /bookings is the platform's
        sessions = (("g1", meet_session), ("g2", meet_session), ("z1", zoom_session), ("t1", teams_session))
        for name, session in sessions:
            student = f"{name}.{mentor}@student.example.com"
            body = story.ok(
                api.post(
                    "/bookings",
                    headers=platform,
                    json={
                        "sessionId": session,
                        "studentEmail": student,
                        "studentName": f"Student {name}",
                        "priceAmount": 4900,
                        "currency": "USD",
                    },
                ),
                201,
            )
            scanner.add(f"booking_token_{name}", body["bookingToken"])
            story.allow_last(f"booking_token_{name}")
            booked[name] = {**body, "email": student}
            view = story.ok(api.get(f"/bookings/{body['bookingId']}", params={"token": body["bookingToken"]}))
            assert view["status"] == "PENDING"
        for name in booked:
            paid = stripe_events.build_event("checkout.session.completed", booking_id=booked[name]["bookingId"])
            assert story.ok(story.stripe(paid, planted["stripe_webhook_secret"]))["outcome"] == "confirmed"
        story.drain()
        for name in booked:
            view = story.ok(
                api.get(f"/bookings/{booked[name]['bookingId']}", params={"token": booked[name]["bookingToken"]})
            )
            assert (view["status"], bool(view["meetingUrl"])) == ("CONFIRMED", True), view

        assert microsoft.token_calls("refresh_token") == microsoft_refreshes_before  # minted with the connect's

        # -- move the sessions (patch the Meet event, the Zoom meeting and the Outlook event; "moved"
        # e-mails); Microsoft invalidates its access token first: the PATCH gets 401, one forced refresh
        assert microsoft.expire_access_tokens(email=microsoft_email) >= 1
        for klass, session in ((meet_class, meet_session), (zoom_class, zoom_session), (teams_class, teams_session)):
            resp = api.patch(
                f"/classes/{klass['classId']}/sessions/{session}", headers=headers, json={"start": future(23, 19)}
            )
            story.ok(resp, 200, 202)
        story.drain()
        assert microsoft.token_calls("refresh_token") == microsoft_refreshes_before + 1

        # -- the student cancels one booking; the mentor cancels the Zoom session ------------------------
        g2 = booked["g2"]
        story.ok(api.post(f"/bookings/{g2['bookingId']}/cancel", params={"token": g2["bookingToken"]}), 202)
        story.ok(
            api.delete(f"/classes/{zoom_class['classId']}/sessions/{zoom_session}", headers=headers), 200, 202, 204
        )
        story.drain()
        assert (
            story.ok(api.get(f"/bookings/{g2['bookingId']}", params={"token": g2["bookingToken"]}))["status"]
            == "CANCELLED"
        )

        # -- busy: a Google change pushed to our webhook, a forged push, the scheduled poll (Google + Apple)
        day = (datetime.now(UTC) + timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
        google.seed_event(
            teaching,
            {
                "summary": "Dentist",
                "start": {"dateTime": utc_z(day)},
                "end": {"dateTime": utc_z(day + timedelta(hours=1))},
            },
        )
        assert google.flush_pushes(10)
        (channel,) = ChannelStore(store.table).for_mentor(mentor)
        pushed = [d for d in google.push_deliveries() if d["headers"].get("X-Goog-Channel-ID") == channel.channel_id]
        # the handshake, then one push per change (our own Meet events on that calendar, the dentist)
        states = [(d["headers"]["X-Goog-Resource-State"], d.get("status")) for d in pushed]
        assert states[0] == ("sync", 200)
        assert set(states[1:]) == {("exists", 200)}, states
        # Google's own delivery again, through our client this time (so its answer is scanned too)
        story.ok(api.post("/webhooks/google", headers=pushed[-1]["headers"]))
        forged_token = scanner.add("google_forged_channel_token", _canary("ForgedChannelToken"))
        resp = api.post(
            "/webhooks/google",
            headers={
                "x-goog-channel-id": channel.channel_id,
                "x-goog-channel-token": forged_token,
                "x-goog-resource-id": channel.resource_id,
                "x-goog-resource-state": "exists",
                "x-goog-message-number": "99",
            },
        )
        assert (resp.status_code, resp.json()["error"]["code"]) == (401, "invalid_channel_token")
        _apple_event(providers.caldav.url, apple_id, right, day + timedelta(days=1))
        with cap.system_in_main_thread():
            local_stack.tick("calendar-poll")
        story.drain()
        window = {"from": utc_z(day - timedelta(days=1)), "to": utc_z(day + timedelta(days=5))}
        busy = story.ok(api.get("/mentors/me/busy", headers=headers, params=window))
        sources = {s for block in busy["busy"] for s in block["sources"]}
        assert {"google", "apple"} <= sources, busy
        # what is stored while all three are connected (sealed credentials, refreshed and rotated)
        stored_midway = _dynamodb_parts(local_stack)
        for provider in ("google", "zoom", "apple", "microsoft"):
            assert any(f"MENTOR#{mentor} / CONN#{provider}" in part.where for part in stored_midway), provider

        # -- the feed: handed out, served, rotated (the old URL dies) ------------------------------------
        first = story.ok(api.get("/mentors/me/feed", headers=headers))
        feed_1 = scanner.add("feed_token_1", first["url"].rsplit("/", 1)[-1].removesuffix(".ics"))
        story.allow_last("feed_token_1")
        served = api.get(f"/feeds/{feed_1}.ics")
        assert served.status_code == 200
        assert meet_session in served.text
        rotated = story.ok(api.post("/mentors/me/feed/rotate", headers=headers))
        feed_2 = scanner.add("feed_token_2", rotated["url"].rsplit("/", 1)[-1].removesuffix(".ics"))
        story.allow_last("feed_token_2")
        assert feed_2 != feed_1
        assert api.get(f"/feeds/{feed_1}.ics").status_code == 404
        assert api.get(f"/feeds/{feed_2}.ics").status_code == 200
        assert story.ok(api.get("/mentors/me/feed", headers=headers))["url"].endswith(f"/{feed_2}.ics")
        story.allow_last("feed_token_2")

        # -- Zoom webhooks: URL validation, a forged signature, revoke-disconnect, reconnect, deauthorize --
        plain = secrets.token_urlsafe(16)
        challenge = story.ok(
            _zoom_webhook(
                story,
                {"event": "endpoint.url_validation", "payload": {"plainToken": plain}},
                planted["zoom_webhook_secret"],
            )
        )
        assert challenge["plainToken"] == plain
        assert len(challenge["encryptedToken"]) == 64
        zoom_forger = scanner.add("zoom_forged_webhook_secret", _canary("ZoomForgedSecret"))
        user = zoom.state.user_by_email(zoom_email)
        assert user is not None
        deauth = zoom_emulator.deauthorization_payload(zoom.state, user, os.environ["ZOOM_CLIENT_ID"])
        assert _zoom_webhook(story, deauth, zoom_forger).status_code == 401
        assert store.get_connection(mentor, Provider.ZOOM) is not None
        revokes = len(zoom.state.revoke_calls)
        story.ok(api.delete("/connections/zoom", headers=headers, params={"revoke": "true"}), 204)
        assert [c["ok"] for c in zoom.state.revoke_calls[revokes:]] == [True]
        zoom.set_next_consent(zoom_email)
        assert flows.connect_oauth(api, headers, "zoom")["status"] == "connected"
        # (a deauthorization from before that reconnect is ignored; Zoom's next one removes it)
        deauth = zoom_emulator.deauthorization_payload(zoom.state, user, os.environ["ZOOM_CLIENT_ID"])
        story.ok(_zoom_webhook(story, deauth, planted["zoom_webhook_secret"]))
        assert store.get_connection(mentor, Provider.ZOOM) is None

        # -- Google: disconnect with revoke (the grant dies at Google), reconnect --------------------------
        revokes = len(google.state.revoke_calls)
        story.ok(api.delete("/connections/google", headers=headers, params={"revoke": "true"}), 204)
        assert [c["ok"] for c in google.state.revoke_calls[revokes:]] == [True]
        google.set_next_consent(google_email)
        assert flows.connect_oauth(api, headers, "google")["status"] == "connected"

        # -- Google revokes the grant: invalid_grant → needs_reconnect and one e-mail ---------------------
        assert google.state.revoke_user(google_email) > 0
        resp = api.get("/connections/google/calendars", headers=headers)
        assert (resp.status_code, resp.json()["error"]["code"]) == (409, "needs_reconnect")
        views = {c["provider"]: c["status"] for c in story.ok(api.get("/connections", headers=headers))["connections"]}
        assert views["google"] == ConnectionStatus.NEEDS_RECONNECT.value

        # -- disconnect what is left ---------------------------------------------------------------------
        story.ok(api.delete("/connections/google", headers=headers, params={"revoke": "true"}), 204)
        story.ok(api.delete("/connections/apple", headers=headers), 204)
        story.ok(api.delete("/connections/microsoft", headers=headers, params={"revoke": "true"}), 204)
        assert store.list_connections(mentor) == []
        story.drain()
    out, err = capfd.readouterr()
    drove_s = time.monotonic() - started

    # -- every secret the providers and our code made for this story ----------------------------------------
    issued_google = flows.google_tokens(google, google_email, include_codes=True)
    issued_zoom = flows.zoom_tokens(zoom, user.id, include_codes=True)
    issued_microsoft = flows.microsoft_tokens(microsoft, microsoft_email, include_codes=True)
    for provider, issued in (("google", issued_google), ("zoom", issued_zoom), ("microsoft", issued_microsoft)):
        assert issued, f"the {provider} emulator issued nothing"
        assert all(t.startswith(TAG) for t in issued), f"the {provider} emulator issued non-canaries"
        for n, token in enumerate(issued):  # Cnry<Provider><Kind><32 hex>
            scanner.add(f"{provider}_{token[len(TAG) + len(provider) : -32].lower()}_{n}", token)
    with google.state.lock:
        channel_tokens = [c.token for c in google.state.channels.values() if c.email == google_email and c.token]
    assert len(channel_tokens) == 3  # primary, the Teaching calendar, primary again after the reconnect
    for n, token in enumerate(channel_tokens):
        scanner.add(f"google_channel_token_{n}", token)
    refreshes = (
        google.token_calls("refresh_token") - refreshes_before[0],
        zoom.token_calls("refresh_token") - refreshes_before[1],
    )
    assert min(refreshes) > 0, f"no token refresh happened: {refreshes}"
    zoom_refresh_tokens = [t for t in issued_zoom if "Refresh" in t]
    assert len(zoom_refresh_tokens) > 2, "Zoom's rotated refresh tokens did not flow"
    # Microsoft: the connect's pair, and the forced refresh's new access token and rotated refresh token
    assert sum("Refresh" in t for t in issued_microsoft) == 2, issued_microsoft
    assert sum("Access" in t for t in issued_microsoft) == 2, issued_microsoft

    # -- the outcomes the story promised (so the scan below looks at real traffic) ------------------------
    emails, email_count = _email_parts(local_stack)
    mine = [p.where for p in emails if mentor in p.where]
    for name, prefix in (
        ("g1", "Booked:"),
        ("z1", "Booked:"),
        ("g1", "Moved:"),
        ("t1", "Booked:"),
        ("t1", "Moved:"),
        ("g2", "Cancelled:"),
        ("z1", "Cancelled:"),
    ):
        assert any(booked[name]["email"] in w and f"'{prefix}" in w for w in mine), f"no {prefix} e-mail to {name}"
    assert any(booked["g1"]["email"] in w and "class.ics" in w for w in mine), "no .ics attachment"
    simple = [p for p in emails if p.where.startswith("simple e-mail") and mentor_email.encode() in p.data]
    assert [b"Reconnect your Google account" in p.data for p in simple] == [True]

    # -- the scan -----------------------------------------------------------------------------------------
    scan_started = time.monotonic()
    root_logs, fn_logs = cap.root.getvalue(), cap.functions.getvalue()
    assert "oauth connection saved" in fn_logs, "the functions' log lines were not captured"
    assert "access token refreshed" in fn_logs
    assert "connection needs reconnect" in fn_logs
    assert "refresh lease taken" in fn_logs, "DEBUG capture of the functions' logger is not live"
    assert "botocore" in root_logs, "DEBUG capture of the other loggers is not live"
    log_lines = root_logs.count("\n") + fn_logs.count("\n") + out.count("\n") + err.count("\n")
    scanner.scan(
        "log lines",
        [
            Part("the functions' log lines", _bytes(fn_logs)),
            Part("other loggers (DEBUG)", _bytes(root_logs)),
            Part("stdout", _bytes(out)),
            Part("stderr", _bytes(err)),
        ],
        count=log_lines,
    )
    responses = [
        Part(f"gateway response {n}", _bytes(seen), frozenset(story.allowed.get(n, ())))
        for n, seen in enumerate(recorder.seen)
    ]
    scanner.scan("responses", responses)
    scanner.scan("e-mails", emails, count=email_count)
    stored_at_end = _dynamodb_parts(local_stack)
    assert any(f"MENTOR#{mentor} / PROFILE" in part.where for part in stored_at_end)
    scanner.scan("DynamoDB items", stored_midway + stored_at_end)
    scanner.scan("SQS messages delivered", cap.delivered)
    scanner.scan("SQS messages left", _queue_parts(local_stack))
    provider_side = [
        Part(f"Google event on {cal}", _bytes(json.dumps(google.events(cal)))) for cal in (google_email, teaching)
    ] + [
        Part("Zoom meeting", _bytes(json.dumps(m)))
        for m in zoom.meetings(include_deleted=True)
        if mentor in str(m.get("topic"))
    ]
    outlook = [Part("Outlook event", _bytes(json.dumps(e))) for e in microsoft.events(microsoft_email)]
    assert len(outlook) == 1, "the Teams event is not in the mentor's Outlook calendar"
    provider_side += outlook
    scanner.scan("provider events / meetings", provider_side)
    scan_s = time.monotonic() - scan_started

    # Then: not one canary anywhere it must not be …
    report = (
        f"canaries: {len(scanner.canaries)}; scanned {dict(scanner.counts)}; "
        f"refreshes google/zoom: {refreshes}; drove {drove_s:.1f} s, scanned {scan_s:.1f} s"
    )
    with capfd.disabled():
        print(f"\n[secrets canary] {report}")
    assert scanner.findings == [], "\n".join(scanner.findings[:20])
    # … and the scan looked at real things (it cannot pass by scanning nothing)
    assert all(
        scanner.counts[kind] > 0
        for kind in (
            "log lines",
            "responses",
            "e-mails",
            "DynamoDB items",
            "SQS messages delivered",
            "provider events / meetings",
        )
    ), report
    # … the handed-out tokens were seen where they are allowed (the allowance is not vacuous either)
    allowed_hits = {
        name for n, names in story.allowed.items() for name in names if scanner.canaries[name] in recorder.seen[n]
    }
    assert allowed_hits == {
        "booking_token_g1",
        "booking_token_g2",
        "booking_token_z1",
        "booking_token_t1",
        "feed_token_1",
        "feed_token_2",
    }


# --- focused regressions ---------------------------------------------------------------------------------


def test_the_scanner_finds_a_canary_in_every_form_it_claims() -> None:
    """Given a canary raw, in hex and inside base64 blobs at each alignment, the scanner reports each."""
    canary = _canary("Probe")
    scanner = Scanner()
    scanner.add("probe", canary)
    blobs = [
        canary.encode(),
        canary.encode().hex().encode(),
        *(base64.b64encode(b"x" * pad + canary.encode() + b"tail") for pad in range(3)),
        *(base64.urlsafe_b64encode(b"\xff" * pad + canary.encode() + b"\xfe") for pad in range(3)),
    ]
    scanner.scan("probe", [Part(f"blob {n}", blob) for n, blob in enumerate(blobs)])
    assert len(scanner.findings) == len(blobs), scanner.findings
    # and an allowed part is not a finding
    allowed = Scanner()
    allowed.add("probe", canary)
    allowed.scan("probe", [Part("the answer that hands it out", canary.encode(), frozenset({"probe"}))])
    assert allowed.findings == []


def test_google_revoke_keeps_the_token_out_of_the_url_and_the_logs(
    providers: Providers, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: Google's revoke sent ``?token=<refresh token>``, and httpx logs every request URL at
    INFO — the refresh token reached the logs on every ``DELETE /connections/google?revoke=true``."""
    from shared.connections.oauth_flow import oauth_client
    from shared.providers.oauth import InvalidGrantError, new_code_verifier, new_state

    google = providers.google
    flows.seed_google_account(google, f"revoke-{uuid.uuid4().hex[:8]}@example.com")
    client = oauth_client(Provider.GOOGLE)
    verifier = new_code_verifier()
    back = flows.consent(client.authorization_url(state=new_state(), code_verifier=verifier))
    code = parse_qs(urlsplit(back).query)["code"][0]
    tokens = client.exchange_code(code=code, code_verifier=verifier)
    assert tokens.refresh_token is not None
    caplog.set_level(logging.DEBUG)
    # When the grant is revoked
    client.revoke(tokens.refresh_token)
    # Then Google revoked it, the token came in the form body, and no log line holds it
    (call,) = google.state.revoke_calls[-1:]
    assert (call["ok"], call["kind"], call["via"]) == (True, "refresh", "form")
    with pytest.raises(InvalidGrantError):
        client.refresh(tokens.refresh_token)
    assert "/revoke" in caplog.text  # the request line was logged …
    assert tokens.refresh_token.get_secret_value() not in caplog.text  # … without the token
