"""Shared machinery for the provider emulators.

Every emulator is a Flask app plus an :class:`EmulatorServer` that runs it on loopback in a
background thread (werkzeug ``make_server(..., threaded=True)``). State lives in an object
derived from :class:`EmulatorState`, guarded by one re-entrant lock.

What lives here:

* :mod:`.util` - :class:`Clock` (wall clock with an adjustable offset, so tests can age tokens and
  codes), RFC 3339 formatting, random identifiers, PKCE S256, HTTP Basic / Bearer parsing.
* :mod:`.faults` - :class:`FaultConfig` / :class:`FaultInjector`: added latency, latency *spikes* (a
  fraction ``spike_rate`` of requests held ``spike_min_ms``-``spike_ms`` longer) and injected 429/500
  answers, drawn from seeded RNGs (reproducible), plus "force the next N answers" rules. A forced
  rule with ``after=True`` lets the request be processed first and then replaces the answer (a lost
  response: the change was made, the client sees an error), which is what makes a blind retry of a
  non-idempotent call create twice.
* :mod:`.state` - :class:`EmulatorState` and :class:`RequestLog` (every request: method, path,
  query, body, status, for the admin API).
* :mod:`.http` - :func:`install_common`: before/after-request hooks (latency, faults, logging) and
  the admin routes every emulator shares (:mod:`.admin`: ``/_admin/state``, ``/_admin/faults``,
  ...; admin routes are never delayed or faulted); :func:`abort_with`, how guards refuse a request.
* :mod:`.oauth_state`, :mod:`.oauth_server` - the OAuth authorization server Google and Zoom share.
* :mod:`.dispatch` - :class:`Dispatcher`: one background thread handling queued deliveries in order.
* :mod:`.server` - :class:`EmulatorServer`, :class:`OAuthEmulator`, :func:`create_oauth_app`,
  :func:`run_standalone`.
"""

from devstack.emulators.common.dispatch import Dispatcher
from devstack.emulators.common.faults import FaultConfig, FaultInjector, ForcedFault
from devstack.emulators.common.http import (
    Answer,
    FaultResponder,
    abort_with,
    empty_response,
    install_common,
    json_response,
    request_json_object,
)
from devstack.emulators.common.oauth_server import OAuthServer, Redirect, oauth_admin_blueprint
from devstack.emulators.common.oauth_state import OAuthState, TokenFactory
from devstack.emulators.common.server import (
    EmulatorServer,
    OAuthEmulator,
    ProviderSpec,
    create_oauth_app,
    run_standalone,
)
from devstack.emulators.common.state import EmulatorState, RequestLog
from devstack.emulators.common.util import (
    ADMIN_PREFIX,
    LOOPBACK,
    Clock,
    JSONDict,
    b64url,
    basic_auth_header,
    fake_jwt,
    http_date,
    parse_basic_auth,
    parse_bearer,
    parse_rfc3339,
    pkce_matches,
    pkce_s256,
    random_alnum,
    random_from,
    random_urlsafe,
    rfc3339_millis,
    rfc3339_seconds,
    token_hint,
    utc_from_ts,
    zone,
)

__all__ = [
    "ADMIN_PREFIX",
    "LOOPBACK",
    "Answer",
    "Clock",
    "Dispatcher",
    "EmulatorServer",
    "EmulatorState",
    "FaultConfig",
    "FaultInjector",
    "FaultResponder",
    "ForcedFault",
    "JSONDict",
    "OAuthEmulator",
    "OAuthServer",
    "OAuthState",
    "ProviderSpec",
    "Redirect",
    "RequestLog",
    "TokenFactory",
    "abort_with",
    "b64url",
    "basic_auth_header",
    "create_oauth_app",
    "empty_response",
    "fake_jwt",
    "http_date",
    "install_common",
    "json_response",
    "oauth_admin_blueprint",
    "parse_basic_auth",
    "parse_bearer",
    "parse_rfc3339",
    "pkce_matches",
    "pkce_s256",
    "random_alnum",
    "random_from",
    "random_urlsafe",
    "request_json_object",
    "rfc3339_millis",
    "rfc3339_seconds",
    "run_standalone",
    "token_hint",
    "utc_from_ts",
    "zone",
]
