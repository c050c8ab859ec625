"""The project's OpenAPI document, generated from the code (PRODUCT.md §3): ``docs/openapi.json``.

    python -m devstack openapi            # (re)write docs/openapi.json   (make openapi)
    python -m devstack openapi --check    # exit 1 if docs/openapi.json is not what the code says

Every ``functions/*/handler.py`` is discovered (a new function is picked up without touching this
file) and imported. A function with a module-level ``app`` (a Powertools resolver built by
:func:`shared.platform.api.build_resolver`) contributes its own ``get_openapi_schema()``: paths, parameters,
request bodies and response models come from the route signatures. The documents are merged into
one, and what the resolvers cannot know is added from the rest of the code:

* which routes have API Gateway's JWT authorizer — :data:`devstack.routes.ROUTES` (the route
  table the gateway and the infra use) — get the ``bearerJWT`` security scheme and its 401;
* every route of a ``build_resolver()`` app answers client mistakes with the contract's error
  envelope (:class:`shared.platform.api.ApiError`), validation problems included as 400
  ``invalid_request``: Powertools' generic 422 ``HTTPValidationError`` is replaced by ``4XX``
  with the shared ``Error`` schema;
* an operation's summary is its function's docstring (first line) and its tag the Lambda function.

A route the resolver serves must be in ``ROUTES`` (otherwise API Gateway would never deliver it);
a ``ROUTES`` entry whose function has a resolver that does not serve it is not implemented yet and
left out. A function that serves routes *without* a resolver (plain ``lambda_handler``) still gets
its ``ROUTES`` entries documented, with what the table knows (method, path, authorizer) and the
module docstring as summary — no such function exists today (oauth_callback and
provider_webhooks use resolvers too), the fallback keeps a future one from vanishing silently.

No network call and no AWS client: handlers build their clients lazily, so importing them is cheap.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import re
import sys
import tomllib
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from devstack.routes import ROUTES, Route
from shared.platform.api import MAX_BODY_BYTES

REPO = Path(__file__).resolve().parents[1]
FUNCTIONS_DIR = REPO / "functions"
DOCUMENT = REPO / "docs" / "openapi.json"
TITLE = "mentor-connections"
SECURITY_SCHEME = "bearerJWT"
#: Platform routes (``Route.platform``): the same issuer's JWT, carrying the platform scope.
PLATFORM_SECURITY_SCHEME = "platformJWT"
_METHOD_ORDER = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_POWERTOOLS_VALIDATION = ("HTTPValidationError", "ValidationError", "ResponseValidationError")

DESCRIPTION = """\
The HTTP API of mentor-connections (the contract: PRODUCT.md §3), generated from the code by \
`python -m devstack openapi` (`make openapi`); a test keeps it current.

* JSON in and out. Client mistakes answer 4xx with the error envelope \
`{"error": {"code": "...", "message": "...", ...}}` (schema `Error`), never a 500.
* Mentor routes need `Authorization: Bearer <JWT>` (API Gateway's JWT authorizer; the mentor id is \
the `sub` claim). A missing or bad token is answered by the gateway itself: 401 \
`{"message": "Unauthorized"}`. Platform routes (security `platformJWT`) need the platform backend's \
client-credentials JWT carrying the scope `platform`: another token is 403 `insufficient_scope` \
(in AWS API Gateway's own 403 `{"message": "Forbidden"}`); mentor routes answer a platform token 403 \
`insufficient_scope`. `GET /bookings/{booking_id}` and its cancel take the booking token \
(`X-Booking-Token` or `?token=`), the platform's JWT or the owning mentor's.
* `GET /feeds/{token}` is called as `/feeds/<token>.ics` (API Gateway path variables are whole \
segments, so `token` arrives as `<token>.ics`).
"""
DESCRIPTION += f"""\
* Request bodies: at most {MAX_BODY_BYTES // 1024} KiB on every route (413 `payload_too_large`; API Gateway \
itself refuses more than 10 MB with 413 `{{"message": "Request Entity Too Large"}}`). A route with a JSON \
body takes `application/json` (or `application/*+json`) only (415 `unsupported_media_type`), and a body \
that is not a JSON object in UTF-8 is 400 `invalid_request`. Webhooks take their signed bytes as sent.
"""

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Error",
    "description": "The error envelope of every client mistake (4xx).",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Machine-readable, e.g. `not_connected`"},
                "message": {"type": "string", "description": "For humans; never contains a secret"},
                "fields": {
                    "type": "array",
                    "description": "`invalid_request` only: what is wrong with which field",
                    "items": {
                        "type": "object",
                        "required": ["field", "message"],
                        "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                    },
                },
            },
            "additionalProperties": True,
        }
    },
}
GATEWAY_UNAUTHORIZED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "GatewayUnauthorized",
    "description": "API Gateway's JWT authorizer refusing a request (not the error envelope).",
    "required": ["message"],
    "properties": {"message": {"type": "string", "enum": ["Unauthorized"]}},
}


class OpenApiError(RuntimeError):
    """The code cannot be documented consistently (a route outside ROUTES, a clash between functions)."""


@dataclass(frozen=True)
class FunctionDoc:
    """One Lambda function's part: its resolver's OpenAPI document, or ``None`` (no resolver)."""

    name: str
    module: ModuleType
    schema: dict[str, Any] | None
    docs: dict[tuple[str, str], str]  # (method, openapi path) → summary from the route's docstring


# --- discovery ------------------------------------------------------------------------------------


def discover_functions(functions_dir: Path = FUNCTIONS_DIR) -> list[str]:
    """Names of the functions with a ``handler.py``, sorted."""
    return sorted(path.parent.name for path in functions_dir.glob("*/handler.py"))


def project_version(pyproject: Path = REPO / "pyproject.toml") -> str:
    version: str = tomllib.loads(pyproject.read_text())["project"]["version"]
    return version


def _resolver(module: ModuleType) -> Any | None:
    from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver

    app = getattr(module, "app", None)
    return app if isinstance(app, ApiGatewayResolver) else None


def _first_line(doc: str | None) -> str | None:
    """A docstring's first line, reST literals (````x````) as Markdown (```x```)."""
    lines = [line.strip() for line in (doc or "").strip().splitlines()]
    return lines[0].replace("``", "`") if lines and lines[0] else None


def load_function(name: str) -> FunctionDoc:
    """Import ``functions.<name>.handler``; its resolver's OpenAPI document if it has one."""
    module = importlib.import_module(f"functions.{name}.handler")
    app = _resolver(module)
    if app is None:
        return FunctionDoc(name, module, None, {})
    schema: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(title=TITLE, version=project_version(), security_schemes=_security_schemes())
    )
    docs = {}
    for route in [*app._static_routes, *app._dynamic_routes]:  # Powertools keeps no public list
        summary = route.summary or _first_line(getattr(route.func, "__doc__", None))
        if summary:
            docs[(route.method.lower(), route.openapi_path)] = summary
    return FunctionDoc(name, module, schema, docs)


# --- building ---------------------------------------------------------------------------------------


def _shape(path: str) -> str:
    """``/connections/{provider}`` → ``/connections/{}`` (variable names may differ)."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def _route_for(method: str, path: str, routes: Iterable[Route]) -> Route | None:
    for route in routes:
        if route.method.lower() == method and _shape(route.path) == _shape(path):
            return route
    return None


def _security_schemes() -> dict[str, Any]:
    return {
        SECURITY_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "The mentor's JWT (API Gateway JWT authorizer); the mentor id is the `sub` claim.",
        },
        PLATFORM_SECURITY_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "The platform backend's JWT (client credentials, same issuer) with the scope "
            "`platform` (the JWT authorizer's authorization scopes); a mentor token → 403 `insufficient_scope`.",
        },
    }


def _servers() -> list[dict[str, Any]]:
    from shared.platform.config import BaseFunctionSettings

    return [
        {
            "url": "{apiUrl}",
            "description": "This API's public origin (the API_URL setting)",
            "variables": {"apiUrl": {"default": str(BaseFunctionSettings.model_fields["api_url"].default)}},
        }
    ]


def _is_powertools_422(status: str, response: Any) -> bool:
    """Powertools' generic validation answer, which ``build_resolver()`` replaces by a 400 envelope."""
    return status == "422" and "#/components/schemas/HTTPValidationError" in json.dumps(response)


def _decorate(
    operation: dict[str, Any], *, function: str, route: Route, path: str, summary: str | None
) -> dict[str, Any]:
    op = copy.deepcopy(operation)
    if summary and op.get("summary") == f"{route.method} {path}":  # Powertools' default summary
        op["summary"] = summary
    op.setdefault("tags", [function])
    responses = {k: v for k, v in op.get("responses", {}).items() if not _is_powertools_422(k, v)}
    responses.setdefault("4XX", {"$ref": "#/components/responses/Error"})
    if route.auth:
        op.setdefault("security", [{PLATFORM_SECURITY_SCHEME if route.platform else SECURITY_SCHEME: []}])
        responses.setdefault("401", {"$ref": "#/components/responses/GatewayUnauthorized"})
    op["responses"] = dict(sorted(responses.items()))
    return op


def _plain_operation(function: FunctionDoc, route: Route) -> dict[str, Any]:
    """A route served without a resolver: what ROUTES and the module docstring say."""
    op: dict[str, Any] = {
        "summary": _first_line(function.module.__doc__) or f"{route.method} {route.path}",
        "operationId": f"{function.name}_{route.method.lower()}_{_shape(route.path).strip('/').replace('/', '_')}",
        "tags": [function.name],
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"\{([^}+]+)\+?\}", route.path)
        ],
        "responses": {"default": {"description": "See PRODUCT.md §3"}},
    }
    if not op["parameters"]:
        del op["parameters"]
    return _decorate(op, function=function.name, route=route, path=route.path, summary=None)


def _merge_schemas(into: dict[str, Any], schemas: dict[str, Any], function: str) -> None:
    for name, schema in schemas.items():
        if name in into and into[name] != schema:
            raise OpenApiError(f"schema {name!r} of {function} differs from another function's schema of that name")
        into[name] = schema


def _prune(schemas: dict[str, Any], document: dict[str, Any]) -> None:
    """Drop Powertools' validation schemas once nothing refers to them."""
    for name in _POWERTOOLS_VALIDATION:
        others = {k: v for k, v in schemas.items() if k not in _POWERTOOLS_VALIDATION}
        text = json.dumps([document["paths"], others])
        if f"#/components/schemas/{name}" not in text:
            schemas.pop(name, None)


def build_document(
    functions: Sequence[str] | None = None, routes: Iterable[Route] = ROUTES
) -> tuple[dict[str, Any], list[str]]:
    """The merged OpenAPI document, and the ``ROUTES`` keys left out (not served by any function yet)."""
    routes = list(routes)
    names = discover_functions() if functions is None else list(functions)
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    operation_ids: dict[str, str] = {}
    documented: set[str] = set()

    def add(path: str, method: str, op: dict[str, Any], function: str, route: Route) -> None:
        if method in paths.get(path, {}):
            raise OpenApiError(f"{method.upper()} {path} is served by two functions (second: {function})")
        if route.function != function:
            raise OpenApiError(
                f"{method.upper()} {path} is served by {function}, but ROUTES sends it to {route.function}"
            )
        op_id = op.get("operationId")
        if op_id in operation_ids:
            raise OpenApiError(f"operationId {op_id!r} used by {operation_ids[op_id]} and {function}")
        operation_ids[str(op_id)] = function
        paths.setdefault(path, {})[method] = op
        documented.add(route.key)

    for name in names:
        function = load_function(name)
        if function.schema is None:
            for plain in (r for r in routes if r.function == name):
                add(plain.path, plain.method.lower(), _plain_operation(function, plain), name, plain)
            continue
        for path, item in function.schema.get("paths", {}).items():
            for method, operation in item.items():
                route = _route_for(method, path, routes)
                if route is None:
                    raise OpenApiError(
                        f"{method.upper()} {path} ({name}) is not in devstack/routes.py ROUTES: "
                        "API Gateway would never deliver it"
                    )
                summary = function.docs.get((method, path))
                op = _decorate(operation, function=name, route=route, path=path, summary=summary)
                add(path, method, op, name, route)
        _merge_schemas(schemas, function.schema.get("components", {}).get("schemas", {}), name)

    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": project_version(), "description": DESCRIPTION},
        "servers": _servers(),
        "paths": {
            path: {m: paths[path][m] for m in sorted(paths[path], key=_METHOD_ORDER.index)} for path in sorted(paths)
        },
    }
    _prune(schemas, document)
    schemas.update({"Error": ERROR_SCHEMA, "GatewayUnauthorized": GATEWAY_UNAUTHORIZED_SCHEMA})
    document["components"] = {
        "schemas": dict(sorted(schemas.items())),
        "responses": {
            "Error": {
                "description": "A client mistake: the error envelope (`error.code` says which)",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
            "GatewayUnauthorized": {
                "description": "No, an expired or a forged bearer token (answered by API Gateway)",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/GatewayUnauthorized"}}},
            },
        },
        "securitySchemes": _security_schemes(),
    }
    missing = [route.key for route in routes if route.key not in documented]
    return document, missing


def render(document: dict[str, Any]) -> str:
    """The document as committed: 2-space JSON, UTF-8, trailing newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def generate() -> tuple[str, list[str]]:
    """The rendered document and the not-yet-served ROUTES keys (warnings from imports muted)."""
    with warnings.catch_warnings():
        import authlib.deprecate  # noqa: F401  (it adds an "always" filter; ours must come after)

        warnings.filterwarnings("ignore", message="The httpx module is deprecated")
        document, missing = build_document()
    return render(document), missing


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack openapi", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DOCUMENT, help="where to write (default: docs/openapi.json)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if the file is stale")
    args = parser.parse_args(argv)
    return run(args.output, check=args.check)


def run(output: Path = DOCUMENT, *, check: bool = False) -> int:
    text, missing = generate()
    shown = output.relative_to(REPO) if output.is_relative_to(REPO) else output
    if check:
        current = output.read_text() if output.exists() else ""
        if current != text:
            print(f"{shown} is stale: run `make openapi`", file=sys.stderr)
            return 1
        print(f"{shown} is current", file=sys.stderr)
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    count = sum(len(item) for item in json.loads(text)["paths"].values())
    print(f"wrote {shown}: {count} operations", file=sys.stderr)
    if missing:
        print(f"not implemented yet (in ROUTES, left out): {', '.join(missing)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
