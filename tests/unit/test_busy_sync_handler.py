"""functions/busy_sync: partial batch responses — only the records that should come back fail."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.pumps import sqs_event
from devstack.routes import LambdaContext
from shared import wiring
from shared.busy.sync import TransientSyncError
from shared.queues.busy import SyncJob
from shared.store import Provider


class FakeWorker:
    """Succeeds for mentor "ok", fails transiently for "flaky"."""

    def handle(self, job: SyncJob) -> str:
        if job.mentor_id == "flaky":
            raise TransientSyncError("unavailable", "provider down", delay_s=0)
        return "synced:1"


def _message(n: int, body: str, receives: int = 1) -> dict[str, Any]:
    return {
        "MessageId": f"m{n}",
        "ReceiptHandle": f"r{n}",
        "Body": body,
        "Attributes": {"ApproximateReceiveCount": str(receives), "SentTimestamp": "1"},
    }


@pytest.fixture(autouse=True)
def fake_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wiring, "busy_sync", FakeWorker)


def test_only_failed_records_are_reported() -> None:
    from functions.busy_sync.handler import lambda_handler

    # Given a batch: a good job, a malformed body, a transient failure, and one on its last receive
    ok = SyncJob(mentor_id="ok", provider=Provider.GOOGLE).body()
    flaky = SyncJob(mentor_id="flaky", provider=Provider.APPLE).body()
    event = sqs_event(
        [_message(1, ok), _message(2, "{not json"), _message(3, flaky), _message(4, flaky, receives=3)],
        queue_arn="arn:aws:sqs:us-east-1:123456789012:busy-sync",
        region="us-east-1",
    )
    # When the worker handles it
    result = lambda_handler(event, LambdaContext("busy_sync"))
    # Then only the malformed one and the transient one (not on its last receive) come back
    assert result == {"batchItemFailures": [{"itemIdentifier": "m2"}, {"itemIdentifier": "m3"}]}
