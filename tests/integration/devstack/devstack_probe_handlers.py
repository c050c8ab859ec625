"""A test-only Lambda function for the devstack tests.

The gateway, pumps and scheduler import it by module name (pytest puts this directory on
``sys.path``) and invoke ``lambda_handler`` in-process, so the tests read what it recorded.
It answers by event shape: API Gateway v2 (by route key), SQS (by each body's ``mode``) or
EventBridge (scheduled event).
"""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from typing import Any

CALLS: list[dict[str, Any]] = []  # {"kind": "http"|"sqs"|"schedule", "event": ..., "context": ...}
ATTEMPTS: Counter[str] = Counter()  # SQS message "id" → times seen
_lock = threading.Lock()


def calls(kind: str) -> list[dict[str, Any]]:
    with _lock:
        return [c for c in CALLS if c["kind"] == kind]


def _record(kind: str, event: Any, context: Any) -> None:
    snapshot = {
        "function_name": context.function_name,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
    with _lock:
        CALLS.append({"kind": kind, "event": event, "context": snapshot})


def _http(event: dict[str, Any]) -> Any:
    route = event["routeKey"]
    if route == "GET /probe/plain":
        return {"hello": "world"}
    if route == "GET /probe/string":
        return "just a string"
    if route == "GET /probe/boom":
        raise RuntimeError("boom")
    if route == "GET /probe/malformed":
        return {"statusCode": 200, "body": {"not": "a string"}}
    if route == "GET /probe/binary":
        return {
            "statusCode": 200,
            "headers": {"content-type": "application/octet-stream"},
            "body": base64.b64encode(b"\x00\x01\xfe\xff").decode(),
            "isBase64Encoded": True,
        }
    if route == "GET /probe/cookies":
        return {
            "statusCode": 201,
            "headers": {"content-type": "text/plain", "x-count": 3},
            "cookies": ["a=1; Path=/", "b=2; HttpOnly"],
            "body": "made",
        }
    claims = event["requestContext"].get("authorizer", {}).get("jwt", {}).get("claims", {})
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"sub": claims.get("sub"), "routeKey": route}),
    }


def _sqs(event: dict[str, Any]) -> Any:
    failures = []
    raise_now = False
    for record in event["Records"]:
        body = json.loads(record["body"])
        with _lock:
            ATTEMPTS[body["id"]] += 1
            attempt = ATTEMPTS[body["id"]]
        mode = body.get("mode", "ok")
        if mode == "always_fail" or (mode == "fail_once" and attempt == 1):
            failures.append({"itemIdentifier": record["messageId"]})
        if mode == "raise_once" and attempt == 1:
            raise_now = True
    if raise_now:
        raise RuntimeError("the whole batch fails")
    return {"batchItemFailures": failures}


def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    if "Records" in event:
        _record("sqs", event, context)
        return _sqs(event)
    if event.get("detail-type") == "Scheduled Event":
        _record("schedule", event, context)
        return {"ticked": event["resources"][0]}
    _record("http", event, context)
    return _http(event)
