"""moto's server, with every DynamoDB request isolated as DynamoDB isolates it.

``python -m devstack.motoserver -H 127.0.0.1 -p 5000`` takes moto.server's arguments; the local
stack (:class:`devstack.aws.MotoServer`) starts it in its own process.

Why: moto's server is threaded, and its DynamoDB backend neither locks nor isolates. A
``TransactWriteItems`` checks and writes item by item, and when a condition fails it restores a deep
copy of the *whole table* taken when it began. Under concurrent requests two transactions racing
for the last seat of a session can both pass ``seats_taken < capacity``, and a failing one can roll
back writes other requests committed meanwhile — neither can happen in DynamoDB, where every
request (and every transaction, serializably) is isolated. Serialising DynamoDB actions in the
server restores those semantics, so race tests through the gateway test our conditional writes,
not moto's missing isolation. Other services are untouched.
"""

from __future__ import annotations

import sys
import threading
from typing import Any


def serialise_dynamodb() -> None:
    """Run every DynamoDB action of this process under one lock (idempotent)."""
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler.call_action, "_serialised", False):
        return
    lock = threading.RLock()
    original = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with lock:
            return original(self)

    call_action._serialised = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


def speed_up_sqs() -> None:
    """Make moto's SQS cost O(1) per message again, same answers (idempotent).

    moto checks every message it sends or receives against the queue's retention period by
    computing *all* the queue's attributes, including the approximate counts, which walk every
    message held and read the clock for each through datetime arithmetic: a queue holding N messages
    costs O(N) per message, so a fan-out of 2,000 syncs took minutes to send and drain. The clock is
    read with ``time.time()`` (what moto's datetime arithmetic computes, without freezegun, which the
    server never uses) and the retention check reads the one attribute it needs.
    """
    import time

    from moto.core import utils
    from moto.sqs import models

    if getattr(models, "_devstack_fast", False):
        return

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else utils.unix_time(dt)

    def unix_time_millis(dt: Any = None) -> float:
        return unix_time(dt) * 1000.0

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        queue = self.get_queue(queue_name)
        return bool(int(queue.message_retention_period) + message.sent_timestamp / 1000 > unix_time())

    models.unix_time = unix_time  # type: ignore[attr-defined]
    models.unix_time_millis = unix_time_millis  # type: ignore[attr-defined]
    models.SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        is_message_valid_based_on_retention_period
    )
    models._devstack_fast = True  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> None:
    from devstack.moto_transactions import patch_transactions

    serialise_dynamodb()
    speed_up_sqs()
    patch_transactions()  # transactions snapshot their items, not whole tables (O(1) in table size)
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
