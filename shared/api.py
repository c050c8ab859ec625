"""Shared HTTP API plumbing for the API Gateway (HTTP API, payload v2) functions.

* :func:`build_resolver` returns a Powertools ``APIGatewayHttpResolver`` with request validation
  (pydantic) and OpenAPI enabled, and with every error rendered as the contract's envelope
  ``{"error": {"code": "...", "message": "...", ...}}`` — validation problems as 400 with a
  field-level message, never a 500.
* :class:`ApiError` is what domain code raises to answer a client mistake.
* :func:`mentor_id` reads the ``sub`` claim that API Gateway's JWT authorizer put in the event.
* :func:`raw_body` is the request body byte-exact (what webhook signatures cover).
"""

from __future__ import annotations

import base64
import binascii
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from shared.observability import logger


class ApiError(Exception):
    """A client-facing error: HTTP status, machine code, human message and optional extra fields."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The contract's error envelope."""
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


def error_response(status: int, code: str, message: str, **extra: Any) -> Response[dict[str, Any]]:
    """A JSON error response in the contract's envelope."""
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=ApiError(status, code, message, **extra).body(),
    )


def _describe(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, str]]]:
    fields = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        fields.append({"field": ".".join(loc) or "body", "message": str(err.get("msg", "invalid"))})
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields) or "invalid request"
    return summary, fields


def _api_error(exc: ApiError) -> Response[dict[str, Any]]:
    logger.info("client error", extra={"code": exc.code, "status": exc.status})
    return Response(status_code=exc.status, content_type=content_types.APPLICATION_JSON, body=exc.body())


def _invalid(exc: RequestValidationError) -> Response[dict[str, Any]]:
    summary, fields = _describe(list(exc.errors()))
    return error_response(HTTPStatus.BAD_REQUEST, "invalid_request", summary, fields=fields)


def build_resolver() -> APIGatewayHttpResolver:
    """A resolver with validation, OpenAPI, and the contract's error envelope wired in."""
    app = APIGatewayHttpResolver(enable_validation=True)

    app.exception_handler(ApiError)(_api_error)
    app.exception_handler(RequestValidationError)(_invalid)

    @app.not_found
    def _not_found(_: Exception) -> Response[dict[str, Any]]:
        return error_response(HTTPStatus.NOT_FOUND, "not_found", "No such route.")

    return app


def mentor_id(app: APIGatewayHttpResolver) -> str:
    """The mentor id: the ``sub`` claim delivered by the JWT authorizer (401 if absent)."""
    claims = app.current_event.request_context.authorizer.jwt_claim or {}
    sub = claims.get("sub")
    if not sub:
        raise ApiError(HTTPStatus.UNAUTHORIZED, "unauthorized", "A mentor bearer token is required.")
    return str(sub)


def raw_body(event: APIGatewayProxyEventV2) -> bytes:
    """The request body exactly as the client sent it (API Gateway base64-encodes non-text bodies)."""
    body = event.body or ""
    if not event.is_base64_encoded:
        return body.encode("utf-8")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_request", "The body is not valid base64.") from None
