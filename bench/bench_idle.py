"""Idle cost benchmark (issue 17): what one mentor costs per day while nothing changes, and after one change.

Five mentors on one local stack (moto over HTTP, the Google and Microsoft emulators, an in-process
Radicale, the real webhooks through the local gateway): **Google with a live push channel** (opened
by the real ``GooglePush.ensure`` and confirmed by the emulator's handshake at ``POST
/webhooks/google``), **Google without a channel**, **Apple with 1 calendar**, **Apple with 3
calendars** and **Microsoft with a live subscription** (made by the real ``MicrosoftPush.ensure``,
Graph's ``validationToken`` handshake answered at ``POST /webhooks/microsoft``) (a handful of events
each). A **simulated day** is 288 runs of the real poll (by default 72 — six hours, one
safety-resync period — scaled x4; ``BENCH_IDLE_POLLS`` changes it) (:func:`shared.busy.poll.poll` with
the handler's maintenance tasks; the push-first clock advances 5 minutes per run, so the safety
resync falls every ``GOOGLE_SAFETY_RESYNC_H`` of simulated time), each followed by the real
``busy_sync`` handler on every queued message (batches of 10, as the SQS event source).

Metered, attributed per mentor: every provider request and its bytes on the wire (request +
response bodies and headers, counted by a WSGI wrapper around the emulators and Radicale; Google and
Microsoft by bearer token, Apple by Basic user). Microsoft's safety resync (24 h) and subscription
renewal (one PATCH every 46 h, on the wall clock) fall outside a 6-hour run: its per-hour figure adds
them to what was measured (:func:`_microsoft_idle`). Metered for the whole stack: every AWS call the poller, the
worker and the webhook made (botocore hooks on the shared clients), DynamoDB read / write units
estimated from item sizes (4 KB per read unit, halved for eventually consistent reads; 1 KB per
write unit, doubled in transactions), and the wall time of each invocation (Lambda GB-s at the
deployed memory sizes: poll 256 MB, worker 1,024 MB, webhook 512 MB).

"After one change" = one event added in the mentor's calendar, then the next poll (and, with a
channel, the push and its sync): the requests and bytes that took beyond an idle poll.

The cost model (:func:`cost_model`) scales the day's metered calls to 1,000 and 10,000 mentors of
each kind over 30 days at the prices in :data:`PRICES` (source and date there and in
``bench/README.md``), next to Google's quota. ``python -m bench.bench_idle`` prints JSON.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import math
import os
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import Row

POLLS_PER_DAY_REAL = 288  # a day at 5 minutes
#: Polls actually run: 6 simulated hours (one safety-resync period), scaled x4 to the day;
#: ``BENCH_IDLE_POLLS=288`` runs the whole day (about 4 minutes).
POLLS_PER_DAY = int(os.environ.get("BENCH_IDLE_POLLS", "72"))
POLL_INTERVAL_S = 300
SAFETY_RESYNC_H = 6.0
PASSWORD = "abcd-efgh-ijkl-mnop"
KINDS = ("google_push", "google_poll", "apple_1", "apple_3", "microsoft_push")
#: Microsoft's safety resync (``MICROSOFT_SAFETY_RESYNC_H``, the deployed default) and subscription
#: life / renewal horizon (``MICROSOFT_SUBSCRIPTION_TTL_S`` / ``..._RENEW_BEFORE_S`` defaults): a
#: live subscription is renewed (one PATCH) every TTL - horizon = 46 h.
MS_SAFETY_RESYNC_H = 24.0
MS_RENEW_EVERY_H = 70.0 - 24.0
#: Deployed memory sizes (infra/constructs/sync.py, function.py default for the webhook).
MEMORY_GB = {"calendar_poll": 0.25, "busy_sync": 1.0, "provider_webhooks": 0.5}
#: Prices, us-east-1, on-demand (sources and the date checked: bench/README.md, "Idle cost").
PRICES = {
    "lambda_request": 0.20 / 1e6,  # aws.amazon.com/lambda/pricing (x86): $0.20 per 1M requests
    "lambda_gb_s": 0.0000166667,  # same page: $0.0000166667 per GB-second (x86, first 6B GB-s)
    "sqs_request": 0.40 / 1e6,  # aws.amazon.com/sqs/pricing: standard queue, $0.40 per 1M requests
    "ddb_rru": 0.125 / 1e6,  # aws.amazon.com/dynamodb/pricing/on-demand: $0.125 per 1M read request units
    "ddb_wru": 0.625 / 1e6,  # same page: $0.625 per 1M write request units
    "kms_request": 0.03 / 1e4,  # aws.amazon.com/kms/pricing: $0.03 per 10,000 requests
    "ses_message": 0.10 / 1e3,  # aws.amazon.com/ses/pricing: $0.10 per 1,000 e-mails
}
GOOGLE_QUOTA = {"per_project_per_min": 10_000, "per_user_per_min": 600}  # NOTES.md §6


# --- provider metering (WSGI) -------------------------------------------------------------------------


class ProviderMeter:
    """Counts requests and bytes per (who, method) through a WSGI app; ``who`` from the Authorization header."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: Counter[tuple[str, str]] = Counter()
        self.bytes: Counter[str] = Counter()

    def wrap(self, app: Callable[..., Any]) -> Callable[..., Any]:
        def metered(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            who = _who(environ.get("HTTP_AUTHORIZATION", ""))
            method = str(environ.get("REQUEST_METHOD", ""))
            sent = int(environ.get("CONTENT_LENGTH") or 0) + sum(
                len(k) + len(str(v)) for k, v in environ.items() if k.startswith("HTTP_")
            )
            headers_out: list[int] = []

            def counting_start(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
                headers_out.append(len(status) + sum(len(k) + len(v) + 4 for k, v in headers))
                return start_response(status, headers, *args)

            body = b"".join(app(environ, counting_start))
            with self.lock:
                self.requests[(who, method)] += 1
                self.bytes[who] += sent + sum(headers_out) + len(body)
            return [body]

        return metered

    def snapshot(self) -> tuple[Counter[tuple[str, str]], Counter[str]]:
        with self.lock:
            return Counter(self.requests), Counter(self.bytes)


def _who(authorization: str) -> str:
    if authorization.startswith("Bearer "):
        return "bearer:" + authorization[7:]
    if authorization.startswith("Basic "):
        with contextlib.suppress(ValueError):
            return "basic:" + base64.b64decode(authorization[6:]).decode().split(":", 1)[0]
    return "anonymous"


# --- AWS metering (botocore hooks) --------------------------------------------------------------------


def _attr_size(value: Any) -> int:
    """DynamoDB's size of one typed attribute value (close enough for unit estimates)."""
    if not isinstance(value, dict) or len(value) != 1:
        return len(str(value))
    ((kind, inner),) = value.items()
    if kind in ("S", "N"):
        return len(str(inner).encode())
    if kind == "B":
        return len(inner) if isinstance(inner, bytes | bytearray) else len(base64.b64decode(inner))
    if kind == "M":
        return 3 + sum(len(k) + _attr_size(v) for k, v in inner.items())
    if kind == "L":
        return 3 + sum(_attr_size(v) for v in inner)
    return 1


def _item_size(item: dict[str, Any]) -> int:
    return sum(len(k) + _attr_size(v) for k, v in item.items())


class AwsMeter:
    """AWS calls by service and operation, and DynamoDB read / write units (estimated from item sizes)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.rru = 0.0
        self.wru = 0.0

    def attach(self, client: Any) -> Callable[[], None]:
        service = client.meta.service_model.service_name
        before, after = f"before-call.{service}", f"after-call.{service}"

        def on_before(model: Any, params: Any, **_: Any) -> None:
            with self.lock:
                self.calls[f"{service}.{model.name}"] += 1
            if service == "dynamodb":
                self._writes(model.name, params.get("body", {}) if isinstance(params, dict) else {})

        def on_after(model: Any, parsed: Any, **_: Any) -> None:
            if service == "dynamodb" and isinstance(parsed, dict):
                self._reads(model.name, parsed)

        client.meta.events.register(before, on_before)
        client.meta.events.register(after, on_after)

        def detach() -> None:
            client.meta.events.unregister(before, on_before)
            client.meta.events.unregister(after, on_after)

        return detach

    def _writes(self, op: str, body: Any) -> None:
        if isinstance(body, bytes | str):
            with contextlib.suppress(ValueError):
                body = json.loads(body)
        if not isinstance(body, dict):
            return
        units = 0.0
        if op == "PutItem":
            units = math.ceil(max(_item_size(body.get("Item", {})), 1) / 1024)
        elif op in ("UpdateItem", "DeleteItem"):
            units = 1.0  # the item's size decides; ours are < 1 KB except busy chunks (PutItem)
        elif op == "BatchWriteItem":
            for requests in body.get("RequestItems", {}).values():
                for r in requests:
                    units += math.ceil(max(_item_size(r.get("PutRequest", {}).get("Item", {})), 1) / 1024)
        elif op == "TransactWriteItems":
            for entry in body.get("TransactItems", []):
                item = entry.get("Put", {}).get("Item")
                units += 2 * (math.ceil(max(_item_size(item), 1) / 1024) if item else 1)
        with self.lock:
            self.wru += units

    def _reads(self, op: str, parsed: dict[str, Any]) -> None:
        units = 0.0
        if op == "GetItem":
            units = math.ceil(max(_plain_size(parsed.get("Item", {})), 1) / 4096)
        elif op in ("Query", "Scan"):
            units = 0.5 * math.ceil(max(sum(_plain_size(i) for i in parsed.get("Items", [])), 1) / 4096)
        elif op == "BatchGetItem":
            for items in parsed.get("Responses", {}).values():
                units += sum(math.ceil(max(_plain_size(i), 1) / 4096) for i in items)
        elif op == "TransactGetItems":
            units = sum(
                2 * math.ceil(max(_plain_size(r.get("Item", {})), 1) / 4096) for r in parsed.get("Responses", [])
            )
        with self.lock:
            self.rru += units

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"calls": Counter(self.calls), "rru": self.rru, "wru": self.wru}


def _plain_size(item: dict[str, Any]) -> int:
    """Size of a parsed (typed) DynamoDB item as botocore returns it."""
    return sum(len(k) + _attr_size(v) for k, v in item.items())


# --- the stack and the mentors -------------------------------------------------------------------------


def _apple_event(uid: str, start: datetime, rrule: str | None = None) -> str:
    fmt = "%Y%m%dT%H%M%SZ"
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//bench//EN",
        "BEGIN:VEVENT",
        f"UID:{uid}",
        "DTSTAMP:20260101T000000Z",
        f"DTSTART:{start.strftime(fmt)}",
        f"DTEND:{(start + timedelta(hours=1)).strftime(fmt)}",
        *([rrule] if rrule else []),
        "SUMMARY:busy",
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
    return "\r\n".join(lines)


def _seed_apple(radicale: Any, user: str, calendars: int, now: datetime) -> None:
    """``calendars`` event calendars with 4 events each (one weekly series), on Radicale's storage."""
    for c in range(calendars):
        folder = Path(radicale.root) / "collections" / "collection-root" / user / f"cal{c}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".Radicale.props").write_text(json.dumps({"D:displayname": f"Cal {c}", "tag": "VCALENDAR"}))
        base = (now + timedelta(days=1 + c)).replace(hour=9, minute=0, second=0, microsecond=0)
        for e in range(4):
            rrule = "RRULE:FREQ=WEEKLY;COUNT=8" if e == 0 else None
            text = _apple_event(f"{user}-{c}-{e}", base + timedelta(days=3 * e, hours=e), rrule)
            (folder / f"e{e}.ics").write_text(text)


def _seed_google(google: Any, email: str, now: datetime) -> str:
    from devstack.emulators import google as g

    google.add_user(email, calendars=[])
    token = f"ya29.bench-{uuid.uuid4().hex}"
    with google.state.lock:
        google.state.access_tokens[token] = g.AccessToken(
            token=token,
            client_id=g.DEFAULT_CLIENT_ID,
            email=email,
            scopes=[g.SCOPE_READONLY, g.SCOPE_EVENTS],
            issued_at=time.time(),
            expires_at=time.time() + 7 * 86_400,
        )
    base = (now + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
    for k in range(12):  # a dozen events in the window, one of them weekly
        start = base + timedelta(days=4 * k, hours=k % 5)
        google.state.seed_event(
            email,
            {
                "summary": "busy",
                "start": {"dateTime": start.isoformat()},
                "end": {"dateTime": (start + timedelta(hours=1)).isoformat()},
                **({"recurrence": ["RRULE:FREQ=WEEKLY;COUNT=8"]} if k == 0 else {}),
            },
        )
    return token


def _seed_microsoft(microsoft: Any, email: str, now: datetime) -> tuple[str, str]:
    """An Outlook mailbox with a dozen events in the window and a week-long access token; (token, account id)."""
    from devstack.emulators import microsoft as ms

    user = microsoft.add_user(email)
    token = f"eyJ0.bench-{uuid.uuid4().hex}"
    with microsoft.state.lock:
        microsoft.state.access_tokens[token] = ms.MsAccessToken(
            token=token,
            client_id=ms.DEFAULT_CLIENT_ID,
            user_id=user.id,
            scopes=["Calendars.ReadWrite", "User.Read"],
            issued_at=time.time(),
            expires_at=time.time() + 7 * 86_400,
            family=f"bench-{uuid.uuid4().hex}",
        )
    calendar = microsoft.default_calendar_id(email)
    base = (now + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
    for k in range(12):
        start = base + timedelta(days=4 * k, hours=k % 5)
        microsoft.seed_event(calendar, _outlook_event("busy", start))
    return token, str(user.id)


def _outlook_event(subject: str, start: datetime) -> dict[str, Any]:
    fmt = "%Y-%m-%dT%H:%M:%S"
    return {
        "subject": subject,
        "start": {"dateTime": start.astimezone(UTC).strftime(fmt), "timeZone": "UTC"},
        "end": {"dateTime": (start + timedelta(hours=1)).astimezone(UTC).strftime(fmt), "timeZone": "UTC"},
    }


def _connect(
    mentor: str, provider: Any, credential: Any, account: str, calendar: str | None, label: str | None = None
) -> None:
    from shared import wiring
    from shared.store import Connection

    now = datetime.now(UTC)
    sealed = wiring.vault().seal_credential(credential, mentor_id=mentor, provider=provider.value)
    conn = Connection(
        mentor_id=mentor,
        provider=provider,
        account_id=account,
        account_label=label,
        selected_calendar=calendar,
        credential=sealed,
        connected_at=now - timedelta(days=1),
        version=1,
    )
    wiring.store().upsert_mentor(mentor, email=f"{mentor}@mentor.example.com", timezone="Europe/Berlin")
    wiring.store().save_connection(conn, expected_version=None)


@contextlib.contextmanager
def _environment() -> Iterator[dict[str, Any]]:
    from devstack.emulators import GoogleEmulator
    from devstack.emulators.microsoft import MicrosoftEmulator
    from devstack.jwt import LocalIssuer
    from devstack.radicale import RadicaleServer
    from devstack.stack import LocalStack
    from shared import wiring
    from shared.platform.observability import logger

    logger.setLevel("WARNING")  # the table goes to stdout: no per-sync log lines
    meter_google, meter_caldav = ProviderMeter(), ProviderMeter()
    google = GoogleEmulator(allow_http_loopback_push=True)
    google.app.wsgi_app = meter_google.wrap(google.app.wsgi_app)  # type: ignore[method-assign]
    google.start()
    meter_ms = ProviderMeter()
    microsoft = MicrosoftEmulator(allow_http_loopback_notifications=True)  # the gateway is http on loopback
    microsoft.app.wsgi_app = meter_ms.wrap(microsoft.app.wsgi_app)  # type: ignore[method-assign]
    microsoft.start()
    radicale = RadicaleServer()
    radicale._application = meter_caldav.wrap(radicale._app())
    radicale.start()
    env = {
        **google.environment(),
        **microsoft.environment(),
        "MICROSOFT_SAFETY_RESYNC_H": str(MS_SAFETY_RESYNC_H),
        "APPLE_CALDAV_URL": radicale.url,
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "BUSY_MIN_INTERVAL_S": "0",
        "GOOGLE_SAFETY_RESYNC_H": str(SAFETY_RESYNC_H),
    }
    saved = {k: os.environ.get(k) for k in (*env, "API_URL")}
    try:
        with (
            tempfile.TemporaryDirectory() as keys,
            LocalStack(
                providers=False, queue_workers=(), scheduler_autorun=False, issuer=LocalIssuer(Path(keys)), env=env
            ) as stack,
        ):
            os.environ["API_URL"] = stack.api_url
            os.environ.update(env)
            wiring.reset()
            yield {
                "stack": stack,
                "google": google,
                "microsoft": microsoft,
                "radicale": radicale,
                "pg": meter_google,
                "pc": meter_caldav,
                "pm": meter_ms,
            }
    finally:
        wiring.reset()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        google.stop()
        microsoft.stop()
        radicale.stop()


class Usage:
    """AWS usage accumulated for one party (the poller, or one mentor's syncs)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.rru = 0.0
        self.wru = 0.0
        self.seconds = 0.0
        self.invocations = 0

    def add(self, before: dict[str, Any], after: dict[str, Any], seconds: float) -> None:
        self.calls.update(after["calls"] - before["calls"])
        self.rru += after["rru"] - before["rru"]
        self.wru += after["wru"] - before["wru"]
        self.seconds += seconds
        self.invocations += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": dict(self.calls),
            "rru": round(self.rru, 2),
            "wru": round(self.wru, 2),
            "seconds": round(self.seconds, 3),
            "invocations": self.invocations,
        }


class Day:
    """Runs polls (simulated push-first clock) and the real ``busy_sync`` handler on every queued
    message, metering the poller and each mentor's syncs apart (one message per invocation here, so
    each sync's AWS calls and time are its own; the cost model batches them by 10 as deployed)."""

    def __init__(self, env: dict[str, Any], aws: AwsMeter, kind_of: dict[str, str]) -> None:
        from shared import wiring
        from shared.busy.push_first import PushFirst

        self.env = env
        self.aws = aws
        self.kind_of = kind_of
        self.now = time.time()
        self.push_first = PushFirst(
            wiring.table(),
            safety_resync_s=SAFETY_RESYNC_H * 3600,
            microsoft_resync_s=MS_SAFETY_RESYNC_H * 3600,
            clock=lambda: self.now,
        )
        self.reset()

    def reset(self) -> None:
        self.poller = Usage()
        self.per_kind: dict[str, Usage] = defaultdict(Usage)

    def poll(self) -> dict[str, Any]:
        from shared import wiring
        from shared.busy.poll import poll

        before, started = self.aws.snapshot(), time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            result = poll(
                wiring.table(), wiring.sync_queue(), tasks=wiring.maintenance_tasks(), push_first=self.push_first
            )
        self.poller.add(before, self.aws.snapshot(), time.perf_counter() - started)
        self.drain()
        self.now += POLL_INTERVAL_S
        return result.as_dict()

    def drain(self, wait_s: float = 0.0, *, queue: str = "busy-sync") -> None:
        """Run the queue's worker on every message (one per invocation), waiting up to ``wait_s`` for delayed ones."""
        from devstack.pumps import sqs_event
        from devstack.routes import LambdaContext, load_handler
        from shared.platform.aws import client

        sqs = client("sqs")
        endpoints = self.env["stack"].aws.queue(queue)
        url = endpoints.url
        lambda_handler = load_handler(
            "functions.busy_sync.handler" if queue == "busy-sync" else "functions.mint_meeting.handler"
        )
        function = "busy_sync" if queue == "busy-sync" else "mint_meeting"
        arn = self.env.setdefault(
            f"{queue}_arn",
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"],
        )
        deadline = time.monotonic() + wait_s
        while True:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, AttributeNames=["All"])
            messages = got.get("Messages", [])
            if not messages:
                if time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                return
            for message in messages:
                body = json.loads(message["Body"])
                kind = self.kind_of.get(str(body.get("mentorId") or body.get("mentor_id")), "other")
                if queue != "busy-sync":
                    kind = f"{kind}:meetings"
                before, started = self.aws.snapshot(), time.perf_counter()
                with contextlib.redirect_stdout(io.StringIO()):
                    result = lambda_handler(
                        sqs_event([message], queue_arn=arn, region="us-east-1"), LambdaContext(function)
                    )
                if not (result or {}).get("batchItemFailures"):
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                self.per_kind[kind].add(before, self.aws.snapshot(), time.perf_counter() - started)


def _per_mentor(meter: ProviderMeter, who: dict[str, str], before: Any, after: Any) -> dict[str, dict[str, Any]]:
    """Requests (by method) and bytes per mentor kind between two snapshots."""
    (req0, bytes0), (req1, bytes1) = before, after
    out: dict[str, dict[str, Any]] = {}
    for key, kind in who.items():
        methods = {m: req1[(key, m)] - req0[(key, m)] for (k, m) in req1 if k == key if req1[(key, m)] - req0[(key, m)]}
        out[kind] = {"requests": sum(methods.values()), "by_method": methods, "bytes": bytes1[key] - bytes0[key]}
    return out


def main() -> dict[str, Any]:
    from pydantic import SecretStr

    from devstack.emulators import google as g
    from shared import wiring
    from shared.platform.aws import client
    from shared.store import Provider
    from shared.vault import AppleCredential, OAuthCredential

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    report: dict[str, Any] = {"commit": commit.stdout.strip(), "date": datetime.now(UTC).date().isoformat()}
    with _environment() as env:
        google, radicale = env["google"], env["radicale"]
        now = datetime.now(UTC)
        run = uuid.uuid4().hex[:6]
        who: dict[str, str] = {}
        who_caldav: dict[str, str] = {}
        who_ms: dict[str, str] = {}
        mentors: dict[str, str] = {}
        emails: dict[str, str] = {}
        for kind in KINDS:
            mentor = f"idle-{run}-{kind}"
            mentors[kind] = mentor
            if kind.startswith("google"):
                email = f"{mentor}@example.com"
                emails[kind] = email
                token = _seed_google(google, email, now)
                credential: Any = OAuthCredential(
                    access_token=token,
                    refresh_token="1//bench",
                    expires_at=now + timedelta(days=7),
                    scope=g.SCOPE_READONLY,
                )
                _connect(mentor, Provider.GOOGLE, credential, email, "primary")
                who[f"bearer:{token}"] = kind
            elif kind == "microsoft_push":
                email = f"{mentor}@contoso.example"
                emails[kind] = email
                ms_token, account = _seed_microsoft(env["microsoft"], email, now)
                credential = OAuthCredential(
                    access_token=ms_token,
                    refresh_token="0.bench",
                    expires_at=now + timedelta(days=7),
                    scope="offline_access Calendars.ReadWrite User.Read",
                )
                _connect(mentor, Provider.MICROSOFT, credential, account, "primary", f"Connected as {email}")
                who_ms[f"bearer:{ms_token}"] = kind
            else:
                apple_id = f"{mentor}@icloud.com"
                radicale.add_user(apple_id, PASSWORD)
                _seed_apple(radicale, apple_id, 1 if kind == "apple_1" else 3, now)
                _connect(
                    mentor,
                    Provider.APPLE,
                    AppleCredential(apple_id=apple_id, app_specific_password=SecretStr(PASSWORD)),
                    apple_id,
                    None,
                )
                who_caldav[f"basic:{apple_id}"] = kind
        with contextlib.redirect_stdout(io.StringIO()):
            channel = wiring.google_push().ensure(mentors["google_push"], replace=True)
            if channel is None:
                raise RuntimeError("the watch channel could not be opened (see the log)")
            google.flush_pushes(10)
            time.sleep(0.5)  # the webhook answers the handshake in the gateway's thread
        confirmed = wiring.google_push().channels.get(channel.channel_id)
        report["channel_confirmed"] = bool(confirmed and confirmed.confirmed_ms)
        with contextlib.redirect_stdout(io.StringIO()):  # Graph validates the webhook before it answers
            subscription = wiring.microsoft_push().ensure(mentors["microsoft_push"], replace=True)
        stored = wiring.microsoft_push().channels.get(subscription.channel_id) if subscription else None
        if stored is None or not stored.confirmed_ms:
            raise RuntimeError("the Graph subscription could not be made (see the log)")
        report["subscription_confirmed"] = True

        aws = AwsMeter()
        detach = [aws.attach(client(name)) for name in ("dynamodb", "sqs", "kms")]
        day = Day(env, aws, {mentor: kind for kind, mentor in mentors.items()})
        day.poll()  # the first poll: every connection synced once (the new channel's resync)
        day.reset()
        snap = lambda: (env["pg"].snapshot(), env["pc"].snapshot(), env["pm"].snapshot())  # noqa: E731
        start = snap()
        hour: dict[str, Any] = {}
        pushes_before = len(google.push_deliveries())
        started = time.perf_counter()
        for n in range(POLLS_PER_DAY):
            day.poll()
            if n == 11:
                now_snap = snap()
                hour = {
                    **_per_mentor(env["pg"], who, start[0], now_snap[0]),
                    **_per_mentor(env["pc"], who_caldav, start[1], now_snap[1]),
                    **_per_mentor(env["pm"], who_ms, start[2], now_snap[2]),
                }
        end = snap()
        report["day_wall_s"] = round(time.perf_counter() - started, 1)
        report["polls"] = POLLS_PER_DAY
        report["idle_hour"] = hour
        measured = {
            **_per_mentor(env["pg"], who, start[0], end[0]),
            **_per_mentor(env["pc"], who_caldav, start[1], end[1]),
            **_per_mentor(env["pm"], who_ms, start[2], end[2]),
        }
        report["idle_measured"] = measured  # over report["polls"] polls
        factor = POLLS_PER_DAY_REAL / POLLS_PER_DAY
        report["idle_day"] = {
            kind: {
                "requests": round(m["requests"] * factor),
                "by_method": {k: round(v * factor) for k, v in m["by_method"].items()},
                "bytes": round(m["bytes"] * factor),
            }
            for kind, m in measured.items()
        }
        report["aws_day"] = {
            "poller": day.poller.as_dict(),
            "syncs": {kind: day.per_kind[kind].as_dict() for kind in KINDS},
            "pushes": len(google.push_deliveries()) - pushes_before,
        }
        report["item_bytes"] = _item_bytes(mentors)

        # After one change: an event added in each calendar, then one poll (and the push, with a channel)
        before = snap()
        day_of_change = (now + timedelta(days=3)).replace(hour=15, minute=0, second=0, microsecond=0)
        for kind in ("google_push", "google_poll"):
            google.seed_event(
                emails[kind],
                {
                    "summary": "new",
                    "start": {"dateTime": day_of_change.isoformat()},
                    "end": {"dateTime": (day_of_change + timedelta(hours=1)).isoformat()},
                },
            )
        env["microsoft"].seed_event(
            env["microsoft"].default_calendar_id(emails["microsoft_push"]), _outlook_event("new", day_of_change)
        )
        for kind in ("apple_1", "apple_3"):
            folder = Path(radicale.root) / "collections" / "collection-root" / f"{mentors[kind]}@icloud.com" / "cal0"
            (folder / "new.ics").write_text(_apple_event(f"new-{kind}", day_of_change))
        with contextlib.redirect_stdout(io.StringIO()):  # the webhook's metric lines (gateway thread)
            google.flush_pushes(10)
            env["microsoft"].flush_notifications(10)
            day.drain(wait_s=4.0)  # the push's sync is queued 2 s ahead (coalescing)
            day.drain(wait_s=1.0, queue="meetings")  # the push's drift-repair check (calendar.changed)
        day.poll()
        after = snap()
        report["after_change"] = {
            **_per_mentor(env["pg"], who, before[0], after[0]),
            **_per_mentor(env["pc"], who_caldav, before[1], after[1]),
            **_per_mentor(env["pm"], who_ms, before[2], after[2]),
        }
        report["microsoft_idle"] = _microsoft_idle(
            measured["microsoft_push"], hour["microsoft_push"], report["after_change"]["microsoft_push"]["bytes"]
        )
        report["freebusy_vs_events_list"] = _compare_reads(google, emails["google_push"], who)
        for d in detach:
            d()
    report["cost_model"] = cost_model(report)
    return report


def _microsoft_idle(measured: dict[str, Any], hour: dict[str, Any], read_bytes: int) -> dict[str, Any]:
    """Graph requests per hour of a Microsoft mentor with a live subscription: measured over the run's
    simulated hours, plus what falls outside a run shorter than the periods — the safety resync (one
    getSchedule every ``MS_SAFETY_RESYNC_H``, counted at ``read_bytes``, the metered getSchedule after
    the change) and the renewal (one PATCH every ``MS_RENEW_EVERY_H``; it runs on the wall clock, not
    the simulated one, so no run sees it; its bytes are not counted)."""
    hours = POLLS_PER_DAY * POLL_INTERVAL_S / 3600
    measured_per_h = measured["requests"] / hours
    unseen_resync_per_h = 1 / MS_SAFETY_RESYNC_H if hours < MS_SAFETY_RESYNC_H else 0.0
    per_hour = measured_per_h + unseen_resync_per_h + 1 / MS_RENEW_EVERY_H
    return {
        "simulated_hours": hours,
        "measured_requests": measured["requests"],
        "idle_hour_requests": hour["requests"],
        "per_hour": round(per_hour, 3),
        "per_day": round(per_hour * 24, 2),
        "bytes_per_day": round((measured["bytes"] / hours + unseen_resync_per_h * read_bytes) * 24),
        "model": f"measured {measured_per_h:.3f}/h + unseen safety resync {unseen_resync_per_h:.3f}/h"
        f" + renewal 1/{MS_RENEW_EVERY_H:g} h",
    }


def _compare_reads(google: Any, email: str, who: dict[str, str]) -> dict[str, Any]:
    """Bytes of one freeBusy answer vs a full events.list of the window and one event (what an
    incremental ``syncToken`` list returns for one change), for the same calendar."""
    import httpx

    token = next(k[7:] for k, v in who.items() if v == "google_push")
    base = google.calendar_base
    now = datetime.now(UTC)
    window = {"timeMin": now.isoformat(), "timeMax": (now + timedelta(days=60)).isoformat()}
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=10) as http:
        fb = http.post(f"{base}/freeBusy", headers=auth, json={**window, "items": [{"id": "primary"}]})
        listed = http.get(f"{base}/calendars/primary/events", headers=auth, params={**window, "singleEvents": "true"})
    items = listed.json().get("items", [])
    one = len(json.dumps(items[0]).encode()) if items else 0
    return {
        "events_in_window": len(items),
        "freebusy_bytes": len(fb.content),
        "events_list_bytes": len(listed.content),
        "one_event_bytes": one,
    }


def _item_bytes(mentors: dict[str, str]) -> dict[str, int]:
    """Stored sizes of what the poll reads per connection: the sync-index entry and the channel item."""
    from shared import wiring
    from shared.platform.aws import client
    from shared.store.channels import channel_pk
    from shared.store.repository import connection_sk, mentor_pk
    from shared.store.table import to_item

    ddb, name = client("dynamodb"), wiring.table().name
    conn = ddb.get_item(
        TableName=name, Key=to_item({"PK": mentor_pk(mentors["google_push"]), "SK": connection_sk("google")})
    )
    (link,) = wiring.google_push().channels.for_mentor(mentors["google_push"])
    channel = ddb.get_item(TableName=name, Key=to_item({"PK": channel_pk(link.channel_id), "SK": "CHANNEL"}))
    return {"connection": _plain_size(conn.get("Item", {})), "channel": _plain_size(channel.get("Item", {}))}


def cost_model(report: dict[str, Any]) -> dict[str, Any]:
    """Monthly AWS cost of 1,000 and 10,000 mentors of each kind, from the metered day (module docstring).

    Per mentor and day: its syncs' metered DynamoDB units, KMS calls and worker seconds (1 GB); SQS
    per sync 0.3 requests (its share of a SendMessageBatch, a ReceiveMessage and a
    DeleteMessageBatch of 10) plus any other queue call it made; worker invocations, one per 10
    syncs; the fan-out's read of its sync-index entry every poll (eventually consistent Query,
    item size / 4 KB x 0.5 RRU) and, with a channel, of its channel item. The poller's fixed work
    (its maintenance tasks, one invocation per tick) does not grow with mentors: one line of its own.
    """
    days = 30
    scale = POLLS_PER_DAY_REAL / max(report["polls"], 1)  # a shorter run is scaled to a day
    sizes = report["item_bytes"]
    out: dict[str, Any] = {"prices": PRICES, "per_kind": {}}
    for kind in KINDS:
        usage = report["aws_day"]["syncs"][kind]
        syncs = usage["invocations"] * scale
        calls = Counter(usage["calls"])
        other_sqs = sum(v for k, v in calls.items() if k.startswith("sqs.") and k != "sqs.DeleteMessage")
        channel_bytes = sizes["channel"] if kind.endswith("_push") else 0
        fan_out_rru = POLLS_PER_DAY_REAL * 0.5 * (sizes["connection"] + channel_bytes) / 4096
        per_day = {
            "syncs": syncs,
            "worker_gb_s": usage["seconds"] * scale * MEMORY_GB["busy_sync"],
            "worker_invocations": syncs / 10,
            "sqs_requests": syncs * 0.3 + other_sqs * scale,
            "rru": usage["rru"] * scale + fan_out_rru,
            "wru": usage["wru"] * scale + (syncs if kind.endswith("_push") else 0),  # the resync claim
            "kms": sum(v for k, v in calls.items() if k.startswith("kms.")) * scale,
            "google_requests": report["idle_day"][kind]["requests"] if kind.startswith("google") else 0,
        }
        rows: dict[str, Any] = {"per_mentor_day": {k: round(v, 3) for k, v in per_day.items()}}
        for mentors in (1_000, 10_000):
            m = mentors * days
            lam = (
                per_day["worker_gb_s"] * m * PRICES["lambda_gb_s"]
                + per_day["worker_invocations"] * m * PRICES["lambda_request"]
            )
            sqs = per_day["sqs_requests"] * m * PRICES["sqs_request"]
            ddb = per_day["rru"] * m * PRICES["ddb_rru"] + per_day["wru"] * m * PRICES["ddb_wru"]
            kms = per_day["kms"] * m * PRICES["kms_request"]
            rows[str(mentors)] = {
                "lambda_usd": round(lam, 2),
                "sqs_usd": round(sqs, 2),
                "dynamodb_usd": round(ddb, 2),
                "kms_usd": round(kms, 2),
                "ses_usd": 0.0,
                "total_usd": round(lam + sqs + ddb + kms, 2),
                "google_per_min_avg": round(per_day["google_requests"] * mentors / 1440, 1),
                "google_per_poll_burst": mentors if kind == "google_poll" else 0,
            }
        out["per_kind"][kind] = rows
    poller = report["aws_day"]["poller"]
    pscale = POLLS_PER_DAY_REAL / max(poller["invocations"], 1)
    p_calls = Counter(poller["calls"])
    p_lambda = poller["seconds"] * pscale * days * MEMORY_GB["calendar_poll"] * PRICES["lambda_gb_s"]
    p_lambda += POLLS_PER_DAY_REAL * days * PRICES["lambda_request"]
    p_sqs = sum(v for k, v in p_calls.items() if k.startswith("sqs.")) * pscale * days * PRICES["sqs_request"]
    p_ddb = (poller["rru"] * PRICES["ddb_rru"] + poller["wru"] * PRICES["ddb_wru"]) * pscale * days
    out["poller_fixed"] = {
        "per_poll": {
            "calls": {k: round(v / max(poller["invocations"], 1), 2) for k, v in p_calls.items()},
            "rru": round(poller["rru"] / max(poller["invocations"], 1), 2),
            "seconds": round(poller["seconds"] / max(poller["invocations"], 1), 3),
        },
        "usd_per_month": round(p_lambda + p_sqs + p_ddb, 2),
    }
    return out


def summary(result: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    day, hour = result["idle_day"], result["idle_hour"]
    push_hour = hour["google_push"]["requests"]
    rows.append(
        (
            "idle hour (12 polls), Google with a live channel",
            f"{push_hour} Google requests",
            "<= 1",
            push_hour <= 1,
        )
    )
    ms = result["microsoft_idle"]
    rows.append(
        (
            "idle Microsoft requests per mentor per hour, live subscription",
            f"{ms['per_hour']} Graph requests/h ({ms['idle_hour_requests']} in an idle hour of 12 polls; "
            f"{ms['per_day']}/day, {ms['bytes_per_day'] / 1024:,.1f} KiB/day; {ms['model']})",
            "<= 1 per hour",
            ms["per_hour"] <= 1 and ms["idle_hour_requests"] <= 1,
        )
    )
    for kind in KINDS:
        d, a = day[kind], result["after_change"][kind]
        modelled = f" (with the resync and renewal beyond the run: {ms['per_day']})" if kind.startswith("micro") else ""
        rows.append(
            (
                f"idle day per mentor, {kind}",
                f"{d['requests']:,} requests{modelled}, {d['bytes'] / 1024:,.1f} KiB; one change: +{a['requests']} "
                f"requests, {a['bytes'] / 1024:,.1f} KiB",
                "",
                None,
            )
        )
    cmp = result["freebusy_vs_events_list"]
    rows.append(
        (
            "a push's read: freeBusy vs events.list (same calendar, 60 days)",
            f"freeBusy {cmp['freebusy_bytes']:,} B; full list {cmp['events_list_bytes']:,} B "
            f"({cmp['events_in_window']} events); one changed event ~{cmp['one_event_bytes']:,} B",
            "",
            None,
        )
    )
    for kind, model in result["cost_model"]["per_kind"].items():
        rows.append(
            (
                f"AWS per month, {kind}",
                f"1,000 mentors ${model['1000']['total_usd']}, 10,000 mentors ${model['10000']['total_usd']}",
                "",
                None,
            )
        )
    rows.append(
        (
            "AWS per month, the poller's fixed work",
            f"${result['cost_model']['poller_fixed']['usd_per_month']}",
            "",
            None,
        )
    )
    return rows


if __name__ == "__main__":
    print(json.dumps(main(), indent=2, default=str))
