"""Busy-sync benchmark: one poll cycle of 1,000 and of 2,000 calendar connections, and how cost grows.

For each size a fresh local stack (moto over HTTP for DynamoDB / SQS / KMS, no pumps) gets that
many connected mentors, half Google (the emulator) and half Apple (Radicale), each provider adding
``LATENCY_MS`` to every request (the emulator's latency knob; a delaying WSGI wrapper around
Radicale). Credentials are sealed with the vault as the connect flows seal them; Google access
tokens are registered in the emulator directly (no OAuth dance), Apple users and their calendars
are written to Radicale's storage. Every mentor has a handful of events (a weekly series with an
exception, one-offs, an all-day event).

One cycle = the real ``calendar_poll`` handler (paged GSI1 read, batched sends) + every message
drained through the real ``busy_sync`` handler by ``WORKERS`` worker processes — the Lambda
containers: each imports the handler once, keeps its own vault key cache and HTTP clients, and takes
batches of 10 like the SQS event source. ``WORKERS`` plays the role of ``busySyncMaxConcurrency``
(deployed default 5; 10 here keeps ``make bench`` short; ``BENCH_POLL_WORKERS`` overrides it).
Google requests also pass the per-container freeBusy rate limiter (``BUSY_GOOGLE_QPS``, default 5/s).

Reported per size: wall time (fan-out alone, and fan-out + drain), provider requests (Google
freeBusy, Radicale by method), KMS calls (all containers), DynamoDB calls per sync, peak RSS of a
worker container, and the 2,000 / 1,000 ratios (target: at most 2.2 for twice the connections).
``python -m bench.bench_poll`` prints the table on stderr and JSON on stdout.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import Row

SIZES = (1_000, 2_000)
LATENCY_MS = 100
WORKERS = int(os.environ.get("BENCH_POLL_WORKERS", "10"))
TARGET_RATIO = 2.2
PASSWORD = "abcd-efgh-ijkl-mnop"


# --- Radicale with added latency ---------------------------------------------------------------------
#
# Radicale parses calendars in Python: in one process (the local stack's in-process server) its CPU,
# not the code under test, would be the bottleneck of 1,000 syncs. The bench runs it as a small
# prefork server of its own: one listening socket, ``processes`` forked children serving it with
# threads (logins cached, as a production Radicale would), each request first sleeping the added
# latency; requests are counted by method in shared memory.

_METHODS = ("PROPFIND", "REPORT", "OTHER")


def _radicale_app(root: str) -> Any:
    """Radicale over ``root`` (htpasswd ``root/users``), configured like :mod:`devstack.radicale`."""
    import logging

    import radicale
    import radicale.config

    logging.getLogger("radicale").setLevel(logging.ERROR)
    configuration = radicale.config.load()
    configuration.update(
        {
            "auth": {
                "type": "htpasswd",
                "htpasswd_filename": str(Path(root) / "users"),
                "htpasswd_encryption": "plain",
                "htpasswd_cache": "True",
                "cache_logins": "True",
                "delay": "0",
            },
            "storage": {"filesystem_folder": str(Path(root) / "collections")},
            "rights": {"type": "owner_only"},
            "logging": {"level": "warning", "mask_passwords": "True"},
        },
        "bench",
        privileged=True,
    )
    return radicale.Application(configuration)  # type: ignore[attr-defined]


def _serve_radicale(root: str, ready: Any, latency_s: float, processes: int) -> None:
    """Process entry point: bind, fork ``processes`` threaded servers on the socket, wait."""
    import ctypes
    import signal
    import socket

    from werkzeug.serving import make_server

    from devstack.radicale import _QuietHandler

    counts = mp.Array(ctypes.c_long, len(_METHODS))  # shared (with its lock) by the forked servers
    listener = socket.create_server(("127.0.0.1", 0), backlog=512)
    port = listener.getsockname()[1]
    children = []
    for _ in range(processes):
        pid = os.fork()
        if pid == 0:  # a server process
            app = _radicale_app(root)

            def delayed(environ: dict[str, Any], start_response: Callable[..., Any], app: Any = app) -> Any:
                if environ.get("PATH_INFO") == "/_bench/calls":
                    start_response("200 OK", [("Content-Type", "application/json")])
                    return [json.dumps(dict(zip(_METHODS, counts[:], strict=True))).encode()]
                if environ.get("PATH_INFO") == "/_bench/reset":
                    for i in range(len(_METHODS)):
                        counts[i] = 0
                    start_response("204 No Content", [])
                    return [b""]
                method = str(environ.get("REQUEST_METHOD"))
                with counts.get_lock():
                    counts[_METHODS.index(method) if method in _METHODS else len(_METHODS) - 1] += 1
                time.sleep(latency_s)
                return app(environ, start_response)

            server = make_server(
                "127.0.0.1", port, delayed, threaded=True, request_handler=_QuietHandler, fd=listener.fileno()
            )
            server.serve_forever()
            os._exit(0)
        children.append(pid)
    ready.put((port, children))

    def stop(*_: Any) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    while True:
        signal.pause()


class LatentRadicale:
    """Radicale in its own (forking) process with ``latency_s`` added per request; seeded on disk."""

    def __init__(self, latency_s: float, processes: int = max(2, os.cpu_count() or 2)) -> None:
        self.latency_s = latency_s
        self.processes = processes
        self.root = Path(tempfile.mkdtemp(prefix="radicale-bench-"))
        (self.root / "users").touch()
        self._users: dict[str, str] = {}
        self._proc: Any = None
        self.url = ""
        self.pids: list[int] = []

    def add_users(self, users: dict[str, str]) -> None:
        """Many users at once (one htpasswd write)."""
        self._users.update(users)
        (self.root / "users").write_text("".join(f"{u}:{p}\n" for u, p in self._users.items()))

    def seed_calendar(self, user: str, events: list[str]) -> None:
        """A "Home" event calendar with ``events`` (iCalendar texts), written to Radicale's storage."""
        folder = self.root / "collections" / "collection-root" / user / "home"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".Radicale.props").write_text(json.dumps({"D:displayname": "Home", "tag": "VCALENDAR"}))
        for n, text in enumerate(events):
            (folder / f"e{n}.ics").write_text(text)

    def start(self) -> None:
        ctx = mp.get_context("spawn")
        ready = ctx.Queue()
        self._proc = ctx.Process(
            target=_serve_radicale, args=(str(self.root), ready, self.latency_s, self.processes), daemon=True
        )
        self._proc.start()
        port, self.pids = ready.get(timeout=60)
        self.url = f"http://127.0.0.1:{port}"

    def calls(self) -> dict[str, int]:
        import httpx

        counted: dict[str, int] = httpx.get(f"{self.url}/_bench/calls", timeout=5).json()
        return {k: v for k, v in counted.items() if v}

    def reset_calls(self) -> None:
        import httpx

        httpx.get(f"{self.url}/_bench/reset", timeout=5)

    def stop(self) -> None:
        import shutil

        if self._proc is not None:
            self._proc.terminate()  # the launcher stops its servers
            self._proc.join(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


# --- seeding ---------------------------------------------------------------------------------------------


def _apple_events(now: datetime, n: int) -> list[str]:
    fmt = "%Y%m%dT%H%M%S"
    first = (now + timedelta(days=1 + n % 5)).replace(hour=18, minute=0, second=0, microsecond=0)

    def cal(*lines: str) -> str:
        return "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//bench//EN", *lines, "END:VCALENDAR", ""])

    return [
        cal(
            "BEGIN:VEVENT",
            f"UID:weekly-{n}",
            "DTSTAMP:20260101T000000Z",
            f"DTSTART;TZID=Europe/Berlin:{first.strftime(fmt)}",
            "DURATION:PT1H",
            "RRULE:FREQ=WEEKLY;COUNT=8",
            f"EXDATE;TZID=Europe/Berlin:{(first + timedelta(weeks=2)).strftime(fmt)}",
            "END:VEVENT",
            "BEGIN:VEVENT",
            f"UID:weekly-{n}",
            "DTSTAMP:20260101T000000Z",
            f"RECURRENCE-ID;TZID=Europe/Berlin:{(first + timedelta(weeks=3)).strftime(fmt)}",
            f"DTSTART;TZID=Europe/Berlin:{(first + timedelta(weeks=3, hours=-8)).strftime(fmt)}",
            "DURATION:PT1H",
            "END:VEVENT",
        ),
        cal(
            "BEGIN:VEVENT",
            f"UID:oneoff-{n}",
            "DTSTAMP:20260101T000000Z",
            f"DTSTART:{(first + timedelta(days=2, hours=-4)).strftime(fmt)}Z",
            "DURATION:PT2H",
            "END:VEVENT",
        ),
        cal(
            "BEGIN:VEVENT",
            f"UID:allday-{n}",
            "DTSTAMP:20260101T000000Z",
            f"DTSTART;VALUE=DATE:{(first + timedelta(days=10)).strftime('%Y%m%d')}",
            "END:VEVENT",
        ),
    ]


def _seed(stack: Any, google: Any, radicale: Any, size: int) -> list[tuple[str, str]]:
    """``size`` connected mentors (half Google, half Apple); returns (mentor, provider) pairs."""
    from devstack.emulators import google as g
    from shared import wiring
    from shared.platform.aws import client
    from shared.store import Connection, Provider
    from shared.store.repository import _connection_to_item
    from shared.store.table import to_item
    from shared.vault import AppleCredential, OAuthCredential

    vault = wiring.vault()
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:6]
    items: list[dict[str, Any]] = []
    made: list[tuple[str, str]] = []
    apple_users: dict[str, str] = {}
    for n in range(size):
        mentor = f"bench-{run}-{n:05d}"
        items.append(
            {
                "PK": f"MENTOR#{mentor}",
                "SK": "PROFILE",
                "timezone": "Europe/Berlin",
                "version": 1,
                "updated_at": now.isoformat(),
            }
        )
        if n % 2 == 0:
            email = f"{mentor}@example.com"
            google.add_user(email, calendars=[])
            token = f"ya29.bench-{uuid.uuid4().hex}"
            with google.state.lock:
                google.state.access_tokens[token] = g.AccessToken(
                    token=token,
                    client_id=g.DEFAULT_CLIENT_ID,
                    email=email,
                    scopes=[g.SCOPE_READONLY, g.SCOPE_EVENTS],
                    issued_at=time.time(),
                    expires_at=time.time() + 86_400,
                )
            base = (now + timedelta(days=1 + n % 5)).replace(hour=9, minute=0, second=0, microsecond=0)
            for k, extra in enumerate(({}, {"recurrence": ["RRULE:FREQ=WEEKLY;COUNT=6"]}, {})):
                start = base + timedelta(days=k * 3, hours=k)
                google.state.seed_event(
                    email,
                    {
                        "summary": "busy",
                        "start": {"dateTime": start.isoformat()},
                        "end": {"dateTime": (start + timedelta(hours=1)).isoformat()},
                        **extra,
                    },
                )
            credential: Any = OAuthCredential(
                access_token=token,
                refresh_token="1//bench-refresh",
                expires_at=now + timedelta(days=1),
                scope=g.SCOPE_READONLY,
            )
            provider, account = Provider.GOOGLE, email
        else:
            apple_id = f"{mentor}@icloud.com"
            apple_users[apple_id] = PASSWORD
            radicale.seed_calendar(apple_id, _apple_events(now, n))
            from pydantic import SecretStr

            credential = AppleCredential(apple_id=apple_id, app_specific_password=SecretStr(PASSWORD))
            provider, account = Provider.APPLE, apple_id
        sealed = vault.seal_credential(credential, mentor_id=mentor, provider=provider.value)
        conn = Connection(
            mentor_id=mentor,
            provider=provider,
            account_id=account,
            selected_calendar="primary" if provider is Provider.GOOGLE else None,
            credential=sealed,
            connected_at=now - timedelta(days=1),
            version=1,
        )
        items.append(_connection_to_item(conn))
        made.append((mentor, provider.value))
    radicale.add_users(apple_users)
    ddb = client("dynamodb")
    for offset in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": to_item(item)}} for item in items[offset : offset + 25]]
        ddb.batch_write_item(RequestItems={stack.aws.table_name: batch})
    return made


# --- worker containers (child processes) -----------------------------------------------------------------


def _container(index: int, ready: Any, stop: Any, results: Any) -> None:
    """One busy_sync "Lambda container": receive batches of 10, run the real handler, delete what succeeded."""
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Powertools' metric lines; the parent prints the report
    from devstack.metering import count_calls
    from devstack.pumps import sqs_event
    from devstack.routes import LambdaContext
    from functions.busy_sync.handler import lambda_handler
    from shared.platform.aws import client
    from shared.platform.config import QueueSettings, settings
    from shared.platform.observability import logger

    logger.setLevel("WARNING")
    url = settings(QueueSettings).busy_sync_queue_url
    sqs = client("sqs")
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    counted = {name: client(name) for name in ("kms", "dynamodb")}
    handled = failed = 0
    busy_s = 0.0
    cpu_start = time.process_time()  # imports done: what the syncs cost
    with contextlib.ExitStack() as hooks:
        counters = {name: hooks.enter_context(count_calls(c)) for name, c in counted.items()}
        ready.set()
        while True:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"])
            messages = got.get("Messages", [])
            if not messages:
                if stop.is_set():
                    break
                continue
            started = time.perf_counter()
            result = lambda_handler(sqs_event(messages, queue_arn=arn, region="us-east-1"), LambdaContext("busy_sync"))
            busy_s += time.perf_counter() - started
            bad = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}
            done = [m for m in messages if m["MessageId"] not in bad]
            if done:
                sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
                )
            handled += len(done)
            failed += len(bad)
    results.put(
        {
            "index": index,
            "handled": handled,
            "failed": failed,
            "busy_s": round(busy_s, 2),
            "kms": dict(counters["kms"].calls),
            "dynamodb": sum(counters["dynamodb"].calls.values()),
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "cpu_s": round(time.process_time() - cpu_start, 2),
        }
    )


def _cpu_s(pids: list[int]) -> float | None:
    """User + system CPU seconds of processes (Linux ``/proc``), or ``None`` where unavailable."""
    total = 0.0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None
    return total


def _queue_depth(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return sum(int(v) for v in attrs.values())


# --- one cycle -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _stack(google: Any, radicale: Any) -> Iterator[Any]:
    from devstack.jwt import LocalIssuer
    from devstack.stack import LocalStack

    env = {
        **google.environment(),
        "APPLE_CALDAV_URL": radicale.url,
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "GOOGLE_PUSH_ENABLED": "false",
    }
    with (
        tempfile.TemporaryDirectory() as keys,
        LocalStack(
            providers=False, queue_workers=(), scheduler_autorun=False, issuer=LocalIssuer(Path(keys)), env=env
        ) as stack,
    ):
        yield stack


def _cycle(size: int, workers: int) -> dict[str, Any]:
    from devstack.emulators import GoogleEmulator
    from devstack.routes import SCHEDULES, LambdaContext
    from devstack.scheduler import scheduled_event
    from shared.platform.aws import client
    from shared.store import Provider
    from shared.store.busy import BusyStore
    from shared.store.table import Table

    google = GoogleEmulator().start()
    radicale = LatentRadicale(LATENCY_MS / 1000)
    radicale.start()
    try:
        with _stack(google, radicale) as stack:
            seeded_at = time.perf_counter()
            made = _seed(stack, google, radicale, size)
            seed_s = time.perf_counter() - seeded_at
            google.set_faults(latency_ms=LATENCY_MS)
            google.state.requests.clear()
            radicale.reset_calls()
            ctx = mp.get_context("spawn")
            ready = [ctx.Event() for _ in range(workers)]
            stop = ctx.Event()
            results = ctx.Queue()
            procs = [
                ctx.Process(target=_container, args=(i, ready[i], stop, results), daemon=True) for i in range(workers)
            ]
            for proc in procs:
                proc.start()
            for event in ready:
                if not event.wait(120):
                    raise RuntimeError("a worker container did not start")
            from functions.calendar_poll.handler import lambda_handler as poll_handler

            (schedule,) = [s for s in SCHEDULES if s.function == "calendar_poll"]
            sqs = client("sqs")
            url = stack.aws.busy_sync.url
            # The local queue's visibility timeout is the worker's (60 s): a batch slower than that locally
            # comes back, and its second delivery is skipped as "synced a moment ago" (counted in handled).
            servers = {"moto": [stack.moto._process.pid], "caldav": radicale.pids}
            cpu_before = {name: _cpu_s(pids) for name, pids in servers.items()}
            parent_before = time.process_time()
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                polled = poll_handler(scheduled_event(schedule), LambdaContext("calendar_poll", timeout_s=120))
            fan_out_s = time.perf_counter() - started
            deadline = time.monotonic() + 900
            while _queue_depth(sqs, url) and time.monotonic() < deadline:
                time.sleep(0.25)
            wall_s = time.perf_counter() - started
            cpu_after = {name: _cpu_s(pids) for name, pids in servers.items()}
            parent_cpu = time.process_time() - parent_before
            stop.set()
            reports = [results.get(timeout=120) for _ in procs]
            for proc in procs:
                proc.join(timeout=30)
            busy = BusyStore(Table(client("dynamodb"), stack.aws.table_name))
            heads = [busy.head(mentor, Provider(provider)) for mentor, provider in made]
            caldav_calls = radicale.calls()
    finally:
        google.clear_faults()
        google.stop()
        radicale.stop()
    freebusy = len(google.requests_log("/calendar/v3/freeBusy", "POST"))
    token = google.token_calls()
    kms: Counter[str] = Counter()
    for r in reports:
        kms.update(r["kms"])
    handled = sum(r["handled"] for r in reports)
    return {
        "connections": size,
        "workers": workers,
        "queued": polled["total"],
        "synced": sum(1 for h in heads if h is not None and h.version is not None),
        "handled": handled,
        "failed_attempts": sum(r["failed"] for r in reports),
        "seed_s": round(seed_s, 1),
        "fan_out_s": round(fan_out_s, 2),
        "wall_s": round(wall_s, 2),
        "syncs_per_s": round(handled / wall_s, 1) if wall_s else None,
        "provider_calls": {
            "google_freebusy": freebusy,
            "google_token": token,
            "caldav": caldav_calls,
            "total": freebusy + token + sum(caldav_calls.values()),
        },
        "kms_calls": sum(kms.values()),
        "kms_by_operation": dict(kms),
        "dynamodb_calls_per_sync": round(sum(r["dynamodb"] for r in reports) / max(handled, 1), 2),
        "peak_rss_mb_per_container": max(r["max_rss_mb"] for r in reports),
        "cpu_s": {
            "worker_containers": round(sum(r["cpu_s"] for r in reports), 1),
            "poller_and_google_emulator": round(parent_cpu, 1),
            **{
                name: round(after - before, 1)
                if (before := cpu_before[name]) is not None and after is not None
                else None
                for name, after in cpu_after.items()
            },
        },
        "blocks_stored": sum(h.blocks for h in heads if h is not None),
    }


def table(report: dict[str, Any]) -> str:
    """The report as a text table."""
    rows = report["runs"]
    lines = [
        f"one poll cycle, {LATENCY_MS} ms added per provider request, {report['workers']} worker containers",
        f"{'connections':>11}{'fan-out s':>10}{'wall s':>8}{'syncs/s':>9}{'provider':>9}{'KMS':>5}"
        f"{'DDB/sync':>9}{'RSS MB':>8}{'synced':>8}",
    ]
    for row in rows:
        lines.append(
            f"{row['connections']:>11}{row['fan_out_s']:>10}{row['wall_s']:>8}{row['syncs_per_s']:>9}"
            f"{row['provider_calls']['total']:>9}{row['kms_calls']:>5}{row['dynamodb_calls_per_sync']:>9}"
            f"{row['peak_rss_mb_per_container']:>8}{row['synced']:>8}"
        )
    for row in rows:
        cpu = ", ".join(f"{k} {v}" for k, v in row["cpu_s"].items())
        lines.append(f"{row['connections']:>11} CPU s: {cpu}")
    ratio = report["ratio_2x"]
    lines.append(
        f"2x connections: wall x{ratio['wall']}, provider calls x{ratio['provider_calls']}, KMS x{ratio['kms_calls']}, "
        f"peak RSS x{ratio['peak_rss']} (target wall <= x{TARGET_RATIO})"
    )
    return "\n".join(lines)


def main() -> dict[str, Any]:
    """Run both sizes and return the measurements."""
    runs = [_cycle(size, WORKERS) for size in SIZES]
    small, large = runs

    def ratio(key: Callable[[dict[str, Any]], float]) -> float | None:
        return round(key(large) / key(small), 2) if key(small) else None

    report: dict[str, Any] = {
        "latency_ms": LATENCY_MS,
        "workers": WORKERS,
        "target_ratio": TARGET_RATIO,
        "runs": runs,
        "ratio_2x": {
            "wall": ratio(lambda r: r["wall_s"]),
            "provider_calls": ratio(lambda r: r["provider_calls"]["total"]),
            "kms_calls": ratio(lambda r: r["kms_calls"]),
            "peak_rss": ratio(lambda r: r["peak_rss_mb_per_container"]),
        },
    }
    print(table(report), file=sys.stderr)
    return report


def summary(result: dict[str, Any]) -> list[Row]:
    """``(figure, value, target, met)`` rows for the ``make bench`` table."""
    rows: list[Row] = []
    for run in result["runs"]:
        rows.append(
            (
                f"poll cycle, {run['connections']:,} connections ({result['latency_ms']} ms added, "
                f"{result['workers']} workers)",
                f"wall {run['wall_s']} s, {run['provider_calls']['total']:,} provider calls, "
                f"{run['kms_calls']} KMS calls, peak RSS {run['peak_rss_mb_per_container']} MB, "
                f"{run['synced']:,} synced",
                "",
                None,
            )
        )
    ratio = result["ratio_2x"]
    rows.append(
        (
            "poll cycle, 2x connections",
            f"wall {ratio['wall']}x, provider calls {ratio['provider_calls']}x, KMS {ratio['kms_calls']}x, "
            f"peak RSS {ratio['peak_rss']}x",
            f"wall <= {result['target_ratio']}x",
            ratio["wall"] is not None and ratio["wall"] <= result["target_ratio"],
        )
    )
    return rows


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
