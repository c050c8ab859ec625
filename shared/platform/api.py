"""Shared HTTP API plumbing for the API Gateway (HTTP API, payload v2) functions.

* :func:`build_resolver` returns a Powertools ``APIGatewayHttpResolver`` with request validation
  (pydantic) and OpenAPI enabled (:mod:`shared.platform.api_validation`; webhooks opt out), and with
  every error rendered as the contract's envelope
  ``{"error": {"code": "...", "message": "...", ...}}`` — validation problems as 400 with a
  field-level message, never a 500.
* :class:`ApiError` is what domain code raises to answer a client mistake.
* :func:`mentor_id` reads the ``sub`` claim that API Gateway's JWT authorizer put in the event, and
  refuses a platform token (403 ``insufficient_scope``: its ``sub`` is a client, not a mentor);
  :func:`platform_client` is the platform routes' check (the authorizer's scope check, repeated).
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
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from shared.platform.observability import logger

#: The largest request body any route takes. API Gateway's own limit is 10 MB (the local gateway
#: enforces that one too); ours is far smaller because the largest real bodies are a few kB (a class
#: with 99 session starts is ~5 kB, a Stripe event tens of kB) and every byte of a bigger one would
#: be read, decoded and parsed in the function's memory and time before being refused anyway.
MAX_BODY_BYTES: Final = 256 * 1024


class ApiError(Exception):
    """A client-facing error: HTTP status, machine code, human message and optional extra fields."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra
        #: Response headers that go with the error (e.g. ``Retry-After`` on a 429 / 503).
        self.headers = dict(headers or {})

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


def _api_error(exc: ApiError) -> Response[dict[str, Any]]:
    logger.info("client error", extra={"code": exc.code, "status": exc.status})
    return Response(
        status_code=exc.status,
        content_type=content_types.APPLICATION_JSON,
        body=exc.body(),
        headers=exc.headers or None,
    )


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


class Resolver(APIGatewayHttpResolver):
    """Powertools' HTTP API resolver, knowing which of its routes are the platform's."""

    #: Route keys (``"POST /bookings"``) of the platform's routes (PRODUCT.md §2.9); every other route
    #: behind the JWT authorizer is a mentor route. ``devstack.routes.ROUTES`` says the same for the
    #: gateway and CDK (``Route.platform``); a test keeps the two equal.
    platform_routes: frozenset[str] = frozenset()


def check_principal(app: APIGatewayHttpResolver) -> None:
    """Who may call this route, checked before the body is read (so a wrong caller learns nothing
    about the body rules): a platform token on a mentor route, or another token on a platform route,
    is 403 ``insufficient_scope``. Routes without the authorizer (no claims) are the function's business."""
    claims, scopes = _authorizer_claims(app)
    if not claims:
        return
    platform_routes: frozenset[str] = getattr(app, "platform_routes", frozenset())
    platform_route = app.current_event.request_context.route_key in platform_routes
    platform_token = _platform_scope() in scopes
    if platform_token and not platform_route:
        raise insufficient_scope("This route is for mentors; a platform token cannot call it.")
    if platform_route and not platform_token:
        raise insufficient_scope("This route is for the platform: the token lacks the platform scope.")


def build_resolver(*, validation: bool = True, platform_routes: Iterable[str] = ()) -> APIGatewayHttpResolver:
    """A resolver with the caller check, the body rules and the contract's error envelope wired in.

    ``validation`` (every route that takes typed parameters or a JSON body): Powertools' request
    validation and OpenAPI, with our JSON reader (:mod:`shared.platform.api_validation`). Without it
    (webhooks: they read their body byte-exact and check it themselves) only the size rule runs, and
    the function does not load Powertools' validation machinery at cold start. ``platform_routes``:
    the route keys that are the platform's (:func:`check_principal`).
    """
    app = Resolver(enable_validation=validation)
    app.platform_routes = frozenset(platform_routes)
    if validation:
        from shared.platform.api_validation import install

        install(app)
    else:
        app.use(middlewares=[_size_guard])
    app.exception_handler(ApiError)(_api_error)

    @app.not_found
    def _not_found(_: Exception) -> Response[dict[str, Any]]:
        return error_response(HTTPStatus.NOT_FOUND, "not_found", "No such route.")

    return app


def _size_guard(app: APIGatewayHttpResolver, next_middleware: Any) -> Any:
    check_principal(app)
    check_body_size(app.current_event)
    return next_middleware(app)


def insufficient_scope(message: str) -> ApiError:
    """403 ``insufficient_scope``: a valid token of the wrong principal for this route (PRODUCT.md §2.9)."""
    return ApiError(HTTPStatus.FORBIDDEN, "insufficient_scope", message)


def _authorizer_claims(app: APIGatewayHttpResolver) -> tuple[dict[str, Any], frozenset[str]]:
    """The claims API Gateway's JWT authorizer delivered, and the token's scopes."""
    from shared.platform.scopes import token_scopes

    authorizer = app.current_event.request_context.authorizer
    claims = authorizer.jwt_claim or {}
    scopes = frozenset(authorizer.jwt_scopes or ()) | token_scopes(claims)
    return claims, scopes


def _platform_scope() -> str:
    from shared.platform.config import AuthSettings, settings

    return settings(AuthSettings).jwt_platform_scope


def mentor_id(app: APIGatewayHttpResolver) -> str:
    """The mentor id: the ``sub`` claim delivered by the JWT authorizer (401 if absent; a platform
    token → 403 ``insufficient_scope``, since its ``sub`` names a client, not a mentor)."""
    claims, scopes = _authorizer_claims(app)
    sub = claims.get("sub")
    if not sub:
        raise ApiError(HTTPStatus.UNAUTHORIZED, "unauthorized", "A mentor bearer token is required.")
    if _platform_scope() in scopes:
        raise insufficient_scope("This route is for mentors; a platform token cannot call it.")
    return str(sub)


def platform_client(app: APIGatewayHttpResolver) -> str:
    """The platform client's id (``sub``) on a platform route: the token must carry the platform
    scope (API Gateway's authorizer checks it first; this repeats it), else 403 ``insufficient_scope``."""
    claims, scopes = _authorizer_claims(app)
    sub = claims.get("sub")
    if not sub:
        raise ApiError(HTTPStatus.UNAUTHORIZED, "unauthorized", "A platform bearer token is required.")
    if _platform_scope() not in scopes:
        raise insufficient_scope("This route is for the platform: the token lacks the platform scope.")
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
