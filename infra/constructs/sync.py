"""Sync: busy-time sync (PRODUCT.md §2.7).

EventBridge Scheduler fires ``calendar_poll`` every ``pollIntervalMinutes`` (default: the interval
of the ``calendar-poll`` entry of ``devstack.routes.SCHEDULES``, 5 minutes) with the same "Scheduled
Event" payload the local scheduler sends; it fans out one message per calendar connection to the
busy-sync queue, whose ``busy_sync`` worker reads the provider's busy times, and renews Google push
channels. The worker's event source has a maximum concurrency (``busySyncMaxConcurrency``) so a
large fan-out cannot exceed Google's per-project quota or iCloud's patience.
"""

from __future__ import annotations

from typing import Any, Final

from aws_cdk import Aws, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from cdk_nag import NagSuppressions
from constructs import Construct

from devstack.routes import QUEUE_WORKERS, SCHEDULES, QueueWorker, Schedule
from infra.constructs.function import BATCH_GET, CHECK, DELETE, GET, PUT, QUERY, UPDATE, Access, FunctionSpec
from infra.constructs.messaging import WorkQueue
from infra.constructs.platform import Platform

QUEUE: Final = "busy-sync"
WORKER: Final[QueueWorker] = next(w for w in QUEUE_WORKERS if w.queue == QUEUE)
WORKER_TIMEOUT: Final = Duration.seconds(max(int(WORKER.timeout_s), 120))
POLL_FUNCTION: Final = "calendar_poll"
#: The local schedule (``devstack.routes.SCHEDULES``): name, interval default, timeout, detail.
POLL_SCHEDULE: Final[Schedule] = next(s for s in SCHEDULES if s.function == POLL_FUNCTION)
SCHEDULE_NAME: Final = POLL_SCHEDULE.name
POLL_TIMEOUT: Final = Duration.seconds(int(POLL_SCHEDULE.timeout_s))
POLL_DETAIL: Final[dict[str, Any]] = dict(POLL_SCHEDULE.detail)

#: calendar_poll (shared/busy/poll.py): the fan-out pages through the sparse GSI1 partitions
#: ``SYNC#<provider>`` (Query on the index) and sends one message per connection (SendMessageBatch,
#: SendMessage for a refused entry) to busy-sync. Its maintenance task renews Google push channels
#: (shared/busy/push.py, shared/store/channels.py) and Microsoft subscriptions (shared/busy/microsoft_push.py,
#: PATCH / POST / DELETE /subscriptions with the Microsoft client secret): channels expiring soon and
#: due watch retries (Query on
#: GSI1), the mentor's channels (Query), the connection (GetItem), channel items (transactions of
#: PutItem / UpdateItem / DeleteItem; UpdateItem leases; PutItem / DeleteItem retries; PutItem of a
#: Microsoft subscription's pending clientState hash before each create), a Google
#: access token (vault; refresh with the client secret; invalid_grant → needs_reconnect + e-mail) and
#: events.watch / channels.stop at Google. Its seat-hold sweep (shared/schedule/holds.py) queries the
#: GSI1 partitions ``HOLDS#<hour>`` and expires each ended hold in a transaction (Update booking and
#: session, Delete the hold marker). Its pre-flight (shared/meetings/preflight.py) queries the GSI1
#: partitions ``PREFLIGHT#<day>``, marks each meeting checked (conditional Update) and queues one
#: ``meeting.check`` per meeting (meetings queue).
POLL_ACCESS: Final = Access(
    table=(GET, QUERY, PUT, UPDATE, DELETE),
    index=(QUERY,),
    sends_to=(QUEUE, "meetings"),
    vault=True,
    email=True,
    secrets=("GOOGLE_CLIENT_SECRET", "MICROSOFT_CLIENT_SECRET"),
    providers=True,
)
#: busy_sync (shared/busy/sync.py, shared/store/busy.py): reads the connection, the busy head and (Apple)
#: the mentor's profile in one BatchGetItem; opens the credential (vault: Apple password, Google
#: tokens; the accessor and the vault's branch store GetItem) and refreshes Google tokens (client
#: secret; the refresh lease and invalid_grant → needs_reconnect are UpdateItems, the reconnect
#: e-mail reads the profile and sends with SES; a CalDAV 401 does the same for Apple); writes the new
#: busy chunks (PutItem), flips the head (UpdateItem), deletes the old chunks (DeleteItem); shortens a
#: failed message's visibility (ChangeMessageVisibility on its own queue, granted with the event
#: source). Microsoft: getSchedule with refreshed tokens (client secret); a lifecycle job renews the
#: mentor's subscriptions (Query of the links, transactions of Updates) or makes one (PutItem of the pending
#: clientState hash, then Put / Delete parts); a stray's delete job reads the channel item (GetItem) and
#: deletes the subscription at Graph, nothing else.
#: A periodic safety resync that finds a change no push brought reads the stored busy sets (Query) and
#: flags the channel (shared/busy/push_watchdog.py: a transaction of an Update of the channel and a
#: ConditionCheck of its link). No Zoom secret.
WORKER_ACCESS: Final = Access(
    table=(GET, BATCH_GET, QUERY, PUT, UPDATE, DELETE, CHECK),
    vault=True,
    email=True,
    secrets=("GOOGLE_CLIENT_SECRET", "MICROSOFT_CLIENT_SECRET"),
    providers=True,
)


def scheduled_event_input(detail: dict[str, Any]) -> scheduler.ScheduleTargetInput:
    """The EventBridge "Scheduled Event" shape ``devstack.scheduler.scheduled_event`` builds locally."""
    return scheduler.ScheduleTargetInput.from_object(
        {
            "version": "0",
            "id": scheduler.ContextAttribute.execution_id,
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": Aws.ACCOUNT_ID,
            "time": scheduler.ContextAttribute.scheduled_time,
            "region": Aws.REGION,
            "resources": [scheduler.ContextAttribute.schedule_arn],
            "detail": detail,
        }
    )


class Sync(Construct):
    """Schedule → calendar_poll → busy-sync queue → busy_sync."""

    def __init__(self, scope: Construct, construct_id: str, *, platform: Platform) -> None:
        super().__init__(scope, construct_id)
        cfg = platform.config
        self.queue = WorkQueue(self, "Queue", name=QUEUE, worker_timeout=WORKER_TIMEOUT, monitoring=platform.monitoring)
        platform.queues[QUEUE] = self.queue
        self.poll = platform.function(
            self,
            FunctionSpec(
                name=POLL_FUNCTION,
                description=f"every {cfg.poll_interval_minutes} min: one busy-sync message per calendar connection",
                access=POLL_ACCESS,
                timeout=POLL_TIMEOUT,
                memory_mb=256,
            ),
        )
        self.worker = platform.function(
            self,
            FunctionSpec(
                name=WORKER.function,
                description="reads one connection's busy times (busy-sync queue)",
                access=WORKER_ACCESS,
                timeout=WORKER_TIMEOUT,
                memory_mb=1024,
            ),
        )
        self.worker.function.add_event_source(
            sources.SqsEventSource(
                self.queue.queue,
                batch_size=WORKER.batch_size,
                report_batch_item_failures=True,
                max_concurrency=cfg.busy_sync_max_concurrency,
            )
        )
        self.schedule_role = iam.Role(
            self,
            "ScheduleRole",
            description="mentor-connections: EventBridge Scheduler invokes calendar_poll",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}
            ),
        )
        self.schedule = scheduler.Schedule(
            self,
            "PollSchedule",
            description=f"mentor-connections: {POLL_FUNCTION} every {cfg.poll_interval_minutes} minutes",
            schedule=scheduler.ScheduleExpression.rate(Duration.minutes(cfg.poll_interval_minutes)),
            target=targets.LambdaInvoke(
                self.poll.function,
                input=scheduled_event_input(POLL_DETAIL),
                retry_attempts=0,  # the next tick is minutes away; a missed one is simply the next one
                max_event_age=Duration.minutes(min(cfg.poll_interval_minutes, 24 * 60)),  # API limit: 24 h
                role=self.schedule_role,
            ),
        )
        NagSuppressions.add_resource_suppressions(
            self.schedule_role,
            [
                {
                    "id": "AwsSolutions-IAM5",
                    "reason": "lambda:InvokeFunction on calendar_poll and its qualified ARNs (versions/aliases, "
                    "'<arn>:*'), as CDK's grantInvoke writes it: the role can invoke that one function only",
                    "applies_to": [{"regex": "/^Resource::<SyncCalendarPoll[A-Za-z0-9]+\\.Arn>:\\*$/"}],
                }
            ],
            apply_to_children=True,
        )
