"""Google's error answers: the JSON error envelope of the Calendar API, OAuth errors, and the
answers injected faults give.

Rules: bodies follow developers.google.com/calendar/api/guides/errors; ``/calendar/...`` paths
get the API envelope, the OAuth endpoints ``{"error", "error_description"}``.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import Response, request

from devstack.emulators import spec
from devstack.emulators.common import JSONDict, json_response

AUTH_HEADER_INVALID = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
_AUTH_HELP = (
    "Expected OAuth 2 access token, login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


def api_error(
    code: int,
    message: str,
    reason: str,
    *,
    domain: str = "global",
    status: str | None = None,
    location: str | None = None,
    location_type: str | None = None,
    headers: dict[str, str] | None = None,
    details: list[JSONDict] | None = None,
    error_message: str | None = None,
) -> Response:
    """Google's JSON error envelope (see developers.google.com/calendar/api/guides/errors)."""
    err: JSONDict = {"message": error_message or message, "domain": domain, "reason": reason}
    if location:
        err["location"] = location
        err["locationType"] = location_type or "parameter"
    body: JSONDict = {"error": {"code": code, "message": message, "errors": [err]}}
    if status:
        body["error"]["status"] = status
    if details:
        body["error"]["details"] = details
    return json_response(body, code, headers)


def unauthenticated(missing: bool) -> Response:
    if missing:
        return api_error(
            401,
            "Request is missing required authentication credential. " + _AUTH_HELP,
            "required",
            status="UNAUTHENTICATED",
            error_message="Login Required.",
            location="Authorization",
            location_type="header",
            headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
        )
    return api_error(
        401,
        "Request had invalid authentication credentials. " + _AUTH_HELP,
        "authError",
        status="UNAUTHENTICATED",
        error_message="Invalid Credentials",
        location="Authorization",
        location_type="header",
        headers={"WWW-Authenticate": AUTH_HEADER_INVALID},
    )


def insufficient_scope(method_id: str, scopes: Iterable[str]) -> Response:
    rpc = spec.DiscoveryMethod(method_id, "", "", (), None, None, {}).rpc_name
    return api_error(
        403,
        "Request had insufficient authentication scopes.",
        "insufficientPermissions",
        status="PERMISSION_DENIED",
        error_message="Insufficient Permission",
        headers={
            "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="insufficient_scope", '
            f'scope="{" ".join(scopes)}"'
        },
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                "domain": "googleapis.com",
                "metadata": {"service": "calendar-json.googleapis.com", "method": rpc},
            }
        ],
    )


def not_found() -> Response:
    return api_error(404, "Not Found", "notFound")


def gone() -> Response:
    return api_error(410, "Resource has been deleted", "deleted")


def bad_request(message: str, reason: str = "invalid", domain: str = "global", location: str | None = None) -> Response:
    return api_error(400, message, reason, domain=domain, location=location)


def oauth_error(error: str, description: str, status: int = 400) -> Response:
    return json_response({"error": error, "error_description": description}, status)


def fault_responder(status: int, retry_after: int) -> Response:
    path = request.path
    headers = {"Retry-After": str(retry_after)}
    if path.startswith("/calendar/"):
        if status == 429:
            return api_error(429, "Rate Limit Exceeded", "rateLimitExceeded", domain="usageLimits", headers=headers)
        if status == 403:
            return api_error(403, "Rate Limit Exceeded", "rateLimitExceeded", domain="usageLimits", headers=headers)
        if status == 503:
            return api_error(503, "The service is currently unavailable.", "backendError", headers=headers)
        return api_error(status, "Backend Error", "backendError", headers=headers)
    if status == 429:
        return json_response({"error": "rate_limit_exceeded", "error_description": "Rate limit exceeded"}, 429, headers)
    return json_response({"error": "internal_failure", "error_description": "Backend Error"}, status, headers)
