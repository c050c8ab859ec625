"""calendar_poll: the scheduled busy-time fan-out (PRODUCT.md §2.7).

EventBridge Scheduler invokes it every ``pollIntervalMinutes`` (5) with a "Scheduled Event"; it
queues one busy-sync message per calendar connection (paged GSI1 read, batched sends) and runs the
maintenance tasks (Google push channel renewal), see :mod:`shared.busy.poll`. Its imports stay small
on purpose (no caldav / icalendar / stripe): it only reads the index and talks to SQS.
"""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions import init_done
from shared import wiring
from shared.busy.poll import poll
from shared.platform.observability import logger, metrics, tracer


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = poll(wiring.table(), wiring.sync_queue(), tasks=wiring.maintenance_tasks(), push_first=wiring.push_first())
    for provider, count in result.queued.items():
        metrics.add_metric(name=f"SyncsQueued_{provider}", unit=MetricUnit.Count, value=count)
    return result.as_dict()


init_done()  # the last statement: the import is over (functions/__init__.py)
