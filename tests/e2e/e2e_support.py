"""Shared pieces of the e2e tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

from dataclasses import dataclass, field

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
