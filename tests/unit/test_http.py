"""Retries with backoff + jitter on 429/5xx and transport errors, honouring Retry-After."""

from __future__ import annotations

import httpx
import pytest

from shared.platform.http import retry_after_seconds, send


def _client(answers: list[httpx.Response | Exception]) -> tuple[httpx.Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.Client(transport=httpx.MockTransport(handler), base_url="http://provider.test"), seen


def test_retry_after_is_honoured_then_success() -> None:
    # Given a 429 asking for 3 s, then a 200
    client, seen = _client([httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(200, json={"ok": 1})])
    sleeps: list[float] = []
    # When sent
    resp = send(lambda: client.get("/x"), sleep=sleeps.append)
    # Then it waited at least what the provider asked and succeeded on the second try
    assert resp.status_code == 200
    assert len(seen) == 2
    assert sleeps
    assert sleeps[0] >= 3.0


def test_gives_up_after_the_attempts_and_returns_the_last_answer() -> None:
    client, seen = _client([httpx.Response(500) for _ in range(4)])
    sleeps: list[float] = []
    resp = send(lambda: client.get("/x"), attempts=4, sleep=sleeps.append)
    assert resp.status_code == 500
    assert len(seen) == 4
    assert len(sleeps) == 3
    assert all(0 <= s <= 8.0 for s in sleeps)


def test_client_errors_are_not_retried() -> None:
    client, seen = _client([httpx.Response(400, json={"error": "invalid_grant"})])
    assert send(lambda: client.get("/x"), sleep=lambda _: None).status_code == 400
    assert len(seen) == 1


def test_transport_errors_are_retried_then_reraised() -> None:
    client, seen = _client([httpx.ConnectError("down"), httpx.Response(204)])
    assert send(lambda: client.get("/x"), sleep=lambda _: None).status_code == 204
    client, seen = _client([httpx.ConnectError("down") for _ in range(3)])
    with pytest.raises(httpx.ConnectError):
        send(lambda: client.get("/x"), attempts=3, sleep=lambda _: None)
    assert len(seen) == 3


def test_retry_after_formats() -> None:
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "7"})) == 7.0
    assert retry_after_seconds(httpx.Response(429)) is None
    date = retry_after_seconds(httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    assert date == 0.0
