"""Client-side flows against the local stack, shared by the demo and the e2e tests.

The OAuth connect dance the way a browser and the mentor app drive it, over real HTTP:

    url = authorize(api, headers, "google")     # POST /connections/google/authorize → authorizeUrl
    back = consent(url)                          # the provider's consent page → 302 to our callback
    landed = callback(api, back)                 # GET /oauth/google/callback → 302 to the app, ?pending=
    view = complete(api, headers, landed)        # POST /connections/google/complete {pending} → 200
    # or all four at once: connect_oauth(api, headers, "google") → the connection view

The callback stores nothing: it parks the tokens under a single-use ``pending`` handle that only the
mentor who started the flow can complete (:func:`complete`; another mentor's token gets 403
``oauth_mentor_mismatch``, see :func:`complete_response`).

Redirects are followed by hand, one hop at a time, so every hop can be checked. The emulators
auto-consent as the user chosen with ``set_next_consent`` (:func:`seed_google_account`,
:func:`seed_zoom_account`, :func:`seed_microsoft_account` do that). :func:`google_tokens` /
:func:`zoom_tokens` / :func:`microsoft_tokens` list what the emulators issued, for canary checks
(no token may appear in a response, a log line or the table).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from devstack.emulators import GoogleEmulator, MicrosoftEmulator, ZoomEmulator
from devstack.emulators.zoom import PLAN_BASIC

#: The Zoom user type of a Basic (free) account: meetings are capped at 40 minutes.
ZOOM_BASIC = PLAN_BASIC


class FlowError(AssertionError):
    """A hop of a flow got an answer it should not have (the message carries status and body)."""


def _expect(resp: httpx.Response, status: int, what: str) -> None:
    if resp.status_code != status:
        raise FlowError(f"{what}: expected {status}, got {resp.status_code}: {resp.text[:500]}")


def authorize(api: httpx.Client, headers: dict[str, str], provider: str) -> str:
    """``POST /connections/<provider>/authorize`` → the provider's consent URL (``authorizeUrl``)."""
    resp = api.post(f"/connections/{provider}/authorize", headers=headers)
    _expect(resp, 200, f"POST /connections/{provider}/authorize")
    return str(resp.json()["authorizeUrl"])


def consent(authorize_url: str, *, timeout_s: float = 10.0) -> str:
    """Open the consent URL like the browser; returns where the provider sends it back (``Location``)."""
    resp = httpx.get(authorize_url, follow_redirects=False, timeout=timeout_s)
    _expect(resp, 302, "provider consent")
    return resp.headers["location"]


def callback(api: httpx.Client, url: str) -> str:
    """Land on our callback (``/oauth/<p>/callback?…``); returns the app URL it redirects to."""
    resp = api.get(url, follow_redirects=False)
    _expect(resp, 302, "OAuth callback")
    if resp.headers.get("cache-control") != "no-store":
        raise FlowError(f"OAuth callback: Cache-Control is {resp.headers.get('cache-control')!r}, not 'no-store'")
    return resp.headers["location"]


def pending_of(landed: str) -> tuple[str, str]:
    """``(provider, pending handle)`` of the app URL the callback redirected to (FlowError if it is an error)."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(landed).query).items()}
    if "pending" not in query or "provider" not in query:
        raise FlowError(f"OAuth callback: no pending connection in {landed.split('?')[0]}?{sorted(query)}")
    return query["provider"], query["pending"]


def complete_response(api: httpx.Client, headers: dict[str, str], landed: str) -> httpx.Response:
    """``POST /connections/<p>/complete {"pending"}`` for the app URL ``landed`` (the raw response)."""
    provider, pending = pending_of(landed)
    return api.post(f"/connections/{provider}/complete", headers=headers, json={"pending": pending})


def complete(api: httpx.Client, headers: dict[str, str], landed: str) -> dict[str, Any]:
    """What the mentor app does on ``?provider=<p>&pending=<handle>``: complete it; returns the connection view."""
    resp = complete_response(api, headers, landed)
    _expect(resp, 200, f"POST /connections/{pending_of(landed)[0]}/complete")
    return dict(resp.json())


def connect_oauth(api: httpx.Client, headers: dict[str, str], provider: str) -> dict[str, Any]:
    """The whole OAuth dance for ``provider`` (google / zoom / microsoft); returns the completed connection's view."""
    return complete(api, headers, callback(api, consent(authorize(api, headers, provider))))


# --- provider accounts ------------------------------------------------------------------------------


def teaching_calendars(email: str) -> list[dict[str, str]]:
    """Two calendars besides the primary: a writable "Teaching" and a read-only "Holidays"."""
    return [
        {"id": f"teaching-{email}", "summary": "Teaching", "access_role": "owner"},
        {"id": f"holidays-{email}", "summary": "Holidays", "access_role": "reader"},
    ]


def seed_google_account(
    google: GoogleEmulator,
    email: str,
    name: str = "Ada Lovelace",
    calendars: list[dict[str, str]] | None = None,
) -> str:
    """Add a Google account (primary + :func:`teaching_calendars` by default); the next consent is its."""
    google.add_user(email, name, calendars=teaching_calendars(email) if calendars is None else calendars)
    google.set_next_consent(email)
    return email


def seed_zoom_account(
    zoom: ZoomEmulator, email: str, first_name: str = "Ada", last_name: str = "Lovelace", plan: int = ZOOM_BASIC
) -> str:
    """Add a Zoom user (``plan``: 1 Basic, 2 Licensed); the next consent is theirs."""
    zoom.add_user(email, first_name=first_name, last_name=last_name, type=plan)
    zoom.set_next_consent(email)
    return email


def seed_microsoft_account(microsoft: MicrosoftEmulator, email: str, name: str = "Ada Lovelace") -> str:
    """Add a Microsoft 365 work account (its default calendar "Calendar" hosts Teams meetings); the next
    consent is its."""
    microsoft.add_user(email, name)
    microsoft.set_next_consent(email)
    return email


# --- canaries ---------------------------------------------------------------------------------------


def _issued(tables: list[dict[str, Any]], owner_attr: str, owner: str | None, lock: Any) -> list[str]:
    with lock:
        return [
            token
            for table in tables
            for token, rec in table.items()
            if owner is None or getattr(rec, owner_attr) == owner
        ]


def google_tokens(google: GoogleEmulator, email: str | None = None, *, include_codes: bool = False) -> list[str]:
    """Access and refresh tokens (and codes) the Google emulator issued (to ``email``, or to anyone)."""
    st = google.state
    tables: list[dict[str, Any]] = [st.access_tokens, st.refresh_tokens, *([st.codes] if include_codes else [])]
    return _issued(tables, "email", email.lower() if email else None, st.lock)


def zoom_tokens(zoom: ZoomEmulator, user_id: str | None = None, *, include_codes: bool = False) -> list[str]:
    """Access and refresh tokens (and codes) the Zoom emulator issued (to ``user_id``, or to anyone)."""
    st = zoom.state
    tables: list[dict[str, Any]] = [st.access_tokens, st.refresh_tokens, *([st.codes] if include_codes else [])]
    return _issued(tables, "user_id", user_id, st.lock)


def microsoft_tokens(
    microsoft: MicrosoftEmulator, email: str | None = None, *, include_codes: bool = False
) -> list[str]:
    """Access and refresh tokens (and codes) the Microsoft emulator issued (to ``email``, or to anyone)."""
    st = microsoft.state
    with st.lock:
        user = st.user_by_email(email) if email else None
    if email and user is None:
        return []
    tables: list[dict[str, Any]] = [st.access_tokens, st.refresh_tokens, *([st.codes] if include_codes else [])]
    return _issued(tables, "user_id", user.id if user else None, st.lock)
