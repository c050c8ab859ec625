"""What runs where: the local equivalent of the infra wiring, and how a function is invoked.

Three tables describe every event source of the system:

* :data:`ROUTES` — API Gateway (HTTP API) routes → Lambda function, with who may call each
  (:attr:`Route.who`: the JWT authorizer, and the platform scope on platform routes);
* :data:`QUEUE_WORKERS` — SQS queue → worker function (event source mappings);
* :data:`SCHEDULES` — EventBridge schedules → function.

A later issue that adds a function adds its module (``functions/<name>/handler.py``) and, if the
function is new to these tables, one line here. A route whose module does not exist yet answers
``501 {"message":"Not Implemented"}``; a queue whose worker does not exist yet is left alone.

The second half of the module is the "Lambda runtime" the gateway, pumps and scheduler share:
:func:`load_handler` imports ``functions.<name>.handler.lambda_handler`` in-process and
:class:`LambdaContext` stands in for the runtime's context object.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

ACCOUNT_ID: Final = "123456789012"  # moto's default account
DEFAULT_REGION: Final = "us-east-1"

Handler = Callable[[Any, Any], Any]

_VARIABLE = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)(\+?)\}$")
_METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"})


def handler_module(function: str) -> str:
    """The module that holds ``lambda_handler`` for ``function``."""
    return f"functions.{function}.handler"


@dataclass(frozen=True)
class Route:
    """One HTTP API route: ``method`` + ``path`` (API Gateway route-key syntax) → function.

    ``path`` follows API Gateway's rules: literal segments, whole-segment variables ``{name}`` and
    a final greedy ``{name+}``. A variable must be a whole segment (``/feeds/{token}``, not
    ``/feeds/{token}.ics``) because that is all API Gateway accepts, so the local table can be
    deployed as is. ``auth`` means the JWT authorizer guards the route; ``platform`` that it is a
    platform route (PRODUCT.md §2.9): the authorizer also requires the platform scope
    (``JWT_PLATFORM_SCOPE`` locally, ``authorizationScopes`` in AWS), so a mentor token gets 403.
    ``module`` overrides where the handler lives (tests point it at their own modules).
    """

    method: str
    path: str
    function: str
    auth: bool
    module: str | None = None
    platform: bool = False
    timeout_s: float = 29.0
    segments: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise ValueError(f"unsupported method {self.method!r}")
        if not self.path.startswith("/") or (self.path != "/" and self.path.endswith("/")):
            raise ValueError(f"route path must start with '/' and not end with one: {self.path!r}")
        segments = tuple(s for s in self.path.split("/")[1:] if s) if self.path != "/" else ()
        for i, segment in enumerate(segments):
            if "{" in segment or "}" in segment:
                match = _VARIABLE.match(segment)
                if match is None:
                    raise ValueError(f"path variable must be a whole segment ({{name}} or {{name+}}): {self.path!r}")
                if match.group(2) and i != len(segments) - 1:
                    raise ValueError(f"greedy variable must be the last segment: {self.path!r}")
        if self.platform and not self.auth:
            raise ValueError(f"a platform route needs the JWT authorizer: {self.path!r}")
        object.__setattr__(self, "segments", segments)

    @property
    def who(self) -> str:
        """Who the gateway lets through: ``platform`` (JWT with the platform scope), ``mentor`` (any
        JWT of the issuer; the function refuses a platform token) or ``public`` (the function
        authenticates: signature, state, feed or booking token, or a JWT it verifies itself)."""
        return "platform" if self.platform else ("mentor" if self.auth else "public")

    @property
    def key(self) -> str:
        """The route key, as in ``requestContext.routeKey`` (``"GET /connections/{provider}"``)."""
        return f"{self.method} {self.path}"

    @property
    def handler_module(self) -> str:
        return self.module or handler_module(self.function)

    def match(self, path: str) -> dict[str, str] | None:
        """Path parameters if ``path`` (already percent-decoded, no query) matches, else ``None``."""
        parts = path.split("/")[1:] if path != "/" else []
        params: dict[str, str] = {}
        for i, segment in enumerate(self.segments):
            variable = _VARIABLE.match(segment)
            if variable and variable.group(2):  # greedy: the rest of the path, at least one segment
                rest = parts[i:]
                if not rest or not rest[0]:
                    return None
                params[variable.group(1)] = "/".join(rest)
                return params
            if i >= len(parts):
                return None
            if variable:
                if not parts[i]:
                    return None
                params[variable.group(1)] = parts[i]
            elif parts[i] != segment:
                return None
        return params if len(parts) == len(self.segments) else None

    def specificity(self) -> tuple[int, ...]:
        """Sort key: literal segments beat variables, variables beat greedy ones, methods beat ANY."""
        rank = []
        for segment in self.segments:
            variable = _VARIABLE.match(segment)
            rank.append(0 if variable is None else (2 if variable.group(2) else 1))
        return (*rank, 1 if self.method == "ANY" else 0)


@dataclass(frozen=True)
class QueueWorker:
    """An SQS event source mapping: messages of ``queue`` (local queue name) → ``function``."""

    queue: str
    function: str
    module: str | None = None
    batch_size: int = 10
    timeout_s: float = 60.0

    @property
    def handler_module(self) -> str:
        return self.module or handler_module(self.function)


@dataclass(frozen=True)
class Schedule:
    """An EventBridge schedule: ``function`` every ``interval_s`` seconds (``rate(...)``)."""

    name: str
    function: str
    interval_s: float
    module: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 60.0

    @property
    def handler_module(self) -> str:
        return self.module or handler_module(self.function)


def _mentor(method: str, path: str, function: str) -> Route:
    return Route(method, path, function, auth=True)


def _platform(method: str, path: str, function: str) -> Route:
    return Route(method, path, function, auth=True, platform=True)


def _public(method: str, path: str, function: str) -> Route:
    return Route(method, path, function, auth=False)


#: Every route of PRODUCT.md §3.
ROUTES: Final[tuple[Route, ...]] = (
    # connections_api — /connections/* (mentor, JWT)
    _mentor("GET", "/connections", "connections_api"),
    _mentor("POST", "/connections/{provider}/authorize", "connections_api"),  # google, zoom, microsoft
    _mentor("POST", "/connections/{provider}/complete", "connections_api"),  # google, zoom, microsoft: {pending}
    _mentor("POST", "/connections/apple", "connections_api"),
    _mentor("GET", "/connections/google/calendars", "connections_api"),
    _mentor("PUT", "/connections/google/calendar", "connections_api"),
    _mentor("GET", "/connections/microsoft/calendars", "connections_api"),
    _mentor("PUT", "/connections/microsoft/calendar", "connections_api"),
    _mentor("DELETE", "/connections/{provider}", "connections_api"),  # ?revoke=true
    # mentors_api — /mentors/me/* (mentor, JWT), /mentors/{mentorId}/slots (platform)
    _mentor("GET", "/mentors/me/busy", "mentors_api"),
    _mentor("GET", "/mentors/me/feed", "mentors_api"),
    _mentor("POST", "/mentors/me/feed/rotate", "mentors_api"),
    _mentor("GET", "/mentors/me/availability", "mentors_api"),
    _mentor("PUT", "/mentors/me/availability", "mentors_api"),
    _platform("GET", "/mentors/{mentorId}/slots", "mentors_api"),  # JWT + platform scope
    # oauth_callback — the browser comes back from Google / Zoom / Microsoft (no JWT: `state` binds the mentor)
    _public("GET", "/oauth/{provider}/callback", "oauth_callback"),
    # classes_api — classes (mentor) and bookings
    _mentor("POST", "/classes", "classes_api"),
    _mentor("GET", "/classes/{id}", "classes_api"),
    _mentor("PATCH", "/classes/{id}/sessions/{sid}", "classes_api"),
    _mentor("DELETE", "/classes/{id}/sessions/{sid}", "classes_api"),
    # POST /bookings is a *platform* route (checkout creates the booking): JWT + platform scope.
    _platform("POST", "/bookings", "classes_api"),
    _platform("POST", "/private-sessions", "classes_api"),  # JWT + platform scope (PRODUCT.md §2.10)
    # "platform, mentor or booking token": an HTTP API authorizer is all-or-nothing per route, so
    # these routes have none and the handler checks the booking token or the bearer JWT itself.
    _public("GET", "/bookings/{id}", "classes_api"),
    _public("POST", "/bookings/{id}/cancel", "classes_api"),
    # webhooks — signed by the provider, verified in the handler
    _public("POST", "/webhooks/stripe", "stripe_webhook"),
    _public("POST", "/webhooks/zoom", "provider_webhooks"),
    _public("POST", "/webhooks/google", "provider_webhooks"),
    _public("POST", "/webhooks/microsoft", "provider_webhooks"),  # clientState checked per notification
    # calendar_feed — GET /feeds/<token>.ics: API Gateway variables are whole segments, so the
    # route is /feeds/{token} and pathParameters.token is "<token>.ics" (the handler strips it).
    _public("GET", "/feeds/{token}", "calendar_feed"),
)

#: Queue (local name, see devstack.aws) → worker function.
QUEUE_WORKERS: Final[tuple[QueueWorker, ...]] = (
    QueueWorker("meetings", "mint_meeting"),
    QueueWorker("busy-sync", "busy_sync"),
)

#: Schedules: calendar_poll fans out one busy sync per calendar connection every 5 minutes (infra's
#: ``pollIntervalMinutes`` defaults to this interval; ``LocalStack(schedule_intervals=...)`` overrides
#: it locally, ``local_stack.tick("calendar-poll")`` fires it now).
SCHEDULES: Final[tuple[Schedule, ...]] = (Schedule("calendar-poll", "calendar_poll", interval_s=300, timeout_s=120),)


# --- the in-process "Lambda runtime" ----------------------------------------------------------


class FunctionNotFoundError(LookupError):
    """The function's handler module does not exist (yet)."""


def load_handler(module: str) -> Handler:
    """Import ``module`` and return its ``lambda_handler``.

    Raises :class:`FunctionNotFoundError` only when the module itself (or one of its packages) is
    missing; an import error *inside* an existing module propagates (that is a bug, not a gap).
    """
    try:
        imported = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        parts = module.split(".")
        prefixes = {".".join(parts[: i + 1]) for i in range(len(parts))}
        if exc.name in prefixes:
            raise FunctionNotFoundError(module) from exc
        raise
    handler = getattr(imported, "lambda_handler", None)
    if not callable(handler):
        raise FunctionNotFoundError(f"{module}.lambda_handler")
    return handler  # type: ignore[no-any-return]


class _ThreadLocalRequestState(type):
    """Metaclass giving ``BaseRouter.current_event`` / ``lambda_context`` one value per thread.

    Powertools keeps the request being resolved in *class* attributes of ``BaseRouter`` (so that
    ``Router`` instances see it). A Lambda process serves one request at a time, so that is fine in
    AWS; the local gateway serves concurrent requests from threads of one process, where two
    requests would read each other's event (a Stripe event processed twice, another lost). Data
    descriptors on the metaclass win over the class ``__dict__`` for both reads and assignments,
    so Powertools' own ``BaseRouter.current_event = ...`` lands in thread-local storage.
    """

    _local = threading.local()

    @property
    def current_event(cls) -> Any:
        return getattr(_ThreadLocalRequestState._local, "current_event", None)

    @current_event.setter
    def current_event(cls, value: Any) -> None:
        _ThreadLocalRequestState._local.current_event = value

    @property
    def lambda_context(cls) -> Any:
        return getattr(_ThreadLocalRequestState._local, "lambda_context", None)

    @lambda_context.setter
    def lambda_context(cls, value: Any) -> None:
        _ThreadLocalRequestState._local.lambda_context = value


class _InstanceView:
    """Instance-side read of the thread-local value (``self.current_event`` inside the resolver)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        return getattr(_ThreadLocalRequestState._local, self.name, None)


def isolate_request_state() -> None:
    """Make Powertools' per-request class state thread-local in this process (idempotent; local only)."""
    from aws_lambda_powertools.event_handler import api_gateway

    router = api_gateway.BaseRouter
    if isinstance(router, _ThreadLocalRequestState):
        return
    meta = type(router)
    patched = type("ThreadLocalRequestState", (_ThreadLocalRequestState, meta), {}) if meta is not type else None
    for name in ("current_event", "lambda_context"):
        setattr(router, name, _InstanceView(name))  # before the swap: afterwards the metaclass owns assignment
    router.__class__ = patched or _ThreadLocalRequestState  # type: ignore[method-assign]


class Containers:
    """Lambda's concurrency model for one function: a container serves one request at a time, and
    concurrent requests get more containers.

    A handler module holds per-container state (a Powertools resolver keeps the current event on
    ``app``), so two threads must never run the same module object at once. The first container is
    the module as imported (``sys.modules``, looked up on every request, so a sequential caller sees
    exactly what :func:`load_handler` returns, monkeypatches included); while it is busy, another
    request runs in a private copy of the module (executed afresh from the same file, not
    registered in ``sys.modules``), kept for reuse. ``shared.*`` modules are shared by all copies.
    """

    def __init__(self, module: str) -> None:
        isolate_request_state()  # Powertools' class-level request state, per thread (see there)
        self.module = module
        self._lock = threading.Lock()
        self._primary_busy = False
        self._idle: list[Handler] = []
        self.copies = 0

    @contextmanager
    def handler(self) -> Iterator[Handler]:
        """A handler no other thread is running; raises :class:`FunctionNotFoundError` like :func:`load_handler`."""
        with self._lock:
            primary = not self._primary_busy
            if primary:
                self._primary_busy = True
            spare = None if primary or not self._idle else self._idle.pop()
        if primary:
            try:
                yield load_handler(self.module)
            finally:
                with self._lock:
                    self._primary_busy = False
            return
        found = spare or self._copy()
        try:
            yield found
        finally:
            with self._lock:
                self._idle.append(found)

    def _copy(self) -> Handler:
        load_handler(self.module)  # the module exists (FunctionNotFoundError otherwise)
        spec = importlib.util.find_spec(self.module)
        if spec is None or spec.loader is None:
            raise FunctionNotFoundError(self.module)
        copy = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(copy)
        with self._lock:
            self.copies += 1
        return copy.lambda_handler  # type: ignore[no-any-return]


def function_exists(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


class LambdaContext:
    """What the Lambda runtime passes as ``context`` (the attributes Powertools reads)."""

    def __init__(
        self,
        function_name: str,
        *,
        timeout_s: float = 30.0,
        memory_limit_in_mb: int = 512,
        region: str = DEFAULT_REGION,
        account_id: str = ACCOUNT_ID,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def invoke(module: str, function: str, event: Any, *, timeout_s: float, region: str = DEFAULT_REGION) -> Any:
    """Invoke ``module.lambda_handler(event, context)`` in this process and return its result."""
    handler = load_handler(module)
    return handler(event, LambdaContext(function, timeout_s=timeout_s, region=region))
