"""Fixtures for tests that drive the whole local stack with its providers (e2e and reliability).

Registered once from ``tests/conftest.py`` (``pytest_plugins``) so the session-scoped emulators are
started once for every directory that uses them. The Google/Zoom emulators' OAuth clients accept
``<API_URL>/oauth/{google,zoom}/callback``; ``provider_env`` points the in-process functions at them
(``GOOGLE_*`` / ``ZOOM_*`` / ``APPLE_CALDAV_URL`` / ``API_URL`` / ``APP_URL``, settings caches reset on
the way in and out). It is not autouse here: ``tests/e2e`` and ``tests/reliability`` switch it on
for their tests in their own ``conftest.py``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from e2e_support import Providers, Recorder, provider_environment

from devstack.emulators import GoogleEmulator, ZoomEmulator
from devstack.emulators import google as g
from devstack.emulators import zoom as z
from devstack.radicale import RadicaleServer
from devstack.stack import LocalStack
from shared import wiring
from shared.store import Store, Table


@pytest.fixture(scope="session")
def providers(local_stack: LocalStack) -> Iterator[Providers]:
    """Google + Zoom emulators and Radicale on loopback, with our callback URIs registered."""
    # Our push receiver is http on loopback; like Google, the emulator takes only https unless told so.
    google, zoom = GoogleEmulator(allow_http_loopback_push=True).start(), ZoomEmulator().start()
    caldav = RadicaleServer()
    caldav.start()
    google.add_client(g.DEFAULT_CLIENT_ID, g.DEFAULT_CLIENT_SECRET, [f"{local_stack.api_url}/oauth/google/callback"])
    zoom.add_client(z.DEFAULT_CLIENT_ID, z.DEFAULT_CLIENT_SECRET, [f"{local_stack.api_url}/oauth/zoom/callback"])
    yield Providers(google, zoom, caldav)
    google.stop()
    zoom.stop()
    caldav.stop()


@pytest.fixture
def provider_env(providers: Providers, local_stack: LocalStack) -> Iterator[pytest.MonkeyPatch]:
    """Point the functions at the fixtures' providers for one test (yields the monkeypatch)."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in provider_environment(providers, local_stack.api_url).items():
            mp.setenv(name, value)
        wiring.reset()
        yield mp
    wiring.reset()


@pytest.fixture
def stack_store(local_stack: LocalStack) -> Store:
    """The stack's table, read directly (to check what was stored)."""
    return Store(Table(local_stack.client("dynamodb"), os.environ["TABLE_NAME"]))


@pytest.fixture
def mentor() -> str:
    """A fresh mentor id per test."""
    return f"e2e-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def recorder(api: httpx.Client) -> Recorder:
    """Every response the ``api`` client sees from here on (for the canary checks)."""
    rec = Recorder()
    api.event_hooks["response"].append(rec)
    return rec


@pytest.fixture
def headers(mentor: str, mentor_headers: Callable[..., dict[str, str]]) -> dict[str, str]:
    """The fresh mentor's bearer JWT header."""
    return mentor_headers(mentor)
