"""Shared pieces of the e2e tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from devstack.emulators import GoogleEmulator, ZoomEmulator
from devstack.emulators import google as g
from devstack.emulators import zoom as z
from devstack.radicale import RadicaleServer

APP_URL = "http://app.example.test"


@dataclass
class Providers:
    google: GoogleEmulator
    zoom: ZoomEmulator
    caldav: RadicaleServer


def provider_environment(p: Providers, api_url: str) -> dict[str, str]:
    gb, zb = p.google.base_url, p.zoom.base_url
    return {
        "GOOGLE_AUTH_URL": f"{gb}/o/oauth2/v2/auth",
        "GOOGLE_TOKEN_URL": f"{gb}/token",
        "GOOGLE_REVOKE_URL": f"{gb}/revoke",
        "GOOGLE_USERINFO_URL": f"{gb}/v1/userinfo",
        "GOOGLE_API_BASE": f"{gb}/calendar/v3",
        "GOOGLE_CLIENT_ID": g.DEFAULT_CLIENT_ID,
        "GOOGLE_CLIENT_SECRET": g.DEFAULT_CLIENT_SECRET,
        "ZOOM_AUTH_URL": f"{zb}/oauth/authorize",
        "ZOOM_TOKEN_URL": f"{zb}/oauth/token",
        "ZOOM_REVOKE_URL": f"{zb}/oauth/revoke",
        "ZOOM_API_BASE": f"{zb}/v2",
        "ZOOM_CLIENT_ID": z.DEFAULT_CLIENT_ID,
        "ZOOM_CLIENT_SECRET": z.DEFAULT_CLIENT_SECRET,
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
