"""Google and Zoom provider emulators for the local stack and the integration tests.

Each emulator is a Flask app served on loopback by a background thread::

    from devstack.emulators import GoogleEmulator, ZoomEmulator

    with GoogleEmulator() as google, ZoomEmulator() as zoom:
        print(google.base_url, zoom.base_url)

Knobs are Python methods on the emulator objects and the same operations over HTTP under
``/_admin/...`` (never subject to injected latency or faults). Module docstrings of
:mod:`devstack.emulators.google` and :mod:`devstack.emulators.zoom` list the routes;
:mod:`devstack.emulators.spec` loads the provider specs and checks JSON against them.
Standalone: ``python -m devstack.emulators.google`` / ``python -m devstack.emulators.zoom``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devstack.emulators.common import EmulatorServer, FaultConfig, ForcedFault, pkce_s256
    from devstack.emulators.google import GoogleEmulator
    from devstack.emulators.zoom import ZoomEmulator

__all__ = ["EmulatorServer", "FaultConfig", "ForcedFault", "GoogleEmulator", "ZoomEmulator", "pkce_s256"]

# Imported lazily so ``python -m devstack.emulators.google`` does not import itself twice.
_WHERE = {
    "EmulatorServer": "common",
    "FaultConfig": "common",
    "ForcedFault": "common",
    "pkce_s256": "common",
    "GoogleEmulator": "google",
    "ZoomEmulator": "zoom",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
