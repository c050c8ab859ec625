"""Meetings worker benchmark: mint latency against the emulators' added latency, and mints per second.

Runs against a fresh local stack (:class:`devstack.stack.LocalStack`: moto over HTTP on loopback,
the API gateway for the OAuth connects, the Google, Zoom and Microsoft emulators; no queue pumps, so nothing
else consumes the jobs). Each mentor connects through the real OAuth flow (KMS-sealed tokens); the
classes, sessions and confirmed bookings are written straight to the table; every job is a
``booking.confirmed`` for a session that has no meeting yet, so each one mints.

* **Latency** (``python -m bench.bench_mint``; part of ``make bench``): the emulators add
  ``LATENCY_MS`` to every request; one warm container's :meth:`shared.meetings.worker.MeetingsWorker.handle`
  is timed per job (p50 / p95 / max), and the provider requests each job made are counted from the
  emulator's request log. ``ratio`` = job time / (requests made * added latency); ``ratio_vs_min``
  uses the fewest requests a mint can take (Google: the insert; Zoom: the marker lookup and the
  create; Teams: the event create, idempotent by ``transactionId``). Target: at most 1.5. AWS calls
  per job (DynamoDB, KMS, SES) are counted on the worker's own boto3 clients, and the time outside
  provider calls is reported as ``overhead_ms``.
* **Throughput**: one process, the real ``functions.mint_meeting.handler.lambda_handler``, SQS-shaped
  batches of 10, jobs handled one after another — meetings minted per second with no added latency
  and with ``LATENCY_MS``.

moto's DynamoDB / SES answer in a few milliseconds on loopback; real ones (same region) take
similar single-digit milliseconds, so the overhead figures carry over roughly, the absolute
throughput at latency 0 does not (it is the local stack's).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import Row

LATENCY_MS = 200
LATENCY_JOBS = 20  # per provider, timed one by one
THROUGHPUT_JOBS = {0: 100, LATENCY_MS: 20}  # per provider, by added latency
WARMUP_JOBS = 2
BATCH = 10
#: The fewest provider requests one mint takes.
MIN_REQUESTS = {"google": 1, "zoom": 2, "teams": 1}
#: The video providers measured, each with the connection (and emulator) it mints through.
CONNECTION = {"google": "google", "zoom": "zoom", "teams": "microsoft"}


def _percentiles_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


class _Bench:
    """The running stack plus helpers to make mentors, sessions and confirmed bookings."""

    def __init__(self, stack: Any) -> None:
        import httpx

        from shared.store import ScheduleStore, Store, Table

        self.stack = stack
        table = Table(stack.client("dynamodb"), stack.aws.table_name)
        self.store, self.schedule = Store(table), ScheduleStore(table)
        self.api = httpx.Client(base_url=stack.api_url, timeout=10)
        self.google = stack.component("google").emulator
        self.zoom = stack.component("zoom").emulator
        self.microsoft = stack.component("microsoft").emulator
        self._day = 0

    def emulator(self, provider: str) -> Any:
        return {"google": self.google, "zoom": self.zoom, "teams": self.microsoft}[provider]

    def mentor(self, provider: str) -> str:
        """A Pro mentor connected to ``provider`` (``teams``: Microsoft 365) through the OAuth flow."""
        from devstack import flows

        mentor = f"bench-{provider}-{uuid.uuid4().hex[:8]}"
        self.store.upsert_mentor(mentor, plan="pro", email=f"{mentor}@mentor.example.com")
        email = f"{mentor}@example.com"
        if provider == "google":
            flows.seed_google_account(self.google, email, calendars=[])
        elif provider == "teams":
            flows.seed_microsoft_account(self.microsoft, email)
        else:
            flows.seed_zoom_account(self.zoom, email, plan=2)
        headers = {"authorization": f"Bearer {self.stack.token(mentor)}"}
        view = flows.connect_oauth(self.api, headers, CONNECTION[provider])
        if view.get("status") != "connected":
            raise RuntimeError(f"connect {provider} failed: {view}")
        return mentor

    def jobs(self, mentor: str, provider: str, count: int) -> list[Any]:
        """``count`` sessions (one class each), one confirmed booking each; their confirmation jobs."""
        from shared.queues.meetings import JobKind, MeetingJob
        from shared.store import Booking, ClassFormat, ClassItem, MeetingProvider, Session
        from shared.store.schedule import session_id_for

        which = {"google": MeetingProvider.GOOGLE_MEET, "zoom": MeetingProvider.ZOOM, "teams": MeetingProvider.TEAMS}[
            provider
        ]
        made = []
        for _ in range(count):
            self._day += 1
            start = datetime(2027, 3, 1, 17, 0, tzinfo=UTC) + timedelta(days=self._day)
            class_id = f"cls_{uuid.uuid4().hex[:16]}"
            session_id = session_id_for(class_id, 1)
            self.schedule.create_class(
                ClassItem(
                    class_id=class_id,
                    mentor_id=mentor,
                    title=f"Bench {provider} {self._day}",
                    format=ClassFormat.ONLINE,
                    timezone="Europe/Berlin",
                    duration_minutes=30,
                    capacity=5,
                    meeting_provider=which,
                ),
                [
                    Session(
                        class_id=class_id,
                        session_id=session_id,
                        mentor_id=mentor,
                        start=start,
                        end=start + timedelta(minutes=30),
                        capacity=5,
                    )
                ],
            )
            booking_id = f"bkg_{uuid.uuid4().hex[:24]}"
            self.schedule.create_booking(
                Booking(
                    booking_id=booking_id,
                    session_id=session_id,
                    class_id=class_id,
                    mentor_id=mentor,
                    student_email=f"student-{booking_id}@example.com",
                    student_name="Bench Student",
                    token_hash=hashlib.sha256(booking_id.encode()).hexdigest(),
                )
            )
            if self.schedule.confirm_booking(booking_id) is None:
                raise RuntimeError(f"could not confirm {booking_id}")
            made.append(
                MeetingJob(
                    kind=JobKind.BOOKING_CONFIRMED,
                    mentor_id=mentor,
                    class_id=class_id,
                    session_id=session_id,
                    booking_id=booking_id,
                )
            )
        return made

    def close(self) -> None:
        self.api.close()


@contextlib.contextmanager
def _stack() -> Iterator[_Bench]:
    from devstack.jwt import LocalIssuer
    from devstack.providers import GoogleProvider, MicrosoftProvider, ZoomProvider
    from devstack.stack import LocalStack
    from shared.platform.observability import logger

    with (
        tempfile.TemporaryDirectory() as keys,
        LocalStack(
            providers=False,
            components=[GoogleProvider(), ZoomProvider(), MicrosoftProvider()],
            queue_workers=(),
            issuer=LocalIssuer(Path(keys)),
        ) as stack,
    ):
        logger.setLevel("WARNING")  # keep stdout for the report
        bench = _Bench(stack)
        try:
            yield bench
        finally:
            bench.close()


def _latency(bench: _Bench, provider: str) -> dict[str, Any]:
    """Time warm ``MeetingsWorker.handle`` calls, one mint each, with ``LATENCY_MS`` added per request."""
    from devstack.metering import count_calls
    from shared import wiring
    from shared.platform import aws

    worker = wiring.meetings_worker()
    emulator = bench.emulator(provider)
    mentor = bench.mentor(provider)
    jobs = bench.jobs(mentor, provider, WARMUP_JOBS + LATENCY_JOBS)
    emulator.set_faults(latency_ms=LATENCY_MS)
    samples: list[float] = []
    requests: list[int] = []
    by_path: Counter[str] = Counter()
    aws_calls: Counter[str] = Counter()
    clients = [aws.client(name) for name in ("dynamodb", "kms", "sesv2")]
    try:
        for n, job in enumerate(jobs):
            emulator.state.requests.clear()
            with contextlib.ExitStack() as counting:
                counters = [counting.enter_context(count_calls(c)) for c in clients]
                started = time.perf_counter()
                outcome = worker.handle(job)
                elapsed = time.perf_counter() - started
            if outcome != "ready":
                raise RuntimeError(f"{provider}: job ended {outcome!r}")
            if n < WARMUP_JOBS:
                continue
            made = emulator.requests_log()
            samples.append(elapsed)
            requests.append(len(made))
            by_path.update(f"{r['method']} {_shape(r['path'])}" for r in made)
            for counter in counters:
                aws_calls.update(counter.calls)
    finally:
        emulator.clear_faults()
    latency_s = LATENCY_MS / 1000
    timed = _percentiles_ms(samples)
    per_job_requests = statistics.fmean(requests)
    added_ms = per_job_requests * LATENCY_MS
    return {
        "jobs": len(samples),
        "added_latency_ms_per_request": LATENCY_MS,
        "provider_requests_per_job": round(per_job_requests, 2),
        "provider_requests_by_call": {k: round(v / len(samples), 2) for k, v in sorted(by_path.items())},
        "added_latency_ms_per_job": round(added_ms, 1),
        "job": timed,
        "ratio_p50": round(statistics.median(samples) / (per_job_requests * latency_s), 3),
        "ratio_p95": round(timed["p95_ms"] / added_ms, 3),
        "ratio_p50_vs_min": round(statistics.median(samples) / (MIN_REQUESTS[provider] * latency_s), 3),
        "overhead_ms_p50": round(timed["p50_ms"] - added_ms, 1),
        "aws_calls_per_job": {k: round(v / len(samples), 2) for k, v in sorted(aws_calls.items())},
    }


def _shape(path: str) -> str:
    """A request path with ids folded (``/calendar/v3/calendars/{id}/events``, ``/v1.0/me/events/{event}``)."""
    parts = path.strip("/").split("/")
    if parts[:3] == ["calendar", "v3", "calendars"] and len(parts) > 3:
        parts[3] = "{calendar}"
        if len(parts) > 5:
            parts[5] = "{event}"
    if parts[:2] == ["v2", "meetings"] and len(parts) > 2:
        parts[2] = "{meeting}"
    if parts[:3] == ["v1.0", "me", "calendars"] and len(parts) > 3:
        parts[3] = "{calendar}"
    if parts[:3] == ["v1.0", "me", "events"] and len(parts) > 3:
        parts[3] = "{event}"
    return "/" + "/".join(parts)


def _throughput(bench: _Bench, provider: str, latency_ms: int, count: int) -> dict[str, Any]:
    """Mints per second of one process running the real handler over SQS batches of ``BATCH``."""
    from devstack.pumps import sqs_event
    from devstack.routes import LambdaContext
    from functions.mint_meeting.handler import lambda_handler

    emulator = bench.emulator(provider)
    mentor = bench.mentor(provider)
    jobs = bench.jobs(mentor, provider, count)
    queue = bench.stack.aws.meetings
    batches = [jobs[i : i + BATCH] for i in range(0, len(jobs), BATCH)]
    emulator.set_faults(latency_ms=latency_ms)
    failed = 0
    try:
        started = time.perf_counter()
        for batch in batches:
            messages = [
                {
                    "MessageId": str(uuid.uuid4()),
                    "ReceiptHandle": uuid.uuid4().hex,
                    "Body": job.body(),
                    "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
                    "MessageAttributes": {"kind": {"DataType": "String", "StringValue": job.kind.value}},
                }
                for job in batch
            ]
            event = sqs_event(messages, queue_arn=queue.arn, region=bench.stack.region)
            result = lambda_handler(event, LambdaContext("mint_meeting", timeout_s=900))
            failed += len(result.get("batchItemFailures") or [])
        elapsed = time.perf_counter() - started
    finally:
        emulator.clear_faults()
    minted = 0
    for job in jobs:
        session = bench.schedule.get_session(job.session_id)
        minted += bool(session and session.meeting and session.meeting.url)
    return {
        "added_latency_ms": latency_ms,
        "jobs": len(jobs),
        "batches": len(batches),
        "failed": failed,
        "minted": minted,
        "seconds": round(elapsed, 2),
        "minted_per_s": round(minted / elapsed, 2),
        "ms_per_mint": round(elapsed / max(minted, 1) * 1000, 1),
    }


def table(report: dict[str, Any]) -> str:
    """The report as a small text table."""
    lines = [
        f"mint latency with {LATENCY_MS} ms added per provider request (warm worker, in-process handle)",
        f"{'provider':<9}{'req/job':>8}{'added ms':>10}{'p50 ms':>9}{'p95 ms':>9}{'ratio p50':>11}"
        f"{'ratio p95':>11}{'vs min':>8}{'overhead':>10}",
    ]
    for provider, row in report["latency"].items():
        lines.append(
            f"{provider:<9}{row['provider_requests_per_job']:>8}{row['added_latency_ms_per_job']:>10}"
            f"{row['job']['p50_ms']:>9}{row['job']['p95_ms']:>9}{row['ratio_p50']:>11}{row['ratio_p95']:>11}"
            f"{row['ratio_p50_vs_min']:>8}{row['overhead_ms_p50']:>10}"
        )
    lines.append("")
    lines.append(f"meetings minted per second, one worker, lambda_handler, batches of {BATCH}")
    lines.append(f"{'provider':<9}{'added ms':>9}{'jobs':>6}{'minted':>8}{'s':>8}{'mint/s':>8}{'ms/mint':>9}")
    for provider, rows in report["throughput"].items():
        for row in rows:
            lines.append(
                f"{provider:<9}{row['added_latency_ms']:>9}{row['jobs']:>6}{row['minted']:>8}{row['seconds']:>8}"
                f"{row['minted_per_s']:>8}{row['ms_per_mint']:>9}"
            )
    return "\n".join(lines)


def main() -> dict[str, Any]:
    """Run the benchmark and return its measurements."""
    with _stack() as bench, contextlib.redirect_stdout(io.StringIO()):  # Powertools' metric lines
        latency = {provider: _latency(bench, provider) for provider in CONNECTION}
        throughput = {
            provider: [_throughput(bench, provider, ms, count) for ms, count in THROUGHPUT_JOBS.items()]
            for provider in CONNECTION
        }
    report: dict[str, Any] = {"target_ratio": 1.5, "latency": latency, "throughput": throughput}
    print(table(report), file=sys.stderr)
    return report


def summary(result: dict[str, Any]) -> list[Row]:
    """``(figure, value, target, met)`` rows for the ``make bench`` table."""
    rows: list[Row] = []
    for provider, row in result["latency"].items():
        rows.append(
            (
                f"mint latency, {provider} ({row['added_latency_ms_per_request']} ms added per request, "
                f"{row['provider_requests_per_job']} requests/job)",
                f"p50 {row['job']['p50_ms']} ms = {row['ratio_p50']}x the emulator's "
                f"{row['added_latency_ms_per_job']} ms (p95 {row['ratio_p95']}x; overhead {row['overhead_ms_p50']} ms)",
                f"<= {result['target_ratio']}x",
                row["ratio_p50"] <= result["target_ratio"],
            )
        )
    for provider, runs in result["throughput"].items():
        rates = ", ".join(f"{r['minted_per_s']}/s at {r['added_latency_ms']} ms" for r in runs)
        rows.append((f"meetings minted per second, one worker, {provider}", rates, "", None))
    return rows


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
