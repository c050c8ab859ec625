"""Helpers for the Microsoft emulator tests: the OAuth flow and a loopback notification receiver
that answers Graph's ``validationToken`` handshake (configurably wrong) and records deliveries."""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from devstack.emulators import microsoft as ms
from devstack.emulators import pkce_s256
from devstack.emulators.microsoft import MicrosoftEmulator

START = datetime(2030, 3, 4, 10, 0)
SCOPES = "openid offline_access Calendars.ReadWrite User.Read"


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def authorize(http: httpx.Client, emu: MicrosoftEmulator, **overrides: str | None) -> tuple[httpx.Response, str]:
    """GET the authorize endpoint as a browser would; the answer and the PKCE verifier."""
    verifier = secrets.token_urlsafe(48)
    params: dict[str, str | None] = {
        "client_id": ms.DEFAULT_CLIENT_ID,
        "redirect_uri": ms.DEFAULT_REDIRECT_URI,
        "response_type": "code",
        "response_mode": "query",
        "scope": SCOPES,
        "state": "st-" + secrets.token_hex(4),
        "code_challenge": pkce_s256(verifier),
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return http.get(emu.authorize_url, params={k: v for k, v in params.items() if v is not None}), verifier


def redeem(http: httpx.Client, emu: MicrosoftEmulator, code: str, verifier: str, **extra: str) -> httpx.Response:
    data = {
        "client_id": ms.DEFAULT_CLIENT_ID,
        "client_secret": ms.DEFAULT_CLIENT_SECRET,
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": ms.DEFAULT_REDIRECT_URI,
        "code_verifier": verifier,
        **extra,
    }
    return http.post(emu.token_url, data=data)


def refresh(http: httpx.Client, emu: MicrosoftEmulator, token: str, **extra: str) -> httpx.Response:
    data = {
        "client_id": ms.DEFAULT_CLIENT_ID,
        "client_secret": ms.DEFAULT_CLIENT_SECRET,
        "grant_type": "refresh_token",
        "refresh_token": token,
        **extra,
    }
    return http.post(emu.token_url, data=data)


def tokens(http: httpx.Client, emu: MicrosoftEmulator, scope: str = SCOPES) -> dict[str, Any]:
    resp, verifier = authorize(http, emu, scope=scope)
    assert resp.status_code == 302, resp.text
    tok = redeem(http, emu, query_of(resp.headers["location"])["code"], verifier)
    assert tok.status_code == 200, tok.text
    body: dict[str, Any] = tok.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Receiver:
    """``mode`` decides the handshake answer: ``echo`` (right), ``encoded`` (the token still
    URL-encoded), ``json`` (wrong content type), ``slow`` (echo after ``delay`` s), ``refuse`` (403)."""

    url: str
    mode: str = "echo"
    delay: float = 0.0
    fail_next: int = 0  # notifications answered 500 before the receiver takes them
    validations: list[str] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def add(self, item: dict[str, Any]) -> None:
        with self._cond:
            self.received.append(item)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < count and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            return list(self.received)

    def notifications(self) -> list[dict[str, Any]]:
        return [n for item in list(self.received) for n in item["body"]["value"]]


def serve_receiver() -> Iterator[Receiver]:
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw_query = urlsplit(self.path).query
            token = parse_qs(raw_query).get("validationToken")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if token:
                receiver.validations.append(token[0])
                self._answer_validation(token[0])
                return
            if receiver.fail_next > 0:
                receiver.fail_next -= 1
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            receiver.add({"path": urlsplit(self.path).path, "body": json.loads(body)})
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _answer_validation(self, token: str) -> None:
            if receiver.mode == "slow":
                time.sleep(receiver.delay)
            text, ctype, status = token, "text/plain; charset=utf-8", 200
            if receiver.mode == "encoded":
                text = quote(token)
            elif receiver.mode == "json":
                text, ctype = json.dumps({"validationToken": token}), "application/json"
            elif receiver.mode == "refuse":
                status = 403
            data = text.encode()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the emulator gave up (slow mode)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_port}/webhooks/microsoft"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def when(dt: datetime, tz: str = "UTC") -> dict[str, str]:
    return {"dateTime": dt.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": tz}


def iso_in(emu: MicrosoftEmulator, minutes: float) -> str:
    """An expirationDateTime ``minutes`` after the emulator's now."""
    ts = emu.state.now() + minutes * 60
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
