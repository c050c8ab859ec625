"""Flask wiring shared by every emulator: JSON answers, answering by raising, and the hooks for
latency, fault injection and request logging.

Rules:

* A guard that refuses a request raises :class:`Answer` (via :func:`abort_with`) carrying the exact
  response to send; views never receive a ``Response`` from a guard and never test for one.
* :func:`install_common` registers the hooks and the shared admin routes; admin routes (under
  ``/_admin``) are never delayed or faulted.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any, NoReturn

from flask import Flask, Response, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from devstack.emulators.common.state import EmulatorState, describe_request_body
from devstack.emulators.common.util import ADMIN_PREFIX, JSONDict

FaultResponder = Callable[[int, int], Response]


class Answer(HTTPException):
    """An early answer raised by a guard; the app sends ``response`` unchanged.

    ``outcome`` names it for the emulators' own call logs (e.g. ``invalid_grant``)."""

    def __init__(self, response: Response, outcome: str = "") -> None:
        super().__init__(response=response)
        self.response: Response = response
        self.code = response.status_code
        self.outcome = outcome


def abort_with(response: Response, outcome: str = "") -> NoReturn:
    """Stop handling the request and answer ``response`` as it is."""
    raise Answer(response, outcome)


def _answer(exc: Answer) -> Response:
    return exc.response


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    resp = jsonify(body)
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def empty_response(status: int = 204) -> Response:
    return Response(status=status)


def request_json_object() -> JSONDict | None:
    """The request body as a JSON object, or ``None`` when it is absent/invalid/not an object."""
    data = request.get_json(silent=True, force=True)
    return data if isinstance(data, dict) else None


def install_common(app: Flask, state: EmulatorState, fault_responder: FaultResponder) -> None:
    """Hooks for latency, fault injection and request logging, plus the shared admin routes."""
    from devstack.emulators.common.admin import admin_blueprint

    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.register_error_handler(Answer, _answer)

    @app.before_request
    def _before() -> ResponseReturnValue | None:
        g.started = time.monotonic()
        g.injected = False
        g.spike_ms = 0
        if request.path.startswith(ADMIN_PREFIX):
            return None
        delay, g.spike_ms = state.faults.delay_seconds(request.method, request.path)
        if delay:
            time.sleep(delay)
        decision = state.faults.decide(request.method, request.path)
        if decision is not None:
            status, retry_after = decision
            g.injected = True
            return fault_responder(status, retry_after)
        return None

    @app.after_request
    def _after(resp: Response) -> Response:
        if request.path.startswith(ADMIN_PREFIX):
            return resp
        if not getattr(g, "injected", False):
            lost = state.faults.decide_after(request.method, request.path)
            if lost is not None:  # handled, but the client gets an error instead of the answer
                g.injected = True
                resp = fault_responder(*lost)
        state.requests.add(_log_entry(state, resp))
        return resp

    app.register_blueprint(admin_blueprint(state))


def _log_entry(state: EmulatorState, resp: Response) -> JSONDict:
    entry: JSONDict = {
        "ts": state.now(),
        "method": request.method,
        "path": request.path,
        "query": request.args.to_dict(flat=False),
        "headers": {k: v for k, v in request.headers.items()},
        "status": resp.status_code,
        "injected": bool(getattr(g, "injected", False)),
        "spike_ms": int(getattr(g, "spike_ms", 0)),
        "elapsed_ms": round((time.monotonic() - getattr(g, "started", time.monotonic())) * 1000, 2),
    }
    entry.update(describe_request_body())
    if resp.mimetype == "application/json" and not resp.direct_passthrough:
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            entry["response_json"] = json.loads(resp.get_data())
    return entry
