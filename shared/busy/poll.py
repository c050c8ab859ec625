"""``calendar_poll``'s logic (PRODUCT.md §2.7): fan out one busy-sync message per calendar connection,
then run the scheduled maintenance tasks.

**Fan-out.** Calendar connections that sync (Google and Apple, while ``connected``) carry the sparse
GSI1 keys ``SYNC#<provider>`` / ``<mentorId>`` (:mod:`shared.store.repository`); the poller pages
through each partition (Query on GSI1, ``PAGE_SIZE`` items per page, never one giant read) and sends
one :class:`~shared.queues.busy.SyncJob` per connection, ten per ``SendMessageBatch``, a page's batches
in parallel (``SEND_THREADS``), so a page is sent while the next one is read. A connection that
needs reconnecting or was disconnected has left the index, so it is not polled.

**Push first.** A Google (or Microsoft) connection whose push channel (Graph subscription) is live and
healthy is skipped, except for
its safety resync every ``GOOGLE_SAFETY_RESYNC_H`` hours and the first poll after each new channel
(:mod:`shared.busy.push_first`: the rules, and what makes a channel unhealthy). The poll reads the
live channels once (two paged Queries), then decides per connection from what the sync index
already holds — no per-connection read.

**Maintenance tasks** run after the fan-out, each on its own (one failing is logged, the others
still run, and the poll still answers). The composition root passes them in
(:func:`shared.wiring.maintenance_tasks`), each building what it needs only when it runs (the
poller's cold start stays small: no caldav, icalendar or stripe import; only the SQS and DynamoDB
clients). Today:

* ``renew_google_channels`` — :func:`shared.busy.push.renew_expiring_channels`: Google push channels
  expiring within a day get a new channel, failed watches are retried.
* ``renew_microsoft_subscriptions`` — :meth:`shared.busy.microsoft_push.MicrosoftPush.renew`: Graph
  subscriptions expiring within a day get a new expiration (PATCH), failed subscribes are retried.

Adding a task is one :class:`MaintenanceTask` there (a name and a callable taking no arguments;
its return value is logged and reported).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from shared.busy.push_first import Coverage, Decision, PushFirst
from shared.platform.observability import logger
from shared.queues.busy import SyncJob, SyncQueue, SyncReason
from shared.store.models import Provider
from shared.store.repository import SYNCED_PROVIDERS
from shared.store.schema import GSI1
from shared.store.table import Table

#: Items per GSI1 page (DynamoDB also stops a page at 1 MB).
PAGE_SIZE = 250
#: SendMessageBatch calls in flight at once.
SEND_THREADS = 8
#: Jobs per unit of parallel work (ten SendMessageBatch calls).
SEND_CHUNK = 100


@dataclass(frozen=True)
class MaintenanceTask:
    """A scheduled chore the poller runs after the fan-out: ``run()``."""

    name: str
    run: Callable[[], Any]


@dataclass
class PollResult:
    """What one poll did: messages queued per provider, and each maintenance task's outcome."""

    queued: dict[str, int] = field(default_factory=dict)
    maintenance: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    push_first: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.queued.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "queued": dict(self.queued),
            "total": self.total,
            "maintenance": dict(self.maintenance),
            "push_first": dict(self.push_first),
            "seconds": round(self.seconds, 3),
        }


def sync_index_pk(provider: Provider) -> str:
    """The GSI1 partition listing ``provider``'s connections that sync."""
    return f"SYNC#{provider.value}"


def connections_to_sync(
    table: Table,
    provider: Provider,
    *,
    page_size: int = PAGE_SIZE,
    push_first: PushFirst | None = None,
    coverage: Coverage | None = None,
) -> Iterator[SyncJob]:
    """One scheduled :class:`SyncJob` per connection in ``provider``'s sync index (paged lazily).

    With ``push_first`` (and its ``coverage`` for this poll), Google connections covered by a
    healthy push channel are left out unless their safety resync is due; that sync is queued with
    reason ``RESYNC`` (and, after the channel's first one, the channel to check: ``SyncJob.channel``).
    """
    for item in table.query(sync_index_pk(provider), index=GSI1, page_size=page_size):
        mentor_id = item.get("mentor_id") or item.get("GSI1SK")
        if not mentor_id:
            continue
        decision = _push_decision(provider, item, push_first, coverage)
        if decision is Decision.SKIP:
            continue
        if decision is Decision.RESYNC and coverage is not None:
            channel = coverage.checks.pop(f"{provider.value}#{mentor_id}", None)
            yield SyncJob(mentor_id=str(mentor_id), provider=provider, reason=SyncReason.RESYNC, channel=channel)
            continue
        yield SyncJob(mentor_id=str(mentor_id), provider=provider, reason=SyncReason.SCHEDULE)


def _push_decision(
    provider: Provider, item: dict[str, Any], push_first: PushFirst | None, coverage: Coverage | None
) -> Decision:
    if provider not in (Provider.GOOGLE, Provider.MICROSOFT) or push_first is None or coverage is None:
        return Decision.POLL
    return push_first.decide(coverage, item, provider.value)


def _chunks(jobs: Iterable[SyncJob], size: int) -> Iterator[list[SyncJob]]:
    chunk: list[SyncJob] = []
    for job in jobs:
        chunk.append(job)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def fan_out(
    table: Table,
    queue: SyncQueue,
    *,
    providers: Iterable[Provider] = SYNCED_PROVIDERS,
    page_size: int = PAGE_SIZE,
    threads: int = SEND_THREADS,
    push_first: PushFirst | None = None,
    coverage: Coverage | None = None,
) -> dict[str, int]:
    """Queue one sync per calendar connection (push-covered Google ones aside); messages sent per provider.

    At most ``threads`` chunks are in flight, so memory stays bounded however many connections
    there are. A send that fails raises (the next schedule runs the whole fan-out again, and the
    worker skips connections it synced a moment ago).
    """
    if push_first is not None and coverage is None:
        coverage = push_first.coverage()
    queued: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="poll-send") as pool:
        for provider in sorted(providers, key=lambda p: p.value):
            pending: list[Future[int]] = []
            count = 0
            jobs = connections_to_sync(table, provider, page_size=page_size, push_first=push_first, coverage=coverage)
            for chunk in _chunks(jobs, SEND_CHUNK):
                pending.append(pool.submit(queue.send_many, chunk))
                if len(pending) >= threads:
                    count += pending.pop(0).result()
            count += sum(f.result() for f in pending)
            queued[provider.value] = count
    return queued


def run_maintenance(tasks: Iterable[MaintenanceTask]) -> dict[str, str]:
    """Run each task in order; ``{name: "ok: <result>" | "failed: <error type>"}``."""
    outcomes: dict[str, str] = {}
    for task in tasks:
        started = time.perf_counter()
        try:
            result = task.run()
        except Exception as exc:
            logger.exception("maintenance task failed", extra={"task": task.name})
            outcomes[task.name] = f"failed: {type(exc).__name__}"
            continue
        shown = getattr(result, "__dict__", result)
        outcomes[task.name] = f"ok: {shown}"[:500]
        logger.info(
            "maintenance task done",
            extra={"task": task.name, "ms": round((time.perf_counter() - started) * 1000, 1)},
        )
    return outcomes


def poll(
    table: Table, queue: SyncQueue, *, tasks: Iterable[MaintenanceTask], push_first: PushFirst | None = None
) -> PollResult:
    """One scheduled run: the fan-out (push-covered Google connections skipped), then the maintenance tasks.

    The live channels are read before the fan-out; if that read fails, every connection is polled
    (push-first is an optimisation, never a reason to miss a poll).
    """
    started = time.perf_counter()
    coverage: Coverage | None = None
    if push_first is not None and push_first.enabled:
        try:
            coverage = push_first.coverage()
        except Exception:
            logger.exception("push channels could not be read; polling every connection")
    covered_by = push_first if coverage is not None else None
    result = PollResult(queued=fan_out(table, queue, push_first=covered_by, coverage=coverage))
    if coverage is not None:
        result.push_first = {f"google_{d.value}": coverage.counts.get(d.value, 0) for d in Decision}
        result.push_first |= {f"microsoft_{d.value}": coverage.counts.get(f"microsoft_{d.value}", 0) for d in Decision}
    logger.info("busy syncs queued", extra={"queued": result.queued, "push_first": result.push_first})
    result.maintenance = run_maintenance(tasks)
    result.seconds = time.perf_counter() - started
    return result
