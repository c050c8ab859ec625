"""mint_meeting: the meetings queue's worker (PRODUCT.md §2.6).

Thin: each SQS record → :func:`shared.meetings.worker.process_message`; Powertools' BatchProcessor reports
only the failed records back to SQS (partial batch responses), so one stuck job never holds the
others back, and a failing one is redelivered (with the delay it asked for) until the DLQ; the
receive count tells the worker when a failure is the last one (it records the reason first).
"""

from typing import Any, cast

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions import init_done
from shared import wiring
from shared.meetings.worker import process_message
from shared.platform.observability import logger, metrics, tracer

processor = BatchProcessor(event_type=EventType.SQS)


@tracer.capture_method
def record_handler(record: SQSRecord) -> str:
    """One job: converge the meeting, the booking and the e-mails it is about."""
    receives = int(record.attributes.approximate_receive_count or 1)
    outcome = process_message(
        record.body, record.receipt_handle, receive_count=receives, worker=wiring.meetings_worker()
    )
    metrics.add_metric(name=f"Job_{outcome.split(':', 1)[0]}", unit=MetricUnit.Count, value=1)
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
