"""Shared machinery for the provider emulators.

Every emulator is a Flask app plus an :class:`EmulatorServer` that runs it on loopback in a
background thread (werkzeug ``make_server(..., threaded=True)``). State lives in an object
derived from :class:`EmulatorState`, guarded by one re-entrant lock.

What lives here:

* :class:`Clock` - wall clock with an adjustable offset, so tests can age tokens and codes.
* :class:`FaultConfig` / :class:`FaultInjector` - added latency, latency *spikes* (a fraction
  ``spike_rate`` of requests held ``spike_min_ms``-``spike_ms`` longer) and injected 429/500
  answers, drawn from seeded RNGs (reproducible), plus "force the next N answers" rules. A forced rule
  with ``after=True`` lets the request be processed first and then replaces the answer (a lost
  response: the change was made, the client sees an error), which is what makes a blind retry of a
  non-idempotent call create twice.
* :class:`RequestLog` - every request (method, path, query, body, status) for the admin API.
* :func:`install_common` - before/after-request hooks (latency, faults, logging) and the
  admin routes every emulator shares (``/_admin/state``, ``/_admin/faults``, ...).
  Admin routes are never delayed or faulted.
* small helpers: PKCE S256, HTTP Basic parsing, RFC 3339 formatting, random identifiers.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import random
import secrets
import string
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Self
from urllib.parse import unquote_plus

from flask import Flask, Response, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

LOOPBACK = "127.0.0.1"
ADMIN_PREFIX = "/_admin"

JSONDict = dict[str, Any]


# --------------------------------------------------------------------------------------------
# time
# --------------------------------------------------------------------------------------------


class Clock:
    """Wall clock (seconds since the epoch) with an offset tests can move forward."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._offset += seconds
            return self._offset

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0

    @property
    def offset(self) -> float:
        with self._lock:
            return self._offset


def utc_from_ts(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def rfc3339_millis(ts: float) -> str:
    """``2024-05-01T10:00:00.000Z`` - the form Google uses for created/updated/timeMin."""
    d = utc_from_ts(ts)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def rfc3339_seconds(ts: float) -> str:
    """``2024-05-01T10:00:00Z`` - the form Zoom uses for start_time/created_at."""
    return utc_from_ts(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def http_date(ts: float) -> str:
    """RFC 7231 IMF-fixdate, e.g. ``Tue, 19 Nov 2013 01:13:52 GMT``."""
    return utc_from_ts(ts).strftime("%a, %d %b %Y %H:%M:%S GMT")


def parse_rfc3339(value: str) -> datetime | None:
    """Parse an RFC 3339 timestamp; ``None`` when malformed. Naive results keep no tzinfo."""
    try:
        return datetime.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        return None


# --------------------------------------------------------------------------------------------
# random identifiers
# --------------------------------------------------------------------------------------------

_ALNUM = string.ascii_letters + string.digits


def random_urlsafe(nbytes: int) -> str:
    return secrets.token_urlsafe(nbytes)


def random_alnum(length: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def random_from(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def fake_jwt(claims: JSONDict, header: JSONDict | None = None) -> str:
    """A JWT-shaped string (header.payload.signature). The signature is random bytes:
    it looks like a provider token but cannot be verified - it is an opaque token here."""
    hdr = header or {"alg": "HS512", "typ": "JWT"}
    return ".".join(
        [
            b64url(json.dumps(hdr, separators=(",", ":")).encode()),
            b64url(json.dumps(claims, separators=(",", ":")).encode()),
            b64url(secrets.token_bytes(32)),
        ]
    )


# --------------------------------------------------------------------------------------------
# OAuth helpers
# --------------------------------------------------------------------------------------------


def pkce_s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))."""
    return b64url(hashlib.sha256(verifier.encode("ascii", errors="replace")).digest())


def pkce_matches(challenge: str, method: str, verifier: str) -> bool:
    if method == "S256":
        return secrets.compare_digest(pkce_s256(verifier), challenge)
    if method == "plain":
        return secrets.compare_digest(verifier, challenge)
    return False


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """``Authorization: Basic base64(id:secret)``. RFC 6749 §2.3.1 form-encodes both parts
    before base64; decoding them is harmless for ids/secrets that need no encoding."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        raw = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if ":" not in raw:
        return None
    user, _, pwd = raw.partition(":")
    return unquote_plus(user), unquote_plus(pwd)


def parse_bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def basic_auth_header(client_id: str, client_secret: str) -> str:
    raw = f"{client_id}:{client_secret}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def token_hint(token: str) -> str:
    """First characters of a token, enough to correlate in logs without the whole value."""
    return token[:12] + "…" if len(token) > 12 else token


# --------------------------------------------------------------------------------------------
# fault injection
# --------------------------------------------------------------------------------------------


@dataclass
class ForcedFault:
    """Answer the next ``count`` matching requests with ``status`` (deterministic).

    ``after=False`` (default): instead of handling the request (nothing changes). ``after=True``:
    after handling it (the change is made, the answer is lost).
    """

    status: int
    count: int = 1
    path_prefix: str = ""
    method: str = ""
    retry_after: int | None = None
    after: bool = False


@dataclass
class FaultConfig:
    latency_ms: int = 0
    # Latency spikes: this fraction of eligible requests waits an extra delay drawn uniformly from
    # [spike_min_ms, spike_ms] (on top of latency_ms, before any injected answer). Spikes use their
    # own RNG (seeded from ``seed``), so switching them on leaves the 429/500 sequence unchanged.
    spike_rate: float = 0.0
    spike_ms: int = 0
    spike_min_ms: int = 0
    rate_429: float = 0.0
    rate_500: float = 0.0
    seed: int = 0
    retry_after: int = 1
    # Only requests whose path starts with one of these are eligible ([] = every
    # non-admin path).
    paths: list[str] = field(default_factory=list)
    forced: list[ForcedFault] = field(default_factory=list)

    def to_json(self) -> JSONDict:
        return asdict(self)


#: Mixed into the seed of the spike RNG, so spikes and injected answers draw independent sequences.
_SPIKE_SALT = 0x5B1CE


class FaultInjector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.config = FaultConfig()
        self._rng = random.Random(0)  # noqa: S311 - test fault injection, not crypto
        self._spike_rng = random.Random(_SPIKE_SALT)  # noqa: S311
        self.injected: list[JSONDict] = []
        #: Every latency spike applied: method, path and the extra delay in milliseconds.
        self.spikes: list[JSONDict] = []

    def configure(self, **changes: Any) -> FaultConfig:
        with self._lock:
            forced = changes.pop("forced", None)
            unknown = [k for k in changes if k not in FaultConfig.__dataclass_fields__]
            if unknown:
                raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
            cfg = replace(self.config, **changes)
            if forced is not None:
                cfg.forced = [f if isinstance(f, ForcedFault) else ForcedFault(**f) for f in forced]
            if not (0.0 <= cfg.rate_429 <= 1.0 and 0.0 <= cfg.rate_500 <= 1.0 and cfg.rate_429 + cfg.rate_500 <= 1.0):
                raise ValueError("rate_429 and rate_500 must be within [0, 1] and sum to at most 1")
            if not 0.0 <= cfg.spike_rate <= 1.0:
                raise ValueError("spike_rate must be within [0, 1]")
            if not 0 <= cfg.spike_min_ms <= cfg.spike_ms or (cfg.spike_rate > 0 and cfg.spike_ms <= 0):
                raise ValueError("spikes need 0 <= spike_min_ms <= spike_ms and spike_ms > 0")
            self.config = cfg
            if "seed" in changes:
                self._rng = random.Random(cfg.seed)  # noqa: S311
                self._spike_rng = random.Random(cfg.seed ^ _SPIKE_SALT)  # noqa: S311
            return cfg

    def reset(self) -> None:
        with self._lock:
            self.config = FaultConfig()
            self._rng = random.Random(0)  # noqa: S311
            self._spike_rng = random.Random(_SPIKE_SALT)  # noqa: S311
            self.injected.clear()
            self.spikes.clear()

    def latency_seconds(self) -> float:
        with self._lock:
            return max(self.config.latency_ms, 0) / 1000.0

    def delay_seconds(self, method: str, path: str) -> tuple[float, int]:
        """How long to hold this request: ``(seconds, spike_ms)`` (``spike_ms`` 0 when no spike).

        ``latency_ms`` applies to every non-admin request; a spike only to requests the ``paths``
        filter admits, with probability ``spike_rate``.
        """
        with self._lock:
            cfg = self.config
            base = max(cfg.latency_ms, 0)
            spike = 0
            eligible = not cfg.paths or any(path.startswith(p) for p in cfg.paths)
            if eligible and cfg.spike_rate > 0 and self._spike_rng.random() < cfg.spike_rate:
                spike = self._spike_rng.randint(cfg.spike_min_ms, cfg.spike_ms)
                self.spikes.append({"method": method, "path": path, "spike_ms": spike})
            return (base + spike) / 1000.0, spike

    def _forced(self, method: str, path: str, *, after: bool) -> tuple[int, int] | None:
        """The first live forced rule of this phase matching the request (consumed), if any."""
        cfg = self.config
        for rule in cfg.forced:
            if rule.count <= 0 or rule.after is not after:
                continue
            if rule.path_prefix and not path.startswith(rule.path_prefix):
                continue
            if rule.method and rule.method.upper() != method.upper():
                continue
            rule.count -= 1
            cfg.forced = [r for r in cfg.forced if r.count > 0]
            ra = rule.retry_after if rule.retry_after is not None else cfg.retry_after
            entry: JSONDict = {"method": method, "path": path, "status": rule.status}
            if after:
                entry["after"] = True
            self.injected.append(entry)
            return rule.status, ra
        return None

    def decide_after(self, method: str, path: str) -> tuple[int, int] | None:
        """After the request was handled: ``(status, retry_after)`` to answer instead, or ``None``."""
        with self._lock:
            return self._forced(method, path, after=True)

    def decide(self, method: str, path: str) -> tuple[int, int] | None:
        """Return ``(status, retry_after)`` to inject, or ``None``."""
        with self._lock:
            cfg = self.config
            forced = self._forced(method, path, after=False)
            if forced is not None:
                return forced
            if cfg.paths and not any(path.startswith(p) for p in cfg.paths):
                return None
            if cfg.rate_429 <= 0 and cfg.rate_500 <= 0:
                return None
            r = self._rng.random()
            status: int | None = None
            if r < cfg.rate_429:
                status = 429
            elif r < cfg.rate_429 + cfg.rate_500:
                status = 500
            if status is None:
                return None
            self.injected.append({"method": method, "path": path, "status": status})
            return status, cfg.retry_after


# --------------------------------------------------------------------------------------------
# request log
# --------------------------------------------------------------------------------------------


class RequestLog:
    def __init__(self, maxlen: int = 5000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[JSONDict] = deque(maxlen=maxlen)
        self._seq = 0

    def add(self, entry: JSONDict) -> None:
        with self._lock:
            self._seq += 1
            entry["seq"] = self._seq
            self._entries.append(entry)

    def entries(self, path_prefix: str = "", method: str = "") -> list[JSONDict]:
        with self._lock:
            out = list(self._entries)
        if path_prefix:
            out = [e for e in out if str(e["path"]).startswith(path_prefix)]
        if method:
            out = [e for e in out if e["method"] == method.upper()]
        return out

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_BODY_CAP = 64 * 1024


def _describe_request_body() -> JSONDict:
    raw = request.get_data(cache=True)
    out: JSONDict = {"body": raw[:_BODY_CAP].decode("utf-8", errors="replace")}
    ctype = request.mimetype or ""
    if ctype == "application/json" or (raw[:1] in (b"{", b"[")):
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            out["json"] = json.loads(raw) if raw else None
    if ctype == "application/x-www-form-urlencoded":
        out["form"] = request.form.to_dict(flat=True)
    return out


# --------------------------------------------------------------------------------------------
# state base
# --------------------------------------------------------------------------------------------


class EmulatorState:
    """Base for the per-emulator state: lock, clock, faults, request log, base URL."""

    name = "emulator"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.clock = Clock()
        self.faults = FaultInjector()
        self.requests = RequestLog()
        self.base_url = ""

    def now(self) -> float:
        return self.clock.now()

    # Token operations the shared admin routes call; each emulator implements them.
    settings: Any
    deny_next: int

    def apply_settings(self, changes: Mapping[str, Any]) -> Any:
        """Set known settings (all or nothing); an unknown name raises ``ValueError``."""
        with self.lock:
            unknown = [key for key in changes if not hasattr(self.settings, key)]
            if unknown:
                raise ValueError(f"unknown setting {unknown[0]}")
            for key, value in changes.items():
                setattr(self.settings, key, value)
            return self.settings

    def revoke_token(self, token: str) -> bool:
        """Revoke one token server-side (and what the provider revokes with it)."""
        raise NotImplementedError

    def revoke_user(self, email: str) -> int:
        """Revoke every token of a user; returns how many."""
        raise NotImplementedError

    def expire_access_tokens(self, email: str | None = None, token: str | None = None) -> int:
        """Expire access tokens now (all, a user's, or one); returns how many."""
        raise NotImplementedError

    # Subclasses extend these.
    def snapshot(self) -> JSONDict:
        return {
            "emulator": self.name,
            "base_url": self.base_url,
            "clock_offset_seconds": self.clock.offset,
            "faults": self.faults.config.to_json(),
            "faults_injected": list(self.faults.injected),
            "latency_spikes": list(self.faults.spikes),
            "request_count": len(self.requests.entries()),
        }

    def reset(self) -> None:
        self.clock.reset()
        self.faults.reset()
        self.requests.clear()


# --------------------------------------------------------------------------------------------
# Flask wiring shared by both emulators
# --------------------------------------------------------------------------------------------

FaultResponder = Callable[[int, int], Response]


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
    app.json.sort_keys = False  # type: ignore[attr-defined]

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
        entry.update(_describe_request_body())
        if resp.mimetype == "application/json" and not resp.direct_passthrough:
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                entry["response_json"] = json.loads(resp.get_data())
        state.requests.add(entry)
        return resp

    # ---- admin: shared routes -----------------------------------------------------------

    @app.get(ADMIN_PREFIX)
    def _admin_index() -> ResponseReturnValue:
        routes = sorted(
            {
                f"{','.join(sorted((r.methods or set()) - {'HEAD', 'OPTIONS'}))} {r.rule}"
                for r in app.url_map.iter_rules()
            }
        )
        return json_response({"emulator": state.name, "base_url": state.base_url, "routes": routes})

    @app.get(f"{ADMIN_PREFIX}/health")
    def _admin_health() -> ResponseReturnValue:
        return json_response({"ok": True, "emulator": state.name, "base_url": state.base_url})

    @app.get(f"{ADMIN_PREFIX}/state")
    def _admin_state() -> ResponseReturnValue:
        with state.lock:
            return json_response(state.snapshot())

    @app.post(f"{ADMIN_PREFIX}/reset")
    def _admin_reset() -> ResponseReturnValue:
        with state.lock:
            state.reset()
        return json_response({"ok": True})

    @app.get(f"{ADMIN_PREFIX}/faults")
    def _admin_faults_get() -> ResponseReturnValue:
        return json_response(state.faults.config.to_json())

    @app.post(f"{ADMIN_PREFIX}/faults")
    def _admin_faults_set() -> ResponseReturnValue:
        body = request_json_object() or {}
        try:
            cfg = state.faults.configure(**body)
        except (TypeError, ValueError) as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response(cfg.to_json())

    @app.post(f"{ADMIN_PREFIX}/clock")
    def _admin_clock() -> ResponseReturnValue:
        body = request_json_object() or {}
        if body.get("reset"):
            state.clock.reset()
        offset = state.clock.advance(float(body.get("advance_seconds", 0)))
        return json_response({"offset_seconds": offset, "now": state.now()})

    @app.get(f"{ADMIN_PREFIX}/requests")
    def _admin_requests() -> ResponseReturnValue:
        return json_response(
            state.requests.entries(
                path_prefix=request.args.get("path_prefix", ""), method=request.args.get("method", "")
            )
        )

    @app.delete(f"{ADMIN_PREFIX}/requests")
    def _admin_requests_clear() -> ResponseReturnValue:
        state.requests.clear()
        return empty_response()

    @app.post(f"{ADMIN_PREFIX}/tokens/revoke")
    def _admin_revoke() -> ResponseReturnValue:
        body = request_json_object() or {}
        if body.get("token"):
            return json_response({"revoked": int(state.revoke_token(str(body["token"])))})
        if body.get("email"):
            return json_response({"revoked": state.revoke_user(str(body["email"]))})
        return json_response({"error": "give token or email"}, 400)

    @app.post(f"{ADMIN_PREFIX}/tokens/expire")
    def _admin_expire() -> ResponseReturnValue:
        body = request_json_object() or {}
        expired = state.expire_access_tokens(email=body.get("email"), token=body.get("token"))
        return json_response({"expired": expired})

    @app.post(f"{ADMIN_PREFIX}/settings")
    def _admin_settings() -> ResponseReturnValue:
        try:
            return json_response(asdict(state.apply_settings(request_json_object() or {})))
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)


# --------------------------------------------------------------------------------------------
# server wrapper
# --------------------------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class EmulatorServer:
    """Runs a Flask app on loopback in a background thread.

    ``port=0`` picks a free port; ``base_url`` is known once :meth:`start` returns.
    Usable as a context manager.
    """

    def __init__(self, app: Flask, state: EmulatorState, host: str = LOOPBACK, port: int = 0) -> None:
        self.app = app
        self.state = state
        self.host = host
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.server_port)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def deny_next_consent(self, count: int = 1) -> None:
        with self.state.lock:
            self.state.deny_next = count

    def revoke_token(self, token: str) -> bool:
        return self.state.revoke_token(token)

    def revoke_user_tokens(self, email: str) -> int:
        return self.state.revoke_user(email)

    def expire_access_tokens(self, email: str | None = None, token: str | None = None) -> int:
        return self.state.expire_access_tokens(email=email, token=token)

    def start(self) -> Self:
        if self._server is not None:
            return self
        server = make_server(self.host, self._port, self.app, threaded=True, request_handler=_QuietHandler)
        self._server = server
        self.state.base_url = self.base_url
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.state.name}-emulator",
            daemon=True,
        )
        self._thread.start()
        self._on_started()
        return self

    def _on_started(self) -> None:
        """Hook for subclasses (e.g. to start a push dispatcher)."""

    def _on_stopping(self) -> None:
        """Hook for subclasses."""

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._on_stopping()
        server.shutdown()
        if thread is not None:
            thread.join(timeout=5)
        server.server_close()
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- knobs shared by both emulators (Python API) -------------------------------------

    def set_faults(self, **changes: Any) -> FaultConfig:
        return self.state.faults.configure(**changes)

    def clear_faults(self) -> None:
        self.state.faults.reset()

    def advance_clock(self, seconds: float) -> None:
        self.state.clock.advance(seconds)

    def requests_log(self, path_prefix: str = "", method: str = "") -> list[JSONDict]:
        return self.state.requests.entries(path_prefix=path_prefix, method=method)

    def snapshot(self) -> JSONDict:
        with self.state.lock:
            return self.state.snapshot()

    def reset(self) -> None:
        with self.state.lock:
            self.state.reset()
