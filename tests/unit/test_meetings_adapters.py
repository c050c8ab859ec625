"""Pure parts of the meetings adapters (shared.providers.meetings, .google.meet, .zoom.meetings): ids,
agenda marker, error mapping, response fallbacks."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from shared.providers import rest
from shared.providers.google.meet import _google_error, google_event_id, google_request_id
from shared.providers.meetings import MeetingAuthError, MeetingSpec
from shared.providers.zoom.errors import zoom_meeting_error
from shared.providers.zoom.meetings import ZoomMeetings, zoom_agenda, zoom_marker

TOKEN = SecretStr("secret-token-value-123")


def spec(key: str = "cls_ab12-s03", description: str | None = "About it.") -> MeetingSpec:
    start = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
    return MeetingSpec(key, "Yoga", start, start + timedelta(minutes=50), "Europe/Berlin", description)


def test_event_ids_are_stable_base32hex_and_distinct() -> None:
    """Given session keys / Then each maps to one valid Google event id, different keys to different ids."""
    ids = {google_event_id(f"cls_ab12-s{i:02d}") for i in range(100)}
    assert len(ids) == 100
    assert google_event_id("cls_ab12-s03") == google_event_id("cls_ab12-s03")
    assert all(re.fullmatch(r"[a-v0-9]{5,1024}", i) for i in ids)
    assert google_request_id("cls_ab12-s03") != google_event_id("cls_ab12-s03")


def test_agenda_ends_with_the_marker_and_fits_the_list_view() -> None:
    """Given short, missing and very long descriptions / Then the marker is the last line within 250 chars."""
    assert zoom_agenda(spec()) == "About it.\n\nref:cls_ab12-s03"
    assert zoom_agenda(spec(description=None)) == zoom_marker("cls_ab12-s03")
    long = zoom_agenda(spec(description="word " * 500))
    assert len(long) <= 250
    assert long.splitlines()[-1] == "ref:cls_ab12-s03"


def test_duration_rounds_up_to_whole_minutes() -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    s = MeetingSpec("k1234", "t", start, start + timedelta(minutes=44, seconds=1), "UTC")
    assert s.duration_minutes == 45


def _google(status: int, reason: str, message: str = "m") -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": status, "message": message, "errors": [{"reason": reason}]}})


@pytest.mark.parametrize(
    ("response", "code", "retryable"),
    [
        (_google(401, "authError"), "unauthorized", False),
        (_google(403, "rateLimitExceeded"), "rate_limited", True),
        (_google(403, "userRateLimitExceeded"), "rate_limited", True),
        (_google(403, "insufficientPermissions"), "forbidden", False),
        (_google(403, "quotaExceeded"), "rate_limited", True),
        (_google(403, "dailyLimitExceeded"), "rate_limited", True),
        (_google(404, "notFound"), "not_found", False),
        (_google(400, "invalid"), "invalid_request", False),
        (_google(429, "rateLimitExceeded"), "rate_limited", True),
        (_google(503, "backendError"), "unavailable", True),
    ],
)
def test_google_error_mapping(response: httpx.Response, code: str, retryable: bool) -> None:
    """Given a Google error answer / Then its code and retryability."""
    err = _google_error(response, TOKEN)
    assert (err.code, err.retryable, err.status) == (code, retryable, response.status_code)
    assert isinstance(err, MeetingAuthError) is (code == "unauthorized")


def test_zoom_error_mapping_and_token_redaction() -> None:
    """Given Zoom error answers / Then scope errors are forbidden, 3001 not_found, and a token echoed
    in a message is redacted."""
    scope = zoom_meeting_error(httpx.Response(400, json={"code": 4711, "message": "does not contain scopes"}), TOKEN)
    assert (scope.code, scope.retryable) == ("forbidden", False)
    gone = zoom_meeting_error(httpx.Response(404, json={"code": 3001, "message": "Meeting does not exist: 1."}), TOKEN)
    assert gone.code == "not_found"
    echo = zoom_meeting_error(
        httpx.Response(400, json={"code": 300, "message": f"bad {TOKEN.get_secret_value()}"}), TOKEN
    )
    assert TOKEN.get_secret_value() not in str(echo)
    daily = zoom_meeting_error(
        httpx.Response(429, headers={"X-RateLimit-Type": "Daily-limit"}, json={"code": 429, "message": "x"}), TOKEN
    )
    assert (daily.code, daily.retryable) == ("daily_cap", True)
    assert daily.retry_after_s is not None
    assert 0 < daily.retry_after_s <= 86400


def _mock(monkeypatch: pytest.MonkeyPatch, handler: Callable[[httpx.Request], httpx.Response]) -> None:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    monkeypatch.setattr(rest, "http_client", lambda timeout_s=10.0: client)


def test_zoom_find_reads_the_join_url_when_the_list_lacks_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a list item without join_url (and a second, later duplicate)
    When find runs / Then it picks the oldest match and GETs the meeting for its join_url."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path == "/v2/users/me/meetings":
            items = [
                {"id": 222, "agenda": "ref:cls_ab12-s03", "created_at": "2030-01-02T00:00:00Z"},
                {"id": 111, "agenda": "x\n\nref:cls_ab12-s03", "created_at": "2030-01-01T00:00:00Z"},
                {"id": 333, "agenda": "ref:cls_ab12-s030", "created_at": "2029-01-01T00:00:00Z"},
            ]
            return httpx.Response(200, content=json.dumps({"next_page_token": "", "meetings": items}))
        return httpx.Response(200, json={"id": 111, "join_url": "https://zoom.test/j/111"})

    _mock(monkeypatch, handler)
    found = ZoomMeetings(api_base="http://zoom.test/v2").find(TOKEN, spec())

    assert found is not None
    assert (found.meeting_id, found.join_url) == ("111", "https://zoom.test/j/111")
    assert seen == ["GET /v2/users/me/meetings", "GET /v2/meetings/111"]
