"""Integration fixtures: a real CalDAV server (Radicale) on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.radicale import RadicaleServer


@pytest.fixture(scope="session")
def radicale() -> Iterator[RadicaleServer]:
    """One Radicale for the session; tests add their own users."""
    with RadicaleServer() as server:
        yield server
