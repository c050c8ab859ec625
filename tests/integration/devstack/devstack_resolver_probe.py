"""A test-only Lambda function built like ours (a Powertools resolver): echoes what *its* event carried."""

import time
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

app = APIGatewayHttpResolver()


@app.get("/echo")
def echo() -> dict[str, Any]:
    seen = app.current_event.get_query_string_value("n")
    time.sleep(0.01)  # let another request's resolve() run in between
    return {"n": seen, "again": app.current_event.get_query_string_value("n")}


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
