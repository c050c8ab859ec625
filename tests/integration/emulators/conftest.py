"""Fixtures for the emulator tests: one Google and one Zoom emulator per session (state reset
before every test), an httpx client, OAuth flow helpers and a loopback push receiver."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from devstack.emulators import GoogleEmulator, ZoomEmulator, pkce_s256
from devstack.emulators import google as g
from devstack.emulators import zoom as z

GOOGLE_SCOPES = f"openid email {g.SCOPE_EVENTS} {g.SCOPE_READONLY}"


@pytest.fixture(scope="session")
def google_emu() -> Iterator[GoogleEmulator]:
    # As in the local stack: the loopback push receivers below are http (Google itself takes https only).
    emu = GoogleEmulator(allow_http_loopback_push=True).start()
    yield emu
    emu.stop()


@pytest.fixture(scope="session")
def zoom_emu() -> Iterator[ZoomEmulator]:
    emu = ZoomEmulator().start()
    yield emu
    emu.stop()


@pytest.fixture
def google(google_emu: GoogleEmulator) -> GoogleEmulator:
    google_emu.reset()
    return google_emu


@pytest.fixture
def zoom(zoom_emu: ZoomEmulator) -> ZoomEmulator:
    zoom_emu.reset()
    return zoom_emu


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as client:
        yield client


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class PkcePair:
    verifier: str
    challenge: str


def new_pkce() -> PkcePair:
    verifier = secrets.token_urlsafe(48)
    return PkcePair(verifier, pkce_s256(verifier))


@pytest.fixture
def google_authorize(google: GoogleEmulator, http: httpx.Client) -> Callable[..., tuple[httpx.Response, PkcePair]]:
    """GET the authorize endpoint like a browser would; returns the 302 and the PKCE pair."""

    def run(**overrides: Any) -> tuple[httpx.Response, PkcePair]:
        pkce = new_pkce()
        params = {
            "client_id": g.DEFAULT_CLIENT_ID,
            "redirect_uri": g.DEFAULT_REDIRECT_URI,
            "response_type": "code",
            "scope": GOOGLE_SCOPES,
            "state": "state-" + secrets.token_hex(4),
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
            "access_type": "offline",
            "prompt": "consent",
        }
        params.update({k: v for k, v in overrides.items() if v is not None})
        for k in [k for k, v in overrides.items() if v is None]:
            params.pop(k, None)
        return http.get(google.authorize_url, params=params), pkce

    return run


@pytest.fixture
def google_tokens(
    google: GoogleEmulator, http: httpx.Client, google_authorize: Callable[..., tuple[httpx.Response, PkcePair]]
) -> Callable[..., dict[str, Any]]:
    """Full code + PKCE flow; returns the token response JSON."""

    def run(**authorize_overrides: Any) -> dict[str, Any]:
        resp, pkce = google_authorize(**authorize_overrides)
        assert resp.status_code == 302, resp.text
        code = query_of(resp.headers["location"])["code"]
        tok = http.post(
            google.token_url,
            data={
                "code": code,
                "client_id": g.DEFAULT_CLIENT_ID,
                "client_secret": g.DEFAULT_CLIENT_SECRET,
                "redirect_uri": g.DEFAULT_REDIRECT_URI,
                "grant_type": "authorization_code",
                "code_verifier": pkce.verifier,
            },
        )
        assert tok.status_code == 200, tok.text
        body: dict[str, Any] = tok.json()
        return body

    return run


@pytest.fixture
def zoom_authorize(zoom: ZoomEmulator, http: httpx.Client) -> Callable[..., tuple[httpx.Response, PkcePair]]:
    def run(**overrides: Any) -> tuple[httpx.Response, PkcePair]:
        pkce = new_pkce()
        params = {
            "client_id": z.DEFAULT_CLIENT_ID,
            "redirect_uri": z.DEFAULT_REDIRECT_URI,
            "response_type": "code",
            "state": "zstate-" + secrets.token_hex(4),
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
        }
        params.update(overrides)
        return http.get(zoom.authorize_url, params=params), pkce

    return run


@pytest.fixture
def zoom_tokens(
    zoom: ZoomEmulator, http: httpx.Client, zoom_authorize: Callable[..., tuple[httpx.Response, PkcePair]]
) -> Callable[..., dict[str, Any]]:
    def run(**authorize_overrides: Any) -> dict[str, Any]:
        resp, pkce = zoom_authorize(**authorize_overrides)
        assert resp.status_code == 302, resp.text
        code = query_of(resp.headers["location"])["code"]
        tok = http.post(
            zoom.token_url,
            auth=(z.DEFAULT_CLIENT_ID, z.DEFAULT_CLIENT_SECRET),
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": z.DEFAULT_REDIRECT_URI,
                "code_verifier": pkce.verifier,
            },
        )
        assert tok.status_code == 200, tok.text
        body: dict[str, Any] = tok.json()
        return body

    return run


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- push receiver ------------------------------------------------------------------------


@dataclass
class PushReceiver:
    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def add(self, item: dict[str, Any]) -> None:
        with self._cond:
            self.received.append(item)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self.received)


@pytest.fixture
def push_receiver() -> Iterator[PushReceiver]:
    """A tiny loopback HTTP server recording every POST (headers lower-cased, body)."""
    receiver: PushReceiver | None = None

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            assert receiver is not None
            receiver.add({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = PushReceiver(url=f"http://127.0.0.1:{server.server_port}/webhooks/google")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()
