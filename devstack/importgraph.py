"""What each function imports on a cold start, measured as Lambda would load it.

Used by ``make bench`` (``bench/bench_imports.py``: import time as a ratio to ``import boto3``) and by
``tests/unit/functions/test_import_graph.py`` (no function imports a library it should not).

A fresh interpreter imports ``functions.<name>.handler`` with what a deployed function sees, not
what the dev venv has:

* **Lambda's environment**: ``LAMBDA_TASK_ROOT`` / ``AWS_LAMBDA_FUNCTION_NAME`` are set, so the X-Ray
  SDK takes its Lambda path (a local sampler; outside Lambda it builds a botocore X-Ray client at
  import, about 70 ms that a deployed function never pays) and Powertools' Tracer is enabled.
* **The layer's packages only**: distributions installed in the venv but neither locked in
  ``requirements-lambda.txt`` nor provided by the runtime (boto3, botocore, s3transfer) are hidden
  by a meta-path finder installed before the clock starts. Otherwise optional imports find dev
  tools (httpx's CLI pulls rich and pygments when they are installed) and the figures drift from
  what ships.

Both the handler and the ``import boto3`` baseline run under the same prelude, so the ratio
compares like with like.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Final

from infra.layer import EXCLUDED as RUNTIME_PROVIDED
from infra.layer import LOCK_FILE, ROOT

FUNCTIONS: Final = tuple(sorted(p.parent.name for p in (ROOT / "functions").glob("*/handler.py")))

_EVERYONE_BUT: Final = frozenset(FUNCTIONS)
_CALDAV_USERS: Final = frozenset({"connections_api", "busy_sync"})
#: Libraries a function's cold start must not load, and the only functions allowed to load them.
#: An empty set means no function (test and dev tooling). The issue's examples: no caldav in the
#: webhook, no stripe in the poller.
ALLOWED_IMPORTERS: Final[Mapping[str, frozenset[str]]] = {
    "stripe": frozenset({"stripe_webhook"}),
    "caldav": _CALDAV_USERS,
    "niquests": _CALDAV_USERS,
    "lxml": _CALDAV_USERS,
    "recurring_ical_events": _CALDAV_USERS,
    "icalendar": frozenset({"connections_api", "busy_sync", "mint_meeting", "calendar_feed"}),
    "authlib": frozenset({"oauth_callback", "connections_api", "mint_meeting", "busy_sync", "calendar_poll"}),
    # Outbound HTTP. The stripe SDK imports httpx and requests as optional HTTP clients even though
    # the webhook only verifies signatures with it; the feed makes no outbound call at all.
    "httpx": _EVERYONE_BUT - {"calendar_feed"},
    "requests": frozenset({"stripe_webhook"}),
    "sqlite3": frozenset(),
    "moto": frozenset(),
    "devstack": frozenset(),
    "pytest": frozenset(),
    "hypothesis": frozenset(),
    "radicale": frozenset(),
}


def layer_distributions(lock: Path = LOCK_FILE) -> frozenset[str]:
    """Normalised names of the distributions in the layer lock, plus the runtime's AWS SDK."""
    names = {_normalise(m.group(1)) for m in re.finditer(r"^([A-Za-z0-9._-]+)==", lock.read_text(), re.M)}
    return frozenset(names | RUNTIME_PROVIDED)


def hidden_modules(shipped: frozenset[str] | None = None) -> list[str]:
    """Top-level import names that only distributions outside the layer provide (dev / test tools)."""
    shipped = layer_distributions() if shipped is None else shipped
    owners: dict[str, set[str]] = {}
    for module, dists in metadata.packages_distributions().items():
        owners.setdefault(module, set()).update(_normalise(d) for d in dists)
    hidden = {m for m, dists in owners.items() if not dists & shipped and m not in sys.stdlib_module_names}
    # The project's own packages: what a function zip holds is importable, the dev-only ones are not.
    return sorted((hidden - {"shared", "functions"}) | {"devstack", "infra", "bench", "tests"})


def lambda_environment(function: str) -> dict[str, str]:
    """The process environment of a cold Lambda container for ``function`` (no AWS endpoint override)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "_X_AMZN"))}
    env.update(
        {
            "LAMBDA_TASK_ROOT": "/var/task",
            "AWS_LAMBDA_FUNCTION_NAME": f"mentor-connections-{function}",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_SERVICE_NAME": "mentor-connections",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


_PRELUDE = """
import sys, importlib.abc
class _LayerOnly(importlib.abc.MetaPathFinder):
    hidden = frozenset({hidden!r})
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.hidden:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in the Lambda layer)", name=name)
        return None
sys.meta_path.insert(0, _LayerOnly())
"""
_TIMED = """
import time, json
_t = time.perf_counter()
{statement}
_ms = (time.perf_counter() - _t) * 1000
print(json.dumps({{"ms": _ms, "modules": sorted(sys.modules)}}))
"""


@dataclass(frozen=True)
class ColdImport:
    """One cold import in a fresh interpreter: its wall time and every module it left loaded."""

    ms: float
    modules: frozenset[str]

    @property
    def top_level(self) -> frozenset[str]:
        return frozenset(m.partition(".")[0] for m in self.modules)


def cold_import(statement: str, *, function: str = "baseline", hidden: list[str] | None = None) -> ColdImport:
    """Run ``statement`` (e.g. ``import boto3``) timed in a fresh interpreter as Lambda would."""
    out = _run_lambda_like([], statement, _TIMED.format(statement=statement), function, hidden)
    found = json.loads(out.stdout.strip().splitlines()[-1])
    return ColdImport(ms=float(found["ms"]), modules=frozenset(found["modules"]))


def handler_import(function: str, *, hidden: list[str] | None = None) -> ColdImport:
    """Cold ``import functions.<function>.handler``."""
    return cold_import(f"import functions.{function}.handler", function=function, hidden=hidden)


def forbidden(function: str, imported: ColdImport) -> list[str]:
    """Libraries ``function`` loaded that :data:`ALLOWED_IMPORTERS` keeps away from it."""
    return sorted(m for m in imported.top_level if m in ALLOWED_IMPORTERS and function not in ALLOWED_IMPORTERS[m])


def self_time_by_package(statement: str, *, function: str, hidden: list[str] | None = None) -> dict[str, float]:
    """``python -X importtime``: self time (ms) per top-level package for ``statement``, largest first."""
    out = _run_lambda_like(["-X", "importtime"], statement, statement, function, hidden)
    totals: dict[str, float] = {}
    for line in out.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if match:
            top = match.group(2).partition(".")[0]
            totals[top] = totals.get(top, 0.0) + int(match.group(1)) / 1000
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def _run_lambda_like(
    flags: list[str], statement: str, code: str, function: str, hidden: list[str] | None
) -> subprocess.CompletedProcess[str]:
    """``python <flags> -c <layer-only prelude + code>`` in ``function``'s Lambda-like environment."""
    prelude = _PRELUDE.format(hidden=tuple(hidden_modules() if hidden is None else hidden))
    out = subprocess.run(
        [sys.executable, *flags, "-c", prelude + code],
        cwd=ROOT,
        env=lambda_environment(function),
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{statement!r} failed in a Lambda-like interpreter:\n{out.stderr[-2000:]}")
    return out


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
