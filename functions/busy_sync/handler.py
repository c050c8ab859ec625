"""busy_sync: the busy-sync queue's worker (PRODUCT.md §2.7).

Thin: each SQS record → :func:`shared.busy.sync.process_message` (read the connection's busy times from
Google or iCloud, replace its stored blocks); Powertools' BatchProcessor reports only the failed
records back to SQS (partial batch responses), so one slow provider never holds the others back.
"""

from typing import Any, cast

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions import init_done
from shared import wiring
from shared.busy.sync import process_message
from shared.platform.observability import logger, metrics, tracer

processor = BatchProcessor(event_type=EventType.SQS)


@tracer.capture_method
def record_handler(record: SQSRecord) -> str:
    """One sync: the connection the message names."""
    receives = int(record.attributes.approximate_receive_count or 1)
    outcome = process_message(record.body, record.receipt_handle, receive_count=receives, worker=wiring.busy_sync())
    metrics.add_metric(name=f"Sync_{outcome.split(':', 1)[0]}", unit=MetricUnit.Count, value=1)
    return outcome


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return cast(dict[str, Any], response)


init_done()  # the last statement: the import is over (functions/__init__.py)
