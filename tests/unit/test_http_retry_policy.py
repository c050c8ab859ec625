"""shared.platform.http.send: custom retry predicates, long Retry-After left to the caller, ISO Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shared.platform.http import retry_after_seconds, send


def _client(answers: list[httpx.Response]) -> tuple[httpx.Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    return httpx.Client(transport=httpx.MockTransport(handler), base_url="http://provider.test"), seen


def test_a_long_retry_after_is_returned_at_once() -> None:
    """Given a 429 asking for an hour
    When sent with max_retry_after_s=5
    Then no retry and no sleep: the 429 comes back to the caller."""
    client, seen = _client([httpx.Response(429, headers={"Retry-After": "3600"}), httpx.Response(200)])
    sleeps: list[float] = []

    resp = send(lambda: client.get("/x"), max_retry_after_s=5.0, sleep=sleeps.append)

    assert resp.status_code == 429
    assert len(seen) == 1
    assert sleeps == []


def test_a_short_retry_after_is_still_retried() -> None:
    """Given a 429 asking for 2 s / When sent with max_retry_after_s=5 / Then it waits and retries."""
    client, seen = _client([httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(200)])
    sleeps: list[float] = []

    resp = send(lambda: client.get("/x"), max_retry_after_s=5.0, sleep=sleeps.append)

    assert resp.status_code == 200
    assert len(seen) == 2
    assert sleeps[0] >= 2.0


def test_retry_if_replaces_the_status_check() -> None:
    """Given a 403 the predicate calls retryable, then a 200
    When sent with that predicate / Then the 403 is retried; a 500 it rejects is not."""
    client, seen = _client([httpx.Response(403), httpx.Response(200)])
    assert send(lambda: client.get("/x"), retry_if=lambda r: r.status_code == 403, sleep=lambda _: None).is_success
    assert len(seen) == 2

    client, seen = _client([httpx.Response(500), httpx.Response(200)])
    resp = send(lambda: client.get("/x"), retry_if=lambda r: False, sleep=lambda _: None)
    assert resp.status_code == 500
    assert len(seen) == 1


@pytest.mark.parametrize("suffix", ["Z", "+00:00"])
def test_retry_after_as_an_iso_instant(suffix: str) -> None:
    """Given Zoom's daily-limit Retry-After (an ISO 8601 instant) / Then the seconds until then."""
    at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    value = at.strftime("%Y-%m-%dT%H:%M:%S") + suffix
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": value})) == pytest.approx(7200, abs=3)


def test_unreadable_retry_after_is_none() -> None:
    """Given a Retry-After that is neither seconds, an HTTP date nor ISO / Then None (never an exception)."""
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "soon"})) is None
