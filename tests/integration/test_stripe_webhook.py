"""POST /webhooks/stripe against the local stack (PRODUCT.md §2.5): signatures through the real
gateway, no state change on a bad one, no outbound HTTP, the secret never logged, the import graph
kept small and the ``devstack stripe`` CLI. (The storm of 1,000 deliveries is in
``tests/reliability/test_stripe_storm.py``.)

The module gives the webhook its own table and meetings queue on the stack's moto server, so its
tests neither see nor disturb other tests' items and jobs (and no meetings worker consumes them).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack import stripe_events
from devstack.gateway import HttpRequest, build_event
from devstack.routes import ROUTES, LambdaContext
from devstack.stack import LocalStack, _reset_function_caches
from shared import wiring
from shared.schedule.payments import IDEMPOTENCY_KEY_PREFIX, IDEMPOTENCY_PK
from shared.store import (
    Booking,
    BookingStatus,
    ClassFormat,
    ClassItem,
    MeetingProvider,
    Plan,
    ScheduleStore,
    Session,
    Store,
    Table,
)
from shared.store.schedule import session_id_for
from shared.store.schema import create_table

REPO = Path(__file__).resolve().parents[2]
PATH = "/webhooks/stripe"
ROUTE = next(r for r in ROUTES if r.function == "stripe_webhook")
START = datetime(2027, 3, 1, 17, 0, tzinfo=UTC)


@dataclass(frozen=True)
class StripeEnv:
    table: str
    queue_url: str
    secret: str
    aws_endpoint: str


@pytest.fixture(scope="module")
def stripe_env(local_stack: LocalStack) -> Iterator[StripeEnv]:
    """A private table and meetings queue for this module (set in the environment the functions read)."""
    suffix = secrets.token_hex(4)
    table = f"stripe-webhook-test-{suffix}"
    create_table(local_stack.client("dynamodb"), table)
    sqs = local_stack.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"meetings-stripe-test-{suffix}")["QueueUrl"]
    saved = {name: os.environ.get(name) for name in ("TABLE_NAME", "MEETINGS_QUEUE_URL")}
    os.environ.update(TABLE_NAME=table, MEETINGS_QUEUE_URL=queue_url)
    _reset_function_caches()
    try:
        yield StripeEnv(table, queue_url, local_stack.stripe_webhook_secret, local_stack.aws.endpoint_url)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _reset_function_caches()
        sqs.delete_queue(QueueUrl=queue_url)
        local_stack.client("dynamodb").delete_table(TableName=table)


@pytest.fixture(scope="module")
def schedule(local_stack: LocalStack, stripe_env: StripeEnv) -> ScheduleStore:
    return ScheduleStore(Table(local_stack.client("dynamodb"), stripe_env.table))


@pytest.fixture(scope="module")
def store(local_stack: LocalStack, stripe_env: StripeEnv) -> Store:
    return Store(Table(local_stack.client("dynamodb"), stripe_env.table))


class Jobs:
    """The private meetings queue: what the webhook queued since the last read (read = deleted).

    moto answers a short poll with every visible message, so one empty answer means it is drained.
    """

    def __init__(self, sqs: Any, url: str) -> None:
        self.sqs, self.url = sqs, url

    def take(self) -> list[dict[str, Any]]:
        bodies: list[dict[str, Any]] = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, VisibilityTimeout=600)
            messages = got.get("Messages", [])
            if not messages:
                return bodies
            bodies += [json.loads(m["Body"]) for m in messages]
            self.sqs.delete_message_batch(
                QueueUrl=self.url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )


@pytest.fixture
def jobs(local_stack: LocalStack, stripe_env: StripeEnv) -> Jobs:
    """The private meetings queue, emptied before the test."""
    queue = Jobs(local_stack.client("sqs"), stripe_env.queue_url)
    queue.take()
    return queue


def make_bookings(schedule: ScheduleStore, count: int, *, mentor: str = "m-stripe") -> list[str]:
    """A fresh class with one session holding ``count`` PENDING bookings; their ids."""
    class_id = f"cls_{secrets.token_hex(5)}"
    schedule.create_class(
        ClassItem(
            class_id=class_id,
            mentor_id=mentor,
            title="Stripe storm",
            format=ClassFormat.ONLINE,
            timezone="UTC",
            duration_minutes=60,
            capacity=count,
            meeting_provider=MeetingProvider.GOOGLE_MEET,
        ),
        [
            Session(
                class_id=class_id,
                session_id=session_id_for(class_id, 1),
                mentor_id=mentor,
                start=START,
                end=START + timedelta(hours=1),
                capacity=count,
            )
        ],
    )
    ids = []
    for n in range(count):
        booking = Booking(
            booking_id=f"bkg_{class_id}_{n:03d}",
            session_id=session_id_for(class_id, 1),
            class_id=class_id,
            mentor_id=mentor,
            student_email=f"student{n}@example.com",
            student_name=f"Zoë Étudiante {n}",
            token_hash=hashlib.sha256(f"{class_id}{n}".encode()).hexdigest(),
            price_amount=stripe_events.DEFAULT_AMOUNT,
            currency=stripe_events.DEFAULT_CURRENCY.upper(),
            hold_expires_at=datetime.now(UTC) + timedelta(minutes=30),
        )
        ids.append(schedule.create_booking(booking).booking_id)
    return ids


def idempotency_record(schedule: ScheduleStore, event_id: str) -> dict[str, Any] | None:
    sk = f"{IDEMPOTENCY_KEY_PREFIX}#" + hashlib.md5(json.dumps(event_id).encode()).hexdigest()  # noqa: S324
    return schedule.table.get(IDEMPOTENCY_PK, sk)


def invoke(body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """The handler in-process, with the exact API Gateway v2 event the local gateway would build."""
    from functions.stripe_webhook.handler import lambda_handler

    request = HttpRequest("POST", PATH, list(headers.items()), body)
    event = build_event(ROUTE, {}, request, claims=None, api_id="stripetest")
    result: dict[str, Any] = lambda_handler(event, LambdaContext("stripe_webhook", timeout_s=10))
    return result


# --- through the gateway ---------------------------------------------------------------------------


def test_signed_event_through_the_gateway_confirms_the_booking(
    api: httpx.Client, stripe_env: StripeEnv, schedule: ScheduleStore, jobs: Jobs
) -> None:
    """Given a PENDING booking, when Stripe posts a signed paid checkout.session.completed, then 200,
    the booking is CONFIRMED and one booking.confirmed job is on the meetings queue."""
    (booking_id,) = make_bookings(schedule, 1)
    event = stripe_events.build_event("checkout.session.completed", booking_id=booking_id)
    resp = stripe_events.send(str(api.base_url), event, stripe_env.secret, client=api)
    assert resp.status_code == 200, resp.text
    assert resp.json()["outcome"] == "confirmed"
    booking = schedule.get_booking(booking_id)
    assert booking is not None
    assert booking.status is BookingStatus.CONFIRMED
    assert [(j["kind"], j["bookingId"]) for j in jobs.take()] == [("booking.confirmed", booking_id)]


def _tamper(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return body.replace(b'"paid"', b'"PAID"', 1) + b" ", headers


def _wrong_secret(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return body, {**headers, "stripe-signature": stripe_events.sign(body, "whsec_notTheEndpointSecret123")}


def _stale(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return body, headers  # re-signed below with a timestamp 301 s old


def _missing(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return body, {k: v for k, v in headers.items() if k != "stripe-signature"}


@pytest.mark.parametrize(
    "mutate",
    [_tamper, _wrong_secret, _stale, _missing],
    ids=["body-changed-after-signing", "wrong-secret", "timestamp-301s-old", "no-signature-header"],
)
def test_bad_signature_is_400_and_changes_nothing(
    api: httpx.Client,
    stripe_env: StripeEnv,
    schedule: ScheduleStore,
    jobs: Jobs,
    mutate: Callable[[bytes, dict[str, str]], tuple[bytes, dict[str, str]]],
) -> None:
    """Given a PENDING booking, when a paid confirmation arrives with a bad / stale / missing signature,
    then 400 invalid_signature and the booking, its session, the queue and the idempotency
    records are exactly as before."""
    (booking_id,) = make_bookings(schedule, 1)
    booking_before = schedule.get_booking(booking_id)
    assert booking_before is not None
    session_before = schedule.get_session(booking_before.session_id)
    event = stripe_events.build_event("checkout.session.completed", booking_id=booking_id)
    timestamp = int(time.time()) - 301 if mutate is _stale else None
    body, headers = stripe_events.signed_request(event, stripe_env.secret, timestamp=timestamp)
    body, headers = mutate(body, headers)

    resp = api.post(PATH, content=body, headers=headers)

    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "invalid_signature"
    assert stripe_env.secret not in resp.text
    assert schedule.get_booking(booking_id) == booking_before
    assert schedule.get_session(booking_before.session_id) == session_before
    assert jobs.take() == []
    assert idempotency_record(schedule, event["id"]) is None


def test_a_base64_encoded_body_is_verified_byte_exact(
    api: httpx.Client, stripe_env: StripeEnv, schedule: ScheduleStore, jobs: Jobs
) -> None:
    """Given a body API Gateway hands over base64-encoded (non-text content type) and non-ASCII text,
    when it arrives, then the signature over the raw bytes verifies and the event is applied."""
    (booking_id,) = make_bookings(schedule, 1)
    event = stripe_events.build_event("payment_intent.succeeded", booking_id=booking_id)
    event["data"]["object"]["description"] = "Cours de Zoë — 東京 🎓"
    body, headers = stripe_events.signed_request(event, stripe_env.secret)
    assert "東京".encode() in body
    resp = api.post(PATH, content=body, headers={**headers, "content-type": "application/octet-stream"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["outcome"] == "confirmed"
    assert len(jobs.take()) == 1


def test_the_webhook_secret_never_reaches_a_log(
    api: httpx.Client,
    stripe_env: StripeEnv,
    schedule: ScheduleStore,
    jobs: Jobs,
    captured_logs: Any,
) -> None:
    """Canary — Given every log at DEBUG (botocore included), when good, duplicate and forged events are
    handled, then the endpoint secret appears in no log line."""
    (booking_id,) = make_bookings(schedule, 1)
    event = stripe_events.build_event("checkout.session.completed", booking_id=booking_id)
    for _ in range(2):
        assert stripe_events.send(str(api.base_url), event, stripe_env.secret, client=api).status_code == 200
    forged = stripe_events.build_event("charge.refunded", booking_id=booking_id)
    assert stripe_events.send(str(api.base_url), forged, stripe_env.secret[:-1] + "x", client=api).status_code == 400
    jobs.take()
    logs = captured_logs.getvalue()
    assert "stripe event" in logs  # the handler did log
    assert stripe_env.secret not in logs
    assert stripe_env.secret.removeprefix("whsec_") not in logs


# --- no outbound HTTP, small import graph ------------------------------------------------------------


class Outbound:
    """Every socket connect made by the calling thread while armed, plus a hard stop on httpx."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.connects: list[Any] = []
        self.thread = threading.get_ident()
        original = socket.socket.connect

        def connect(sock: socket.socket, address: Any) -> None:
            if threading.get_ident() == self.thread:
                self.connects.append(address)
            original(sock, address)

        def no_httpx(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("the Stripe webhook must not make HTTP calls with httpx")

        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(httpx.Client, "send", no_httpx)
        monkeypatch.setattr(httpx.AsyncClient, "send", no_httpx)


def test_the_webhook_makes_no_outbound_call_but_aws(
    stripe_env: StripeEnv, schedule: ScheduleStore, store: Store, jobs: Jobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given every socket connect watched and httpx disabled, when each handled event type runs through
    the handler (fresh AWS connections forced), then the only peer is the AWS endpoint (moto)."""

    (one, two) = make_bookings(schedule, 2)
    events = [
        stripe_events.build_event("checkout.session.completed", booking_id=one),
        stripe_events.build_event("checkout.session.async_payment_succeeded", booking_id=two, payment_intent="pi_two"),
        stripe_events.build_event("payment_intent.succeeded", booking_id=one),
        stripe_events.build_event("charge.refunded", booking_id=two, payment_intent="pi_two"),
        stripe_events.build_event("customer.subscription.updated", mentor_id="m-outbound", plan="premium"),
        stripe_events.build_event("invoice.paid"),
    ]
    wiring.reset()  # new clients, new connection pools: every peer must be dialled inside the guard
    _reset_function_caches()
    guard = Outbound(monkeypatch)
    answers = [invoke(*stripe_events.signed_request(e, stripe_env.secret)) for e in events]

    assert [a["statusCode"] for a in answers] == [200] * len(events)
    aws_peer = httpx.URL(stripe_env.aws_endpoint)
    assert guard.connects, "the guard saw no connection at all"
    assert {(host, port) for host, port, *_ in guard.connects} == {(aws_peer.host, aws_peer.port)}
    mentor = store.get_mentor("m-outbound")
    assert mentor is not None
    assert mentor.plan is Plan.PREMIUM
    assert len(jobs.take()) == 3

    # The guard itself works: a connection to any other peer would have been seen.
    with socket.create_connection(("127.0.0.1", httpx.URL(os.environ["API_URL"]).port or 80), timeout=2):
        pass
    assert guard.connects[-1][1] == httpx.URL(os.environ["API_URL"]).port


def test_the_handler_import_graph_stays_small() -> None:
    """Given a fresh interpreter, when the handler module is imported, then no provider client, CalDAV,
    OAuth or iCalendar library comes with it (cold start)."""
    code = "import json, sys; import functions.stripe_webhook.handler; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    modules = set(json.loads(out.stdout))
    forbidden = {m for m in modules if m.split(".")[0] in {"caldav", "authlib", "icalendar", "radicale", "moto"}}
    forbidden |= {m for m in modules if m.startswith(("shared.providers", "shared.vault", "shared.connections"))}
    assert forbidden == set()
    assert "shared.schedule.payments" in modules


# --- the CLI ---------------------------------------------------------------------------------------


def test_cli_sends_a_signed_event_to_the_running_stack(
    local_stack: LocalStack, stripe_env: StripeEnv, schedule: ScheduleStore, jobs: Jobs, tmp_path: Path
) -> None:
    """Given a running stack's state file, when `python -m devstack stripe --type … --booking …` runs,
    then the event is signed with the stack's secret, delivered, and the answer printed."""
    (booking_id,) = make_bookings(schedule, 1)
    state = {"pid": os.getpid(), "endpoints": local_stack.endpoints(), "environment": local_stack.environment()}
    (tmp_path / "state.json").write_text(json.dumps(state))
    env = {**os.environ, "DEVSTACK_DIR": str(tmp_path)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "devstack", "stripe", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    sent = cli("--type", "checkout.session.completed", "--booking", booking_id)
    assert sent.returncode == 0, sent.stderr
    printed = json.loads(sent.stdout)
    assert printed["status"] == 200
    assert printed["body"]["outcome"] == "confirmed"
    again = cli("--type", "checkout.session.completed", "--booking", booking_id, "--event-id", printed["event"]["id"])
    assert json.loads(again.stdout)["body"]["duplicate"] is True
    plan = cli("--type", "customer.subscription.created", "--mentor", "m-cli", "--plan", "premium")
    assert json.loads(plan.stdout)["body"]["plan"] == "premium"
    assert len(jobs.take()) == 1
    assert local_stack.stripe_webhook_secret not in sent.stdout + sent.stderr

    missing = cli("--type", "charge.refunded")
    assert missing.returncode == 2
    assert "--booking" in missing.stderr
    env["DEVSTACK_DIR"] = str(tmp_path / "nowhere")
    down = cli("--type", "charge.refunded", "--booking", booking_id)
    assert down.returncode == 1
    assert "no running local stack" in down.stderr
