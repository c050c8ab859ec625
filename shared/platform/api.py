"""Shared HTTP API plumbing for the API Gateway (HTTP API, payload v2) functions.

* :func:`build_resolver` returns a Powertools ``APIGatewayHttpResolver`` with request validation
  (pydantic) and OpenAPI enabled, and with every error rendered as the contract's envelope
  ``{"error": {"code": "...", "message": "...", ...}}`` — validation problems as 400 with a
  field-level message, never a 500.
* :class:`ApiError` is what domain code raises to answer a client mistake.
* :func:`mentor_id` reads the ``sub`` claim that API Gateway's JWT authorizer put in the event.
* :func:`raw_body` is the request body byte-exact (what webhook signatures cover).

Bad input never reaches the domain code (``tests/reliability/test_fuzz_api.py`` fuzzes every route):

* a body over :data:`MAX_BODY_BYTES` → 413 ``payload_too_large``, on every route, before it is parsed;
* a JSON route's body must be JSON: another ``Content-Type`` → 415 ``unsupported_media_type``
  (no form or multipart parsing); bytes that are not UTF-8, text that is not JSON (``NaN`` included),
  nesting too deep to parse, or JSON that is not an object → 400 ``invalid_request``.
"""

from __future__ import annotations

import base64
import binascii
import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import OpenAPIRequestValidationMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from shared.platform.observability import logger

#: The largest request body any route takes. API Gateway's own limit is 10 MB (the local gateway
#: enforces that one too); ours is far smaller because the largest real bodies are a few kB (a class
#: with 99 session starts is ~5 kB, a Stripe event tens of kB) and every byte of a bigger one would
#: be read, decoded and parsed in the function's memory and time before being refused anyway.
MAX_BODY_BYTES: Final = 256 * 1024
_JSON_TYPES: Final = ("application/json",)
_JSON_SUFFIX: Final = "+json"


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


def _unsupported(_: RequestUnsupportedContentType) -> Response[dict[str, Any]]:
    return error_response(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "The body must be JSON (application/json)."
    )


def _bad_body(message: str) -> ApiError:
    return ApiError(HTTPStatus.BAD_REQUEST, "invalid_request", message, fields=[{"field": "body", "message": message}])


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def is_json(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` names JSON (``application/json`` or ``application/*+json``; parameters ignored).
    No header at all counts as JSON too, as Powertools has always read it."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return not media or media in _JSON_TYPES or (media.startswith("application/") and media.endswith(_JSON_SUFFIX))


def check_body_size(event: APIGatewayProxyEventV2) -> None:
    """413 ``payload_too_large`` for a body over :data:`MAX_BODY_BYTES` (decoded size)."""
    body = event.body or ""
    if event.is_base64_encoded:  # the decoded size, without decoding
        size = len(body) * 3 // 4 - (len(body) - len(body.rstrip("=")))
    else:
        size = len(body.encode("utf-8"))
    if size > MAX_BODY_BYTES:
        raise ApiError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "payload_too_large",
            f"The body is over {MAX_BODY_BYTES // 1024} KiB.",
            limitBytes=MAX_BODY_BYTES,
        )


def json_object(event: APIGatewayProxyEventV2) -> dict[str, Any] | None:
    """The request body as a JSON object (``None`` when there is none), or the client error it deserves."""
    if not is_json(event.headers.get("content-type")):
        raise RequestUnsupportedContentType(
            "Unsupported content type", errors=[{"type": "unsupported_content_type", "loc": ("body",)}]
        )
    data = raw_body(event)
    if not data.strip():
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad_body("The body is not valid UTF-8.") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise _bad_body("The body is nested too deeply.") from None
    except json.JSONDecodeError as exc:
        raise _bad_body(f"The body is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}).") from None
    except ValueError as exc:  # NaN / Infinity, or an integer with thousands of digits
        raise _bad_body(f"The body is not valid JSON ({exc}).") from None
    if not isinstance(value, dict):
        raise _bad_body(f"The body must be a JSON object, not {_json_kind(value)}.")
    return value


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    return "a number"


class _RequestGuard(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation (the first middleware of every route), with our body rules:
    the size check before anything else, and JSON bodies read by :func:`json_object` instead of
    Powertools' reader (which parses forms and multipart, and answers some bad bodies with a 500)."""

    def handler(self, app: Any, next_middleware: Any) -> Any:
        check_body_size(app.current_event)
        return super().handler(app, next_middleware)

    def _get_body(self, app: Any) -> dict[str, Any]:
        return json_object(app.current_event)  # type: ignore[return-value]  # None: Powertools' "Field required"


def build_resolver() -> APIGatewayHttpResolver:
    """A resolver with validation, OpenAPI, the body rules and the contract's error envelope wired in."""
    app = APIGatewayHttpResolver(enable_validation=True)
    if not isinstance(getattr(app, "_request_validation_middleware", None), OpenAPIRequestValidationMiddleware):
        raise RuntimeError(
            "Powertools no longer keeps its request validation middleware where shared.platform.api expects it"
        )
    app._request_validation_middleware = _RequestGuard()  # type: ignore[no-untyped-call]

    app.exception_handler(ApiError)(_api_error)
    app.exception_handler(RequestValidationError)(_invalid)
    app.exception_handler(RequestUnsupportedContentType)(_unsupported)

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
