"""Attack: Apple connect as a password oracle (PRODUCT.md §2.2).

``POST /connections/apple`` verifies an Apple ID + app-specific password by signing in to iCloud.
Unlimited, it lets anyone test passwords against any Apple ID from our egress addresses (and get
victims' Apple IDs locked). Now failed attempts are limited per mentor and per Apple ID with a
growing back-off (429 ``too_many_attempts`` + ``Retry-After``), and few attempts reach iCloud.

iCloud is Radicale behind a counting proxy: every request that carries credentials is one sign-in
attempt that reached the CalDAV server.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from e2e_support import Providers

from shared import wiring
from shared.store import Store

RIGHT = "abcd-efgh-ijkl-mnop"
WRONG = "wxyz-wxyz-wxyz-wxyz"
TRIES = 20


@dataclass
class CountingProxy:
    """Forwards every request to Radicale and counts the ones that carry credentials."""

    upstream: str
    sign_ins: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Forward(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                if "authorization" in {k.lower() for k in headers}:
                    with proxy.lock:
                        proxy.sign_ins.append(self.path)
                resp = httpx.request(self.command, proxy.upstream + self.path, headers=headers, content=body)
                self.send_response(resp.status_code)
                for name, value in resp.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(name, value)
                self.send_header("content-length", str(len(resp.content)))
                self.send_header("connection", "close")
                self.end_headers()
                self.wfile.write(resp.content)

            do_GET = do_PUT = do_POST = do_DELETE = do_OPTIONS = do_HEAD = _forward
            do_PROPFIND = do_REPORT = _forward

        return Forward


@pytest.fixture
def icloud(providers: Providers, provider_env: pytest.MonkeyPatch) -> Iterator[CountingProxy]:
    """The functions' iCloud is Radicale behind a :class:`CountingProxy`."""
    proxy = CountingProxy(providers.caldav.url)
    server = ThreadingHTTPServer(("127.0.0.1", 0), proxy.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    provider_env.setenv("APPLE_CALDAV_URL", f"http://127.0.0.1:{server.server_address[1]}")
    wiring.reset()
    yield proxy
    server.shutdown()
    server.server_close()


def _apple_user(providers: Providers) -> str:
    apple_id = f"victim-{uuid.uuid4().hex[:8]}@icloud.com"
    providers.caldav.add_user(apple_id, RIGHT)
    return apple_id


def _post(api: httpx.Client, headers: dict[str, str], apple_id: str, password: str) -> httpx.Response:
    return api.post("/connections/apple", headers=headers, json={"appleId": apple_id, "appSpecificPassword": password})


def _assert_limited(resp: httpx.Response) -> None:
    assert resp.status_code == 429, resp.text
    assert resp.json()["error"]["code"] == "too_many_attempts"
    retry_after = resp.headers.get("retry-after")
    assert retry_after is not None, resp.headers
    assert retry_after.isdigit(), retry_after
    assert int(retry_after) >= 1
    assert int(retry_after) == resp.json()["error"]["retryAfterSeconds"]


def test_twenty_wrong_passwords_for_one_apple_id_are_throttled(
    api: httpx.Client,
    providers: Providers,
    icloud: CountingProxy,
    stack_store: Store,
    mentor_headers: Callable[..., dict[str, str]],
) -> None:
    # Given an Apple ID (someone else's) and one attacking mentor
    apple_id, attacker = _apple_user(providers), f"sec-apple-{uuid.uuid4().hex[:8]}"
    headers = mentor_headers(attacker)
    # When the attacker posts 20 wrong app-specific passwords for it
    answers = [_post(api, headers, apple_id, WRONG) for _ in range(TRIES)]
    # Then the first few are iCloud's 401 (apple_auth_failed); after the limit every one is 429
    codes = [r.json()["error"]["code"] for r in answers]
    limited = codes.index("too_many_attempts")
    assert 1 <= limited <= 5, codes
    assert set(codes[:limited]) == {"apple_auth_failed"}, codes
    for resp in answers[limited:]:
        _assert_limited(resp)
    # And far fewer than 20 sign-ins reached iCloud: one per attempt let through, none after
    print(f"one mentor, one Apple ID: {len(icloud.sign_ins)} of {TRIES} sign-ins reached iCloud")
    assert len(icloud.sign_ins) == limited, icloud.sign_ins
    # And during the back-off even the right password is not tried (no oracle), nothing is stored
    _assert_limited(_post(api, headers, apple_id, RIGHT))
    assert len(icloud.sign_ins) == limited
    assert list(stack_store.table.query(f"MENTOR#{attacker}")) == []
    # And no answer carries the password
    assert not any(WRONG in r.text or RIGHT in r.text for r in answers)


def test_wrong_passwords_for_one_apple_id_from_many_mentors_are_throttled(
    api: httpx.Client,
    providers: Providers,
    icloud: CountingProxy,
    stack_store: Store,
    mentor_headers: Callable[..., dict[str, str]],
) -> None:
    # Given an Apple ID and 20 fresh (free) mentor accounts, one attempt each
    apple_id = _apple_user(providers)
    mentors = [f"sec-apple-{uuid.uuid4().hex[:8]}" for _ in range(TRIES)]
    # When each posts one wrong password for the same Apple ID
    answers = [_post(api, mentor_headers(m), apple_id, WRONG) for m in mentors]
    # Then after the per-Apple-ID limit they get 429 too_many_attempts with Retry-After
    codes = [r.json()["error"]["code"] for r in answers]
    limited = codes.index("too_many_attempts")
    assert 1 <= limited <= 5, codes
    assert set(codes[:limited]) == {"apple_auth_failed"}, codes
    for resp in answers[limited:]:
        _assert_limited(resp)
    # And iCloud saw only the attempts let through
    print(f"{TRIES} mentors, one Apple ID: {len(icloud.sign_ins)} of {TRIES} sign-ins reached iCloud")
    assert len(icloud.sign_ins) == limited, icloud.sign_ins
    for m in mentors:
        assert list(stack_store.table.query(f"MENTOR#{m}")) == []


def test_parallel_wrong_passwords_cannot_slip_past_the_limit(
    api: httpx.Client,
    providers: Providers,
    icloud: CountingProxy,
    mentor_headers: Callable[..., dict[str, str]],
) -> None:
    # Given an Apple ID and one attacker firing 20 wrong passwords at once (several "Lambda containers")
    apple_id, attacker = _apple_user(providers), f"sec-apple-{uuid.uuid4().hex[:8]}"
    headers = mentor_headers(attacker)
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: _post(api, headers, apple_id, WRONG), range(TRIES)))
    # Then every sign-in is counted before it is sent: at most the limit reached iCloud, the rest are 429
    codes = sorted(r.json()["error"]["code"] for r in answers)
    print(f"{TRIES} in parallel: {len(icloud.sign_ins)} of {TRIES} sign-ins reached iCloud")
    assert codes.count("apple_auth_failed") <= 5, codes
    assert codes.count("too_many_attempts") >= TRIES - 5, codes
    assert len(icloud.sign_ins) == codes.count("apple_auth_failed")
