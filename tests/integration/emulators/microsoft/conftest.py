"""Fixtures for the Microsoft emulator tests: one emulator per module (reset before every test), a
token of the default user, and a loopback notification receiver."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from devstack.emulators.microsoft import MicrosoftEmulator
from tests.integration.emulators.microsoft.support import Receiver, serve_receiver, tokens


@pytest.fixture(scope="module")
def ms_emu() -> Iterator[MicrosoftEmulator]:
    emu = MicrosoftEmulator(allow_http_loopback_notifications=True).start()
    yield emu
    emu.stop()


@pytest.fixture
def emu(ms_emu: MicrosoftEmulator) -> MicrosoftEmulator:
    ms_emu.reset()
    return ms_emu


@pytest.fixture
def token(emu: MicrosoftEmulator, http: httpx.Client) -> str:
    return str(tokens(http, emu)["access_token"])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve_receiver()
