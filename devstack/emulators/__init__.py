"""Google, Zoom and Microsoft Graph provider emulators for the local stack and the integration tests.

Each emulator is a Flask app served on loopback by a background thread::

    from devstack.emulators import GoogleEmulator, ZoomEmulator

    with GoogleEmulator() as google, ZoomEmulator() as zoom:
        print(google.base_url, zoom.base_url)

Knobs are Python methods on the emulator objects and the same operations over HTTP under
``/_admin/...`` (never subject to injected latency or faults). The docstrings of the packages
:mod:`devstack.emulators.google`, :mod:`devstack.emulators.zoom` and :mod:`devstack.emulators.microsoft`
list the routes;
:mod:`devstack.emulators.spec` loads the provider specs and checks JSON against them;
:mod:`devstack.emulators.common` holds what every emulator shares, including the OAuth server.
Standalone: ``python -m devstack.emulators.google`` / ``python -m devstack.emulators.zoom``.

Adding an emulator (as Microsoft Graph was) is adding one package ``devstack/emulators/<name>/``
laid out like ``google/`` and ``zoom/``:

* ``model.py`` - constants (default client id/secret/redirect URI, scopes, TTLs), the records as
  dataclasses, and a settings dataclass (what ``/_admin/settings`` and ``configure()`` change).
* ``state.py`` - a state class derived from ``common.OAuthState[Client, Code, AccessToken,
  RefreshToken]`` (or ``common.EmulatorState`` without OAuth): ``name``, ``_init_data()`` calling
  ``_init_oauth()`` and ``_seed()``, ``add_user``/``has_user``, ``revoke_token``/``revoke_user``/
  ``expire_access_tokens`` (the shared admin token routes call them), ``snapshot_head``/``_tail``.
* ``errors.py`` - the provider's error bodies and a ``fault_responder(status, retry_after)`` for
  injected faults.
* ``oauth.py`` - a ``common.OAuthServer`` subclass: paths, messages and the hooks that really
  differ (code issue, code exchange, refresh, revoke); the flow itself is shared.
* ``guards.py`` - token/scope and resource checks that refuse with ``common.abort_with(response)``
  (never return a ``Response`` for the caller to test).
* one module per API resource with ``blueprint(state) -> flask.Blueprint`` (at most ~400 lines a
  module, ~60 a function); ``admin.py`` for the provider's own ``/_admin`` routes.
* ``server.py`` - a ``common.ProviderSpec`` (state class, OAuth server, fault responder,
  blueprints, settings env prefix, default client), ``create_app(state)`` via
  ``common.create_oauth_app`` and the emulator class: ``class XEmulator(common.OAuthEmulator[Client])``
  with ``SPEC`` and ``api_urls()`` (the ``X_..._URL`` / ``X_API_BASE`` settings that
  ``environment()`` returns for ``shared.config.ProviderSettings``); ``main()`` via
  ``common.run_standalone``.
* ``__init__.py`` re-exporting the public names, ``__main__.py`` calling ``server.main``; then add
  the emulator to ``_WHERE`` below and to :mod:`devstack.providers`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devstack.emulators.common import EmulatorServer, FaultConfig, ForcedFault, pkce_s256
    from devstack.emulators.google import GoogleEmulator
    from devstack.emulators.microsoft import MicrosoftEmulator
    from devstack.emulators.zoom import ZoomEmulator

__all__ = [
    "EmulatorServer",
    "FaultConfig",
    "ForcedFault",
    "GoogleEmulator",
    "MicrosoftEmulator",
    "ZoomEmulator",
    "pkce_s256",
]

# Imported lazily: importing the package (e.g. for ``common``) does not start building every emulator.
_WHERE = {
    "EmulatorServer": "common",
    "FaultConfig": "common",
    "ForcedFault": "common",
    "pkce_s256": "common",
    "GoogleEmulator": "google",
    "MicrosoftEmulator": "microsoft",
    "ZoomEmulator": "zoom",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
