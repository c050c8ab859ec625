"""Microsoft's error answers: Graph's OData error body, the identity platform's AADSTS body, and
the answers injected faults give.

Rules: Graph errors are ``{"error": {"code", "message", "innerError": {"date", "request-id",
"client-request-id"}}}`` (NOTES-msgraph §7; the wire form spells ``innerError``, the OpenAPI cut
``innererror``); identity-platform errors carry ``error``, an ``AADSTSnnnn:`` description with trace
and correlation ids, ``error_codes``, ``timestamp``, ``trace_id``, ``correlation_id`` and
``error_uri`` (§3). Throttled answers carry ``Retry-After`` (§7).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from flask import Response, request

from devstack.emulators.common import JSONDict, json_response


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def graph_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    inner: JSONDict = {"date": _now_text(), "request-id": str(uuid.uuid4())}
    inner["client-request-id"] = request.headers.get("client-request-id") or inner["request-id"]
    return json_response({"error": {"code": code, "message": message, "innerError": inner}}, status, headers)


def unauthenticated(message: str) -> Response:
    return graph_error(
        401, "InvalidAuthenticationToken", message, {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'}
    )


def access_denied() -> Response:
    return graph_error(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")


def item_not_found() -> Response:
    return graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def bad_request(message: str, code: str = "ErrorInvalidRequest") -> Response:
    return graph_error(400, code, message)


def throttled(
    retry_after: float, code: str = "TooManyRequests", message: str = "Please retry again later."
) -> Response:
    """The throttling answer of NOTES-msgraph §7 (``examples/error-429-toomanyrequests.json``)."""
    inner: JSONDict = {
        "code": "429",
        "date": _now_text(),
        "message": "Please retry after",
        "request-id": str(uuid.uuid4()),
        "status": "429",
    }
    body = {"error": {"code": code, "innerError": inner, "message": message}}
    return json_response(body, 429, {"Retry-After": _seconds(retry_after)})


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


def aadsts_body(error: str, code: int, message: str) -> JSONDict:
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return {
        "error": error,
        "error_description": (
            f"AADSTS{code}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {stamp}"
        ),
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }


def aadsts_error(error: str, code: int, message: str, status: int = 400) -> Response:
    return json_response(aadsts_body(error, code, message), status)


def aadsts_description(code: int, message: str) -> str:
    """The one-line description an error redirect carries (``error_description``)."""
    return f"AADSTS{code}: {message}"


def fault_responder(status: int, retry_after: int) -> Response:
    if "/oauth2/" in request.path:
        if status == 429:
            resp = aadsts_error("temporarily_unavailable", 50196, "The server is temporarily unavailable.", 429)
        else:
            resp = aadsts_error("server_error", 90033, "A transient error has occurred. Please try again.", status)
        resp.headers["Retry-After"] = str(retry_after)
        return resp
    if status == 429:
        return throttled(retry_after)
    if status == 503:
        return graph_error(503, "serviceNotAvailable", "Service Unavailable", {"Retry-After": str(retry_after)})
    return graph_error(
        status, "generalException", "An internal server error occurred.", {"Retry-After": str(retry_after)}
    )
