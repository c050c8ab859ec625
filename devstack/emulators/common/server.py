"""Running an emulator: :class:`EmulatorServer` serves a Flask app on loopback in a background
thread; :class:`OAuthEmulator` adds the OAuth knobs and endpoint URLs the OAuth providers share;
:func:`run_standalone` is the ``python -m devstack.emulators.<name>`` entry point.

Rules: ``port=0`` picks a free port and ``base_url`` is known once :meth:`EmulatorServer.start`
returns; knobs are Python methods mirroring the admin API and take ``state.lock``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Self, TypeVar

from flask import Blueprint, Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from devstack.emulators.common.faults import FaultConfig
from devstack.emulators.common.http import FaultResponder, install_common
from devstack.emulators.common.oauth_server import OAuthServer, oauth_admin_blueprint
from devstack.emulators.common.oauth_state import OAuthState, TokenFactory
from devstack.emulators.common.state import EmulatorState
from devstack.emulators.common.util import ADMIN_PREFIX, LOOPBACK, JSONDict

C = TypeVar("C")


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


@dataclass(frozen=True)
class ProviderSpec:
    """What makes up an OAuth provider emulator: its state class (called with ``clients=``,
    ``users=``), OAuth server, fault answers, resource blueprint factories, the prefix of its
    settings (``GOOGLE_``) and its default OAuth client."""

    state: Callable[..., OAuthState[Any, Any, Any, Any]]
    oauth: type[OAuthServer[Any]]
    fault_responder: FaultResponder
    blueprints: tuple[Callable[[Any], Blueprint], ...]
    env_prefix: str
    default_client_id: str
    default_client_secret: str


class OAuthEmulator(EmulatorServer, Generic[C]):
    """An emulator with an OAuth server (see :mod:`devstack.emulators.common.oauth_server`).

    Subclasses set :attr:`SPEC`; ``C`` is their client record (the ``clients`` seed)."""

    state: OAuthState[Any, Any, Any, Any]
    SPEC: ClassVar[ProviderSpec]

    def __init__(
        self,
        host: str = LOOPBACK,
        port: int = 0,
        clients: Iterable[C] | None = None,
        users: Iterable[Mapping[str, Any]] | None = None,
    ) -> None:
        st = self.SPEC.state(clients=clients, users=users)
        super().__init__(create_oauth_app(st, self.SPEC), st, host=host, port=port)

    @property
    def authorize_url(self) -> str:
        return f"{self.base_url}{self.SPEC.oauth.authorize_path}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}{self.SPEC.oauth.token_path}"

    @property
    def revoke_url(self) -> str:
        return f"{self.base_url}{self.SPEC.oauth.revoke_path}"

    def api_urls(self) -> dict[str, tuple[str, str]]:
        """``{endpoints() key: (environment() name without prefix, URL)}`` beyond the OAuth ones."""
        return {}

    def environment(self, client_id: str | None = None, client_secret: str | None = None) -> dict[str, str]:
        """The settings (``shared.config.ProviderSettings`` env names) that point our code here."""
        p = self.SPEC.env_prefix
        env = {f"{p}AUTH_URL": self.authorize_url, f"{p}TOKEN_URL": self.token_url, f"{p}REVOKE_URL": self.revoke_url}
        env.update({f"{p}{name}": url for name, url in self.api_urls().values()})
        env[f"{p}CLIENT_ID"] = client_id if client_id is not None else self.SPEC.default_client_id
        env[f"{p}CLIENT_SECRET"] = client_secret if client_secret is not None else self.SPEC.default_client_secret
        return env

    def endpoints(self) -> dict[str, str]:
        out = {"base_url": self.base_url, "authorize": self.authorize_url}
        out.update({"token": self.token_url, "revoke": self.revoke_url})
        out.update({key: url for key, (_, url) in self.api_urls().items()})
        out["admin"] = f"{self.base_url}{ADMIN_PREFIX}"
        return out

    def set_consent(self, email: str | None, *, deny: bool, sticky: bool) -> None:
        """Who consents next (or always, ``sticky``); ``deny`` refuses one more consent."""
        with self.state.lock:
            if email:
                self.state.choose_consent_user(email, sticky=sticky)
            if deny:
                self.state.deny_next += 1

    def set_token_factory(self, factory: TokenFactory | None) -> None:
        """Issue codes and tokens made by ``factory`` (see :data:`TokenFactory`); ``None`` = the emulator's own."""
        with self.state.lock:
            self.state.token_factory = factory

    def token_requests(self, grant_type: str | None = None) -> list[JSONDict]:
        """The token endpoint's calls (``grant_type``, ``param_names``, ``status``, ``outcome``)."""
        with self.state.lock:
            return [dict(c) for c in self.state.token_calls if grant_type is None or c["grant_type"] == grant_type]

    def token_calls(self, grant_type: str | None = None) -> int:
        with self.state.lock:
            if grant_type is None:
                return sum(self.state.grant_counts.values())
            return self.state.grant_counts.get(grant_type, 0)


def create_oauth_app(state: OAuthState[Any, Any, Any, Any], spec: ProviderSpec) -> Flask:
    """An OAuth provider's app: the common hooks and admin routes, its OAuth server, one blueprint
    per resource, and the OAuth admin routes (clients, users, consent)."""
    app = Flask(f"{state.name}_emulator", static_folder=None)
    install_common(app, state, spec.fault_responder)
    app.register_blueprint(spec.oauth(state).blueprint())
    for make in spec.blueprints:
        app.register_blueprint(make(state))
    app.register_blueprint(oauth_admin_blueprint(state))
    return app


def run_standalone(
    name: str, description: str, make: Callable[[str, int], OAuthEmulator[Any]], argv: list[str] | None = None
) -> int:
    """``python -m devstack.emulators.<name>``: serve until interrupted, print one JSON line when ready."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--redirect-uri", action="append", default=[], help="register for the default client")
    args = parser.parse_args(argv)
    emu = make(args.host, args.port)
    for uri in args.redirect_uri:
        emu.state.add_client(emu.SPEC.default_client_id, emu.SPEC.default_client_secret, [uri])
    emu.start()
    print(json.dumps({name: emu.endpoints(), "client_id": emu.SPEC.default_client_id}), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    emu.stop()
    return 0
