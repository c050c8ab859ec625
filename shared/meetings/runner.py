"""One SQS message of the meetings queue → :meth:`MeetingsWorker.handle` (what ``mint_meeting`` calls)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.meetings.outcomes import MeetingsSettings, PermanentFailure, RetryLater
from shared.platform.observability import logger
from shared.platform.queue import Received, run_record
from shared.queues.meetings import MeetingJob

if TYPE_CHECKING:
    from shared.meetings.worker import MeetingsWorker


def process_message(
    body: str, receipt_handle: str | None = None, *, receive_count: int = 1, worker: MeetingsWorker
) -> str:
    """Handle one SQS message body; what the ``mint_meeting`` handler calls for each record.

    A :class:`RetryLater` first stretches the message's visibility to the delay it asks for (a
    Zoom daily cap asks for hours), then propagates, so the batch reports this record as failed
    and SQS redelivers it then. Malformed bodies and :class:`PermanentFailure` propagate too and
    end in the dead-letter queue after the queue's ``maxReceiveCount``.

    On the last receive (``receive_count`` ≥ ``MEETINGS_MAX_RECEIVES``) a job that still fails —
    retryable or unexpected — is handed to :meth:`MeetingsWorker.give_up` first, so it reaches the
    DLQ with its reason on the booking; its visibility is not stretched (the DLQ is next anyway).
    """
    from shared.platform.config import QueueSettings, settings

    job = MeetingJob.model_validate_json(body)
    received = Received(
        queue_url=settings(QueueSettings).meetings_queue_url,
        receipt_handle=receipt_handle,
        receive_count=receive_count,
        max_receives=settings(MeetingsSettings).meetings_max_receives,
    )

    def retry_delay(exc: Exception) -> float | None:
        if not isinstance(exc, RetryLater):
            return None
        extra = {"kind": job.kind.value, "reason": exc.reason, "delay_s": exc.delay_s, "receive": receive_count}
        logger.info("job retried later", extra=extra)
        return exc.delay_s

    def on_last(exc: Exception) -> None:
        if isinstance(exc, PermanentFailure):
            return  # its reason is on the booking already
        reason = exc.reason if isinstance(exc, RetryLater) else f"internal error: {type(exc).__name__}"
        _give_up(worker, job, reason)

    outcome = run_record(received, lambda: worker.handle(job), retry_delay=retry_delay, on_last=on_last)
    logger.info("job done", extra={"kind": job.kind.value, "outcome": outcome, "key": job.dedupe_key()})
    return outcome


def _give_up(worker: MeetingsWorker, job: MeetingJob, reason: str) -> None:
    """:meth:`MeetingsWorker.give_up`, never hiding the job's own failure behind a second one."""
    try:
        outcome = worker.give_up(job, reason)
    except Exception:
        logger.exception("recording why a job gave up failed", extra={"kind": job.kind.value})
        return
    logger.warning("job failed its last receive", extra={"kind": job.kind.value, "outcome": outcome})
