"""The layers and which functions get them: each function ships only the libraries its code imports.

Every runtime dependency of ``pyproject.toml`` (the AWS SDK aside: the runtime provides it) is the
root of exactly one :class:`Group`. A group's layer holds its roots and their dependencies, minus
what the groups it is stacked on (``below``) already hold, so the layers a function gets never
overlap (Lambda extracts them all into ``/opt``) and none repeats another's files.

:data:`FUNCTION_LAYERS` is the table of which function gets which layers. It is written by hand,
so that a change in what a function ships is a reviewed change, and checked against the import
graph (``tests/unit/functions/test_import_graph.py``): every third-party module a function's code
can import (the static graph of :mod:`infra.layer.graph`, lazy imports included) is in its layers,
save pairs listed in :data:`NOT_RUN` with the reason, and no function gets a layer its graph does
not need. The cold import of each handler with only its layers visible (``devstack.importgraph``)
and that function's HTTP stack are checked there too. ``python -m infra.layer.graph`` prints each
function's third-party imports with the chain that reaches each.

Lambda allows at most 5 layers per function; the CalDAV functions use all 5.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Group:
    """One layer: ``roots`` (pyproject dependency names) and their closure, minus the layers ``below``.

    ``omit``: distributions a root declares but the layer leaves out, with what they pull in, because no
    function that gets the layer runs the code that needs them (each named with why at its group).
    """

    name: str
    roots: tuple[str, ...]
    below: tuple[str, ...]
    purpose: str
    omit: tuple[str, ...] = ()


GROUPS: Final = (
    Group(
        "core",
        ("aws-lambda-powertools", "pydantic", "python-dateutil", "tzdata"),
        (),
        "every function: Powertools (resolver, Logger, Metrics, Tracer, Idempotency), pydantic",
    ),
    Group("crypto", ("cryptography", "joserfc"), ("core",), "the credential vault (AES-GCM) and JWT verification"),
    Group("http", ("httpx", "tenacity"), ("core",), "outbound HTTPS to Google, Zoom and JWKS, with retries"),
    Group("oauth", ("authlib",), ("core", "crypto", "http"), "OAuth 2 clients (code exchange, token refresh)"),
    Group("ical", ("icalendar",), ("core",), "building .ics invitations and the calendar feed"),
    Group(
        "caldav",
        ("caldav", "recurring-ical-events"),
        ("core", "crypto", "http", "oauth"),
        "Apple iCloud over CalDAV: caldav, niquests + urllib3-future, lxml, icalendar and recurrence",
    ),
    # requests: the stripe SDK's HTTP client for API calls (it falls back to urllib when requests is absent);
    # the webhook only verifies signatures and calls no Stripe API, and requests with charset-normalizer, idna
    # and certifi was ~15-20 ms of its cold import (bench/README.md).
    Group(
        "stripe",
        ("stripe",),
        ("core",),
        "Stripe webhook signature verification (the SDK without requests: no Stripe API call)",
        omit=("requests",),
    ),
)
GROUP_BY_NAME: Final[Mapping[str, Group]] = {g.name: g for g in GROUPS}

_PROVIDERS: Final = ("core", "crypto", "http", "oauth")
#: Function → its layers, bottom first (see the module docstring for how this is checked).
FUNCTION_LAYERS: Final[Mapping[str, tuple[str, ...]]] = {
    "busy_sync": (*_PROVIDERS, "caldav"),
    "calendar_feed": ("core", "crypto", "ical"),
    "calendar_poll": _PROVIDERS,  # renews Google push channels: credentials, token refresh, Google API
    "classes_api": ("core", "crypto", "http"),
    "connections_api": (*_PROVIDERS, "caldav"),
    "mentors_api": ("core", "crypto"),  # store reads / writes and the vault (feed token): no provider call
    "mint_meeting": (*_PROVIDERS, "ical"),
    "oauth_callback": _PROVIDERS,
    "provider_webhooks": _PROVIDERS,
    "stripe_webhook": ("core", "stripe"),
}

#: (function, third-party module) pairs the static graph reaches but the function never runs, each with
#: the reason (a lazy import in code reached for something else). Empty: the graph is exact today.
NOT_RUN: Final[Mapping[tuple[str, str], str]] = {}

MAX_LAYERS_PER_FUNCTION: Final = 5


def layers_of(function: str) -> tuple[Group, ...]:
    """The groups ``function`` ships, bottom first (``KeyError`` for a function missing from the table)."""
    try:
        names = FUNCTION_LAYERS[function]
    except KeyError:
        raise KeyError(
            f"function {function!r} has no entry in infra.layer.groups.FUNCTION_LAYERS: add one (its import graph "
            "says which: python -m infra.layer.graph)"
        ) from None
    return tuple(GROUP_BY_NAME[name] for name in names)


def stacked(group: Group) -> tuple[str, ...]:
    """``group``'s own ``below`` and theirs, transitively (what a function using ``group`` must also have)."""
    out: list[str] = []
    for name in group.below:
        for inner in (*stacked(GROUP_BY_NAME[name]), name):
            if inner not in out:
                out.append(inner)
    return tuple(out)
