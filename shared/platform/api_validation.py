"""Request validation for the API's typed routes: Powertools' OpenAPI validation with our JSON reader.

Imported by :func:`shared.platform.api.build_resolver` only for resolvers that validate (every route
with typed parameters or a JSON body), so webhook functions never load it. What it adds:

* the size rule before anything else, then Powertools' validation with JSON bodies read by
  :func:`json_object` instead of Powertools' reader (which parses forms and multipart, and answers
  some bad bodies with a 500);
* validation problems as 400 ``invalid_request`` with field-level messages, another ``Content-Type``
  on a JSON route as 415 ``unsupported_media_type``.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import OpenAPIRequestValidationMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from shared.platform.api import ApiError, check_body_size, check_principal, error_response, raw_body

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2


_JSON_TYPES: Final = ("application/json",)
_JSON_SUFFIX: Final = "+json"


def _describe(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, str]]]:
    fields = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        fields.append({"field": ".".join(loc) or "body", "message": str(err.get("msg", "invalid"))})
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields) or "invalid request"
    return summary, fields


def _bad_body(message: str) -> ApiError:
    return ApiError(HTTPStatus.BAD_REQUEST, "invalid_request", message, fields=[{"field": "body", "message": message}])


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def is_json(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` names JSON (``application/json`` or ``application/*+json``; parameters ignored).
    No header at all counts as JSON too, as Powertools has always read it."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return not media or media in _JSON_TYPES or (media.startswith("application/") and media.endswith(_JSON_SUFFIX))


def install(app: APIGatewayHttpResolver) -> None:
    """Put our guard where Powertools keeps its request validation, and our error answers."""
    if not isinstance(getattr(app, "_request_validation_middleware", None), OpenAPIRequestValidationMiddleware):
        raise RuntimeError(
            "Powertools no longer keeps its request validation middleware where shared.platform.api expects it"
        )
    app._request_validation_middleware = _RequestGuard()  # type: ignore[no-untyped-call]
    app.exception_handler(RequestValidationError)(_invalid)
    app.exception_handler(RequestUnsupportedContentType)(_unsupported)


def _invalid(exc: RequestValidationError) -> Response[dict[str, Any]]:
    summary, fields = _describe(list(exc.errors()))
    return error_response(HTTPStatus.BAD_REQUEST, "invalid_request", summary, fields=fields)


def _unsupported(_: RequestUnsupportedContentType) -> Response[dict[str, Any]]:
    return error_response(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "The body must be JSON (application/json)."
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
        check_principal(app)
        check_body_size(app.current_event)
        return super().handler(app, next_middleware)

    def _get_body(self, app: Any) -> dict[str, Any]:
        return json_object(app.current_event)  # type: ignore[return-value]  # None: Powertools' "Field required"
