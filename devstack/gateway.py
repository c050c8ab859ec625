"""A local API Gateway HTTP API (payload format 2.0) in front of the real handlers, in-process.

Each request is matched against the route table (:mod:`devstack.routes`), checked by the JWT
authorizer when the route has one, turned into the exact v2 event API Gateway sends, handed to
``functions.<name>.handler.lambda_handler`` and the result is mapped back to HTTP by the v2
rules. Gateway-made answers are API Gateway's own::

    no route                    404 {"message":"Not Found"}
    JWT missing or invalid      401 {"message":"Unauthorized"}   (handler not invoked)
    platform route, no scope    403 {"error":{"code":"insufficient_scope",…}}  (AWS: {"message":"Forbidden"})
    body over 10 MB             413 {"message":"Request Entity Too Large"}
    handler raised / malformed  500 {"message":"Internal Server Error"}   (logged)
    function not written yet    501 {"message":"Not Implemented"}         (local only)

The gateway also serves the local issuer's public keys at ``GET /.well-known/jwks.json``.

Requests are served concurrently, and like Lambda a function's "container" serves one request at a
time: concurrent requests to one function run in separate copies of its handler module
(:class:`devstack.routes.Containers`), never through the same Powertools resolver at once.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qsl, unquote

from devstack.routes import ACCOUNT_ID, DEFAULT_REGION, Containers, FunctionNotFoundError, LambdaContext, Route
from shared.platform.scopes import token_scopes

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 10 * 1024 * 1024
JWKS_PATH: Final = "/.well-known/jwks.json"
#: Content types API Gateway passes as text; every other body arrives base64-encoded.
_TEXT_TYPES: Final = ("application/json", "application/javascript", "application/xml")
_TEXT_SUFFIXES: Final = ("+json", "+xml")

Verifier = Callable[[str], dict[str, Any]]


@dataclass(frozen=True)
class HttpRequest:
    method: str
    target: str  # path + "?" + query, as on the request line
    headers: list[tuple[str, str]]
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class MalformedResponseError(ValueError):
    """The handler's result is not a valid payload-2.0 response."""


def _message(status: int, message: str, extra: Iterable[tuple[str, str]] = ()) -> HttpResponse:
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return HttpResponse(status, [("content-type", "application/json"), *extra], body)


def insufficient_scope(required: str) -> HttpResponse:
    """A valid token without the route's scope. API Gateway answers 403 ``{"message":"Forbidden"}``
    (HTTP APIs cannot customise it); locally the contract's envelope is answered instead, with the
    same status and ``WWW-Authenticate`` (README, "Where the local stack differs")."""
    envelope = {
        "error": {
            "code": "insufficient_scope",
            "message": "This route is for the platform: the token lacks the platform scope.",
        }
    }
    challenge = f'Bearer scope="{required}" error="insufficient_scope"'
    body = json.dumps(envelope, separators=(",", ":")).encode()
    return HttpResponse(403, [("content-type", "application/json"), ("www-authenticate", challenge)], body)


def _platform_scope() -> str:
    from shared.platform.config import AuthSettings, settings

    return settings(AuthSettings).jwt_platform_scope


def is_text(content_type: str | None) -> bool:
    """Whether API Gateway hands a body of this content type to the function as text."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media in _TEXT_TYPES or media.endswith(_TEXT_SUFFIXES)


def claim_string(value: Any) -> str:
    """A claim value as API Gateway's JWT authorizer delivers it: always a string
    (numbers and booleans in JSON spelling, lists as ``[a b]``, objects as ``map[k:v]``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + " ".join(claim_string(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{claim_string(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def _utf8(body: bytes) -> str | None:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _request_id() -> str:
    return base64.b64encode(secrets.token_bytes(10)).decode()


def _trace_id(now: float) -> str:
    return f"Root=1-{int(now):08x}-{secrets.token_hex(12)}"


def build_event(
    route: Route,
    path_parameters: dict[str, str],
    request: HttpRequest,
    *,
    claims: dict[str, Any] | None,
    api_id: str,
    account_id: str = ACCOUNT_ID,
    server_port: int = 443,
    request_id: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The payload-2.0 event API Gateway sends for ``request`` matched to ``route``."""
    now = time.time() if now is None else now
    request_id = request_id or _request_id()
    raw_path, _, raw_query = request.target.partition("?")
    raw_query = raw_query.partition("#")[0]

    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    forwarded = headers.get("x-forwarded-for")
    headers["x-forwarded-for"] = f"{forwarded}, {request.source_ip}" if forwarded else request.source_ip
    headers["x-forwarded-port"] = str(server_port)
    headers["x-forwarded-proto"] = "http"
    headers.setdefault("x-amzn-trace-id", _trace_id(now))

    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value

    domain = headers.get("host", f"{api_id}.execute-api.{DEFAULT_REGION}.amazonaws.com").rsplit(":", 1)[0]
    stamp = datetime.fromtimestamp(now, UTC)
    context: dict[str, Any] = {
        "accountId": account_id,
        "apiId": api_id,
        "domainName": domain,
        "domainPrefix": domain.split(".", 1)[0],
        "http": {
            "method": request.method,
            "path": unquote(raw_path),
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route.key,
        "stage": "$default",
        "time": stamp.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now * 1000),
    }
    if claims is not None:
        scopes = token_scopes(claims)
        context["authorizer"] = {
            "jwt": {
                "claims": {k: claim_string(v) for k, v in claims.items()},
                "scopes": sorted(scopes) if scopes else None,
            }
        }

    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = context
    if path_parameters:
        event["pathParameters"] = path_parameters
    is_base64 = False
    if request.body:
        text = _utf8(request.body) if is_text(headers.get("content-type")) else None
        if text is not None:
            event["body"] = text
        else:
            # A text type whose bytes are not UTF-8 goes base64 too: the function sees exactly what was
            # sent (and refuses it), rather than a string whose bad bytes became U+FFFD.
            event["body"] = base64.b64encode(request.body).decode("ascii")
            is_base64 = True
    event["isBase64Encoded"] = is_base64
    return event


def to_http_response(result: Any) -> HttpResponse:
    """Map a function's result to HTTP by the payload-2.0 rules.

    A dict with ``statusCode`` is a response (``headers``, ``cookies``, ``body``,
    ``isBase64Encoded``; API Gateway ignores ``multiValueHeaders`` in 2.0, and so do we). Anything
    else that serialises to JSON is a 200 ``application/json`` body (a string as is).
    Raises :class:`MalformedResponseError` when API Gateway would answer 500.
    """
    if not (isinstance(result, dict) and "statusCode" in result):
        try:
            body = result if isinstance(result, str) else json.dumps(result)
        except (TypeError, ValueError) as exc:
            raise MalformedResponseError(f"result is not JSON-serialisable: {exc}") from exc
        return HttpResponse(200, [("content-type", "application/json")], body.encode())

    status = result["statusCode"]
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise MalformedResponseError(f"invalid statusCode {status!r}")
    raw_headers = result.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise MalformedResponseError("headers must be an object")
    if result.get("multiValueHeaders"):
        log.warning("multiValueHeaders is ignored with payload format 2.0; use headers or cookies")
    headers = [(str(k), claim_string(v)) for k, v in raw_headers.items()]
    cookies: Any = result.get("cookies") or []
    if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
        raise MalformedResponseError("cookies must be a list of strings")
    headers.extend(("set-cookie", str(c)) for c in cookies)
    raw_body = result.get("body")
    if raw_body is None:
        payload = b""
    elif not isinstance(raw_body, str):
        raise MalformedResponseError(f"body must be a string, not {type(raw_body).__name__}")
    elif result.get("isBase64Encoded"):
        try:
            payload = base64.b64decode(raw_body, validate=True)
        except binascii.Error as exc:
            raise MalformedResponseError("isBase64Encoded body is not base64") from exc
    else:
        payload = raw_body.encode()
    return HttpResponse(status, headers, payload)


class ApiGateway:
    """The routing, authorizer and integration logic (no sockets: see :class:`GatewayServer`)."""

    def __init__(
        self,
        routes: Sequence[Route],
        verifier: Verifier,
        *,
        api_id: str = "devstack",
        region: str = DEFAULT_REGION,
        account_id: str = ACCOUNT_ID,
        jwks: Callable[[], dict[str, Any]] | None = None,
        server_port: int = 443,
        platform_scope: Callable[[], str] = _platform_scope,
    ) -> None:
        keys = [r.key for r in routes]
        duplicates = {k for k in keys if keys.count(k) > 1}
        if duplicates:
            raise ValueError(f"duplicate routes: {sorted(duplicates)}")
        self.routes = list(routes)
        self.verifier = verifier
        self.api_id = api_id
        self.region = region
        self.account_id = account_id
        self.jwks = jwks
        self.server_port = server_port
        self.platform_scope = platform_scope
        self._containers: dict[str, Containers] = {}
        self._containers_lock = threading.Lock()

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The most specific route for ``method`` and the decoded ``path``, with its parameters."""
        found: list[tuple[tuple[int, ...], Route, dict[str, str]]] = []
        for route in self.routes:
            if route.method not in (method, "ANY"):
                continue
            params = route.match(path)
            if params is not None:
                found.append((route.specificity(), route, params))
        if not found:
            return None
        _, route, params = min(found, key=lambda item: item[0])
        return route, params

    def authorize(self, request: HttpRequest) -> dict[str, Any] | HttpResponse:
        """Claims of the request's bearer token, or the 401 API Gateway answers."""
        values = [v for k, v in request.headers if k.lower() == "authorization"]
        if not values or not values[0].strip():
            return _message(401, "Unauthorized")
        token = values[0].strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        try:
            return self.verifier(token)
        except Exception as exc:
            log.info("JWT authorizer rejected a token: %s", exc)
            description = str(exc).replace('"', "'")
            challenge = f'Bearer scope="" error="invalid_token" error_description="{description}"'
            return _message(401, "Unauthorized", [("www-authenticate", challenge)])

    def handle(self, request: HttpRequest) -> HttpResponse:
        request_id = _request_id()
        response = self._handle(request, request_id)
        response.headers.append(("apigw-requestid", request_id))
        return response

    def _handle(self, request: HttpRequest, request_id: str) -> HttpResponse:
        raw_path = request.target.partition("?")[0]
        if request.method == "GET" and raw_path == JWKS_PATH and self.jwks is not None:
            return HttpResponse(200, [("content-type", "application/json")], json.dumps(self.jwks()).encode())
        matched = self.match(request.method, unquote(raw_path))
        if matched is None:
            return _message(404, "Not Found")
        route, params = matched
        if len(request.body) > MAX_BODY_BYTES:
            return _message(413, "Request Entity Too Large")
        claims: dict[str, Any] | None = None
        if route.auth:
            outcome = self.authorize(request)
            if isinstance(outcome, HttpResponse):
                return outcome
            claims = outcome
            # API Gateway's authorizationScopes: the token must carry one of the route's scopes.
            if route.platform:
                required = self.platform_scope()
                if required not in token_scopes(claims):
                    return insufficient_scope(required)
        event = build_event(
            route,
            {k: unquote(v) for k, v in params.items()},
            request,
            claims=claims,
            api_id=self.api_id,
            account_id=self.account_id,
            server_port=self.server_port,
            request_id=request_id,
        )
        try:
            with self.containers(route.handler_module).handler() as handler:
                return self._invoke(route, handler, event)
        except FunctionNotFoundError:
            return _message(501, "Not Implemented")
        except Exception:
            log.exception("%s: cannot import %s", route.key, route.handler_module)
            return _message(500, "Internal Server Error")

    def containers(self, module: str) -> Containers:
        """The function's containers (one request at a time each, as in Lambda)."""
        with self._containers_lock:
            found = self._containers.get(module)
            if found is None:
                found = self._containers[module] = Containers(module)
            return found

    def _invoke(self, route: Route, handler: Any, event: dict[str, Any]) -> HttpResponse:
        context = LambdaContext(
            route.function, timeout_s=route.timeout_s, region=self.region, account_id=self.account_id
        )
        started = time.monotonic()
        try:
            result = handler(event, context)
        except Exception:
            log.exception("%s: %s raised", route.key, route.function)
            return _message(500, "Internal Server Error")
        elapsed = time.monotonic() - started
        if elapsed > route.timeout_s:
            log.warning("%s took %.1f s, over its %.0f s timeout", route.key, elapsed, route.timeout_s)
        try:
            return to_http_response(result)
        except MalformedResponseError as exc:
            log.error("%s: malformed Lambda response: %s", route.key, exc)
            return _message(500, "Internal Server Error")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # listen backlog: a burst of clients must queue, not be reset (default 5)
    gateway: ApiGateway


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server_version = "devstack-apigw"
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """The access log names the route key (the template), never the raw path or query: feed and
        booking tokens travel in them (API Gateway's access log in the stack does the same)."""
        matched = self.server.gateway.match(self.command, unquote(self.path.partition("?")[0]))
        route = matched[0].key if matched else f"{self.command} (no route)"
        log.debug("%s %s %s", self.address_string(), route, code)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except ValueError:
            self.send_error(400)
            return
        request = HttpRequest(
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
        )
        response = self.server.gateway.handle(request)
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        self.send_header("content-length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def __getattr__(self, name: str) -> Any:
        """Any other method (TRACE, QUERY, …) goes through the gateway too, which answers it like API
        Gateway (404 ``{"message":"Not Found"}``: no route has it), not http.server's 501 HTML page."""
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)


class GatewayServer:
    """:class:`ApiGateway` behind a threaded HTTP server on loopback."""

    name = "api"

    def __init__(
        self,
        routes: Sequence[Route],
        verifier: Verifier,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        jwks: Callable[[], dict[str, Any]] | None = None,
        region: str = DEFAULT_REGION,
        api_id: str = "devstack",
    ) -> None:
        self.gateway = ApiGateway(routes, verifier, jwks=jwks, region=region, api_id=api_id)
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        server = _Server((self.host, self.port), _RequestHandler)
        server.gateway = self.gateway
        self.port = server.server_address[1]
        self.gateway.server_port = self.port
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="devstack-gateway", daemon=True
        )
        self._thread.start()
        log.debug("API gateway listening on %s (pid %d)", self.url, os.getpid())

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def endpoints(self) -> dict[str, str]:
        return {"api": self.url, "jwks": self.url + JWKS_PATH}

    def environment(self) -> dict[str, str]:
        return {"API_URL": self.url}
