"""Shared pieces of the e2e tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from devstack.emulators import GoogleEmulator, ZoomEmulator
from devstack.radicale import RadicaleServer

APP_URL = "http://app.example.test"


@dataclass
class Providers:
    google: GoogleEmulator
    zoom: ZoomEmulator
    caldav: RadicaleServer


def provider_environment(p: Providers, api_url: str) -> dict[str, str]:
    return {
        **p.google.environment(),
        **p.zoom.environment(),
        "APPLE_CALDAV_URL": p.caldav.url,
        "API_URL": api_url,
        "APP_URL": APP_URL,
    }


@dataclass
class Recorder:
    """Every response the ``api`` client saw (status, headers, body), for the canary checks."""

    seen: list[str] = field(default_factory=list)

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        self.seen.append(f"{response.status_code} {dict(response.headers)} {response.text}")


def utc_z(value: datetime) -> str:
    """``2026-11-21T18:00:00Z`` (what the busy API and Google's event times use)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def busy_ics(uid: str, start: datetime, end: datetime) -> str:
    """A one-event iCalendar object (UTC times) to put on a Radicale calendar."""
    fmt = "%Y%m%dT%H%M%SZ"
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start.strftime(fmt)}\r\nDTEND:{end.strftime(fmt)}\r\n"
        "SUMMARY:private\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


@contextmanager
def short_lived_tokens(providers: Providers, ttl_s: int) -> Iterator[Providers]:
    """Both emulators issue access tokens living ``ttl_s`` (faults cleared); restored, faults cleared, after."""
    saved = {
        emulator: emulator.state.settings.access_token_ttl_seconds for emulator in (providers.google, providers.zoom)
    }
    for emulator in saved:
        emulator.clear_faults()
        emulator.configure(access_token_ttl_seconds=ttl_s)
    try:
        yield providers
    finally:
        for emulator, ttl in saved.items():
            emulator.clear_faults()
            emulator.configure(access_token_ttl_seconds=ttl)
