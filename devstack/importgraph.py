"""What each function imports on a cold start, measured as Lambda would load it.

Used by ``make bench`` (``bench/bench_imports.py``: import time as a ratio to ``import boto3``) and by
``tests/unit/functions/test_import_graph.py`` (no function imports a library it should not).

A fresh interpreter imports ``functions.<name>.handler`` with what a deployed function sees, not
what the dev venv has:

* **Lambda's environment**: ``LAMBDA_TASK_ROOT`` / ``AWS_LAMBDA_FUNCTION_NAME`` are set, so the X-Ray
  SDK takes its Lambda path (a local sampler; outside Lambda it builds a botocore X-Ray client at
  import, about 70 ms that a deployed function never pays) and Powertools' Tracer is enabled.
* **The function's layers only**: distributions installed in the venv but neither in the layers
  the function gets (``infra.layer.groups.FUNCTION_LAYERS``, their locks
  ``requirements-lambda.<group>.txt``) nor provided by the runtime (boto3, botocore, s3transfer)
  are hidden by a meta-path finder installed before the clock starts. Otherwise optional imports
  find what the function does not ship (the stripe SDK imports httpx when it can; httpx's CLI
  pulls click, rich and pygments when they are installed) and the figures drift from Lambda's.
* **Lambda's HTTP stack**: in the dev venv ``urllib3/`` *is* urllib3-future (its ``.pth``
  copies itself over urllib3 at every interpreter start), while in Lambda ``urllib3`` is the real
  urllib3 of the ``core`` layer (the build drops urllib3-future's copy) and only the CalDAV
  functions have ``urllib3_future``, which niquests then uses. So ``urllib3`` is loaded from the
  locked urllib3 wheel (``build/wheelhouse``, fetched once if missing) and ``urllib3_future`` /
  niquests are hidden from every function without the ``caldav`` layer. After the timed import,
  :attr:`ColdImport.http` records which distribution ``urllib3``, botocore's HTTP session and
  niquests resolved to; ``tests/unit/functions/test_import_graph.py`` asserts it per function.

Both the handler and the ``import boto3`` baseline run under the same prelude, so the ratio
compares like with like.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Final

from infra.layer import EXCLUDED as RUNTIME_PROVIDED
from infra.layer import LOCK_FILE, PLATFORM_ARGS, ROOT, WHEELHOUSE, group_lock_file
from infra.layer.groups import FUNCTION_LAYERS, layers_of

FUNCTIONS: Final = tuple(sorted(p.parent.name for p in (ROOT / "functions").glob("*/handler.py")))

_CALDAV_USERS: Final = frozenset(f for f, groups in FUNCTION_LAYERS.items() if "caldav" in groups)
_HTTP_USERS: Final = frozenset(f for f, groups in FUNCTION_LAYERS.items() if "http" in groups)
#: Libraries a function's cold start must not load, and the only functions allowed to load them.
#: An empty set means no function (test and dev tooling). The issue's examples: no caldav in the
#: webhook, no stripe in the poller.
ALLOWED_IMPORTERS: Final[Mapping[str, frozenset[str]]] = {
    "stripe": frozenset({"stripe_webhook"}),
    "caldav": _CALDAV_USERS,
    "niquests": _CALDAV_USERS,
    "urllib3_future": _CALDAV_USERS,
    "lxml": _CALDAV_USERS,
    "recurring_ical_events": _CALDAV_USERS,
    # connections_api: through caldav (Apple connect); mentors_api (busy, availability, slots, feed URL) never
    "icalendar": frozenset({"connections_api", "busy_sync", "mint_meeting", "calendar_feed"}),
    "authlib": frozenset({"oauth_callback", "connections_api", "mint_meeting", "busy_sync", "calendar_poll"}),
    # Outbound HTTP: only where the code calls out (the http layer). The stripe SDK imports requests
    # when it can, for API calls the webhook never makes (it only verifies signatures): the stripe
    # layer leaves requests out (``Group.omit``) and the SDK falls back to urllib; httpx, optional
    # for it, is not in its layers either.
    "httpx": _HTTP_USERS,
    "requests": frozenset(),
    # A CLI library no function runs. httpx's __init__ imports its CLI module, which imports click when it
    # is importable: only the caldav layer ships it (x-wr-timezone, under recurring-ical-events, imports
    # it at top level), so a CalDAV function that imports httpx loads click too.
    "click": _CALDAV_USERS,
    "sqlite3": frozenset(),
    "moto": frozenset(),
    "devstack": frozenset(),
    "pytest": frozenset(),
    "hypothesis": frozenset(),
    "radicale": frozenset(),
}


def layer_distributions(lock: Path = LOCK_FILE) -> frozenset[str]:
    """Normalised names of the distributions in a layer lock (default: all layers), plus the runtime's AWS SDK."""
    return frozenset(_locked(lock) | RUNTIME_PROVIDED)


def function_distributions(function: str) -> frozenset[str]:
    """What ``function`` can import in Lambda: the distributions of its layers, plus the runtime's AWS SDK."""
    names: set[str] = set()
    for group in layers_of(function):
        names |= _locked(group_lock_file(group.name))
    return frozenset(names | RUNTIME_PROVIDED)


def _locked(lock: Path) -> set[str]:
    return {_normalise(m.group(1)) for m in re.finditer(r"^([A-Za-z0-9._-]+)==", lock.read_text(), re.M)}


def hidden_modules(shipped: frozenset[str] | None = None, *, function: str | None = None) -> list[str]:
    """Top-level import names that only distributions outside ``shipped`` provide.

    ``shipped`` defaults to ``function``'s layers (:func:`function_distributions`), or to every layer
    when no function is named. ``urllib3`` stays visible (the core layer ships the real one; the
    prelude loads it from its wheel); ``urllib3_future`` is hidden unless urllib3-future is shipped.
    """
    if shipped is None:
        shipped = function_distributions(function) if function else layer_distributions()
    owners: dict[str, set[str]] = {}
    for module, dists in metadata.packages_distributions().items():
        owners.setdefault(module, set()).update(_normalise(d) for d in dists)
    hidden = {m for m, dists in owners.items() if not dists & shipped and m not in sys.stdlib_module_names}
    if "urllib3-future" not in shipped:
        hidden |= {"urllib3_future"}
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
import sys, importlib.abc, importlib.machinery
class _LayerOnly(importlib.abc.MetaPathFinder):
    hidden = frozenset({hidden!r})
    urllib3_dir = {urllib3_dir!r}
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.hidden:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in this function's Lambda layers)", name=name)
        if name == "urllib3" and self.urllib3_dir:  # the real urllib3, as the core layer ships it
            return importlib.machinery.PathFinder.find_spec(name, [self.urllib3_dir])
        return None
sys.meta_path.insert(0, _LayerOnly())
"""
_TIMED = """
import time, json
_t = time.perf_counter()
{statement}
_ms = (time.perf_counter() - _t) * 1000
_loaded = sorted(sys.modules)
def _dist(module):
    version = getattr(module, "__version__", "")
    kind = "urllib3-future" if version and int(version.split(".")[-1].split("+")[0] or 0) >= 900 else "urllib3"
    return f"{{kind}} {{version}}"
_http = {{}}
try:
    import urllib3
    _http["urllib3"] = _dist(urllib3)
    import botocore.httpsession
    _http["botocore"] = _dist(sys.modules[botocore.httpsession.PoolManager.__module__.partition(".")[0]])
    import niquests.adapters
    _http["niquests"] = _dist(sys.modules[niquests.adapters.PoolManager.__module__.partition(".")[0]])
except ModuleNotFoundError as exc:
    _http.setdefault("niquests", f"not importable ({{exc.name}})")
print(json.dumps({{"ms": _ms, "modules": _loaded, "http": _http}}))
"""


@dataclass(frozen=True)
class ColdImport:
    """One cold import in a fresh interpreter: its wall time, every module it left loaded, its HTTP stack.

    ``http`` (after the clock stopped): what ``urllib3``, botocore's HTTP session and niquests
    resolved to, as ``"urllib3 2.8.0"`` / ``"urllib3-future 2.25.904"`` (or ``not importable``).
    """

    ms: float
    modules: frozenset[str]
    http: Mapping[str, str] = field(default_factory=dict)

    @property
    def top_level(self) -> frozenset[str]:
        return frozenset(m.partition(".")[0] for m in self.modules)


def cold_import(statement: str, *, function: str = "baseline", hidden: list[str] | None = None) -> ColdImport:
    """Run ``statement`` (e.g. ``import boto3``) timed in a fresh interpreter as Lambda would."""
    out = _run_lambda_like([], statement, _TIMED.format(statement=statement), function, hidden)
    found = json.loads(out.stdout.strip().splitlines()[-1])
    return ColdImport(ms=float(found["ms"]), modules=frozenset(found["modules"]), http=found.get("http", {}))


def handler_import(function: str, *, hidden: list[str] | None = None) -> ColdImport:
    """Cold ``import functions.<function>.handler`` (``hidden`` defaults to what its layers lack)."""
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


def cold_chains(function: str, *, hidden: list[str] | None = None) -> dict[str, tuple[float, list[str]]]:
    """For every top-level package ``function``'s cold import loads: (cumulative ms, the chain that first imported it).

    From ``python -X importtime`` in the Lambda-like interpreter: the chain runs from the handler
    to the package, through the project modules that import it at import time, e.g.
    ``functions.connections_api.handler > shared.busy.sync > shared.providers.google.calendar > httpx``.
    """
    statement = f"import functions.{function}.handler"
    out = _run_lambda_like(["-X", "importtime"], statement, statement, function, hidden)
    lines: list[tuple[int, str, float]] = []
    for line in out.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if match:
            lines.append((len(match.group(2)), match.group(3), int(match.group(1)) / 1000))
    found: dict[str, tuple[float, list[str]]] = {}
    for i, (depth, name, cumulative) in enumerate(lines):
        if "." in name or name in found or name in sys.stdlib_module_names:
            continue
        chain = [name]
        level = depth
        for later_depth, later_name, _ in lines[i + 1 :]:  # importtime prints a module after what it imported
            if later_depth < level:
                chain.append(later_name)
                level = later_depth
        found[name] = (cumulative, chain[::-1])
    return found


def _run_lambda_like(
    flags: list[str], statement: str, code: str, function: str, hidden: list[str] | None
) -> subprocess.CompletedProcess[str]:
    """``python <flags> -c <layer-only prelude + code>`` in ``function``'s Lambda-like environment.

    ``hidden`` defaults to what ``function``'s layers lack (every layer for ``baseline``).
    """
    if hidden is None:
        hidden = hidden_modules(function=function if function in FUNCTION_LAYERS else None)
    prelude = _PRELUDE.format(hidden=tuple(hidden), urllib3_dir=str(real_urllib3()))
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


def real_urllib3() -> Path:
    """A directory holding the real urllib3 the core layer ships (``build/lambda-sim/urllib3-<version>``).

    The dev venv has no real urllib3 to load (urllib3-future overwrote it), so the Lambda-like
    interpreters import it from the very wheel the core layer is built from (pure Python),
    unpacked once and byte-compiled like the venv's packages, so timings compare like with like.
    """
    wheel = _real_urllib3_wheel()
    target = ROOT / "build" / "lambda-sim" / wheel.stem
    if not (target / "urllib3" / "__init__.py").is_file():
        import compileall
        import shutil
        import zipfile

        staging = target.with_name(target.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(staging)
        compileall.compile_dir(staging, quiet=1)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return target


def _real_urllib3_wheel() -> Path:
    """The locked urllib3 wheel: ``build/wheelhouse`` (``make layer``), downloaded once if missing."""
    line = re.search(r"^urllib3==(\S+) \\\n\s+(--hash=sha256:[0-9a-f]{64})", group_lock_file("core").read_text(), re.M)
    if line is None:
        raise RuntimeError("requirements-lambda.core.txt pins no urllib3: the runtime HTTP stack cannot be simulated")
    version, digest = line.groups()
    wheel = WHEELHOUSE / f"urllib3-{version}-py3-none-any.whl"
    if not wheel.is_file():
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as req:
            req.write(f"urllib3=={version} {digest}\n")
            req.flush()
            got = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-deps",
                    "--require-hashes",
                    "--dest",
                    str(WHEELHOUSE),
                    *PLATFORM_ARGS,
                    "-r",
                    req.name,
                ],
                capture_output=True,
                text=True,
                check=False,
            )
        if got.returncode != 0 or not wheel.is_file():
            raise RuntimeError(
                f"{wheel.relative_to(ROOT)} is missing and could not be downloaded: run `make layer` once with "
                f"access to the package index\n{got.stderr[-1000:]}"
            )
    return wheel


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
