"""Zoom's error answers: the API's ``{"code", "message"}`` body, the OAuth endpoints'
``{"reason", "error"}`` body, and the answers injected faults give.

Rules: injected 429s on the API carry Zoom's ``X-RateLimit-*`` headers and code 4001.
"""

from __future__ import annotations

from typing import Any

from flask import Response, request

from devstack.emulators.common import json_response
from devstack.emulators.zoom.model import PER_SECOND_MESSAGE


def zoom_error(status: int, code: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    return json_response({"code": code, "message": message, **extra}, status, headers)


def oauth_error(reason: str, error: str, status: int = 400) -> Response:
    return json_response({"reason": reason, "error": error}, status)


def fault_responder(status: int, retry_after: int) -> Response:
    headers = {"Retry-After": str(retry_after)}
    if request.path.startswith("/oauth/"):
        if status == 429:
            return oauth_error("Too many requests", "rate_limit_exceeded", 429)
        return oauth_error("Internal Error", "server_error", status)
    if status == 429:
        headers.update({"X-RateLimit-Category": "Light", "X-RateLimit-Type": "QPS", "X-RateLimit-Limit": "30"})
        return zoom_error(429, 4001, PER_SECOND_MESSAGE, headers)
    return zoom_error(status, status, "Internal Error", headers)
