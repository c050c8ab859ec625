"""connections_api: the mentor's provider connections (PRODUCT.md §2.2, §3).

Thin: parse → call ``shared.connections`` → map. Routes are added here as issues land.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.api import build_resolver, mentor_id
from shared.connections import list_connections
from shared.observability import logger, metrics, tracer
from shared.store import default_store

app = build_resolver()


@app.get("/connections")
@tracer.capture_method
def get_connections() -> dict[str, Any]:
    """Status of google, zoom and apple for the calling mentor."""
    return list_connections(default_store(), mentor_id(app)).model_dump(by_alias=True, mode="json")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
