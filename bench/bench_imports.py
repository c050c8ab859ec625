"""Cold import of every function, as a ratio to ``import boto3`` in the same run, and what it loads.

Each ``functions/<name>/handler.py`` and the ``import boto3`` baseline are imported in fresh
interpreters, in turns (a busy machine slows them alike), ``RUNS`` times; medians are reported.
Every interpreter runs as a Lambda container would (:mod:`devstack.importgraph`): Lambda's
environment variables (so the X-Ray SDK takes its Lambda path and the Tracer is on), only the
packages of the function's own layers (``import boto3``: of every layer), and the real urllib3
where the dev venv has urllib3-future in its place (botocore uses the real one in Lambda).

For each function: the median, the ratio (target: every function <= 3.0x, the Stripe webhook
<= 2.5x), the HTTP stack it ran on, the libraries it loads that
:data:`devstack.importgraph.ALLOWED_IMPORTERS` keeps away from it (``forbidden``; the unit test
``test_import_graph`` fails on any), and the packages that cost it most beyond what ``import boto3``
loads (``-X importtime`` self time, one run: where the gap to boto3 comes from). The Stripe
webhook is also timed with a stub ``stripe`` module, to show what the SDK costs, and with the garbage
collector left on during its import (``functions/__init__.py`` pauses it in Lambda), to show what
that pause saves.

``python -m bench imports`` runs only this.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

from bench import Row
from devstack import importgraph
from infra.layer.groups import FUNCTION_LAYERS

RUNS = 7
DEFAULT_TARGET = 3.0
TARGET = {"stripe_webhook": 2.5}
TOP_PACKAGES = 6

_STUB_STRIPE = """
import types
_stripe = types.ModuleType("stripe")
_stripe.WebhookSignature = type("WebhookSignature", (), {})
_stripe.SignatureVerificationError = type("SignatureVerificationError", (Exception,), {})
sys.modules["stripe"] = _stripe
"""


#: ``functions/__init__.py`` pauses the garbage collector during a handler's import in Lambda; this
#: makes its ``gc.disable()`` a no-op, to show what the pause saves.
_COLLECTOR_ON = """
import gc
gc.disable = lambda: None
"""


def main() -> dict[str, Any]:
    """Measure every function's cold import; return medians, ratios, findings and costs."""
    hidden = {name: importgraph.hidden_modules(function=name) for name in importgraph.FUNCTIONS}
    hidden["baseline"] = importgraph.hidden_modules()
    variants: dict[str, tuple[str, str]] = {"boto3": ("import boto3", "baseline")}
    for name in importgraph.FUNCTIONS:
        variants[name] = (f"import functions.{name}.handler", name)
    variants["stripe_webhook_without_stripe_sdk"] = (
        _STUB_STRIPE + "import functions.stripe_webhook.handler",
        "stripe_webhook",
    )
    variants["stripe_webhook_collector_on"] = (
        _COLLECTOR_ON + "import functions.stripe_webhook.handler",
        "stripe_webhook",
    )
    samples: dict[str, list[float]] = {name: [] for name in variants}
    loaded: dict[str, importgraph.ColdImport] = {}
    for _ in range(RUNS):
        for name, (statement, function) in variants.items():
            found = importgraph.cold_import(statement, function=function, hidden=hidden[function])
            samples[name].append(found.ms)
            loaded[name] = found
    ms = {name: statistics.median(values) for name, values in samples.items()}
    base = ms["boto3"]
    baseline_packages = set(
        importgraph.self_time_by_package("import boto3", function="baseline", hidden=hidden["baseline"])
    )
    functions: dict[str, Any] = {}
    for name in importgraph.FUNCTIONS:
        costs = importgraph.self_time_by_package(f"import functions.{name}.handler", function=name, hidden=hidden[name])
        extra = {pkg: round(v, 1) for pkg, v in costs.items() if pkg not in baseline_packages}
        functions[name] = {
            "import_ms": round(ms[name], 1),
            "ratio_to_boto3": round(ms[name] / base, 2),
            "target_ratio": TARGET.get(name, DEFAULT_TARGET),
            "forbidden": importgraph.forbidden(name, loaded[name]),
            "layers": list(FUNCTION_LAYERS[name]),
            "http": dict(loaded[name].http),
            "modules": len(loaded[name].modules),
            "top_packages_beyond_boto3_ms": dict(list(extra.items())[:TOP_PACKAGES]),
        }
    stub = ms["stripe_webhook_without_stripe_sdk"]
    collector_on = ms["stripe_webhook_collector_on"]
    return {
        "runs_each": RUNS,
        "environment": "Lambda-like: LAMBDA_TASK_ROOT set, the function's layers only, real urllib3",
        "import_boto3_ms": round(base, 1),
        "functions": functions,
        "stripe_webhook_without_stripe_sdk": {
            "import_ms": round(stub, 1),
            "ratio_to_boto3": round(stub / base, 2),
            "stripe_sdk_share_ms": round(ms["stripe_webhook"] - stub, 1),
        },
        "stripe_webhook_collector_on_during_import": {
            "import_ms": round(collector_on, 1),
            "ratio_to_boto3": round(collector_on / base, 2),
            "pause_saves_ms": round(collector_on - ms["stripe_webhook"], 1),
        },
    }


def summary(result: dict[str, Any]) -> list[Row]:
    """``(figure, value, target, met)`` rows for the ``make bench`` table."""
    rows: list[Row] = [("cold import: `import boto3` (baseline)", f"{result['import_boto3_ms']:.0f} ms", "", None)]
    for name, row in result["functions"].items():
        target = f"<= {row['target_ratio']}x" if row["target_ratio"] else ""
        forbidden = ", ".join(row["forbidden"]) or "none"
        rows.append(
            (
                f"cold import: {name}",
                f"{row['ratio_to_boto3']}x ({row['import_ms']:.0f} ms); forbidden: {forbidden}; "
                f"layers: {'+'.join(row['layers'])}",
                target,
                row["ratio_to_boto3"] <= row["target_ratio"] and not row["forbidden"]
                if row["target_ratio"]
                else (False if row["forbidden"] else None),
            )
        )
    stub = result["stripe_webhook_without_stripe_sdk"]
    rows.append(
        (
            "cold import: stripe_webhook with a stub stripe SDK",
            f"{stub['ratio_to_boto3']}x (SDK share {stub['stripe_sdk_share_ms']:.0f} ms)",
            "",
            None,
        )
    )
    on = result["stripe_webhook_collector_on_during_import"]
    rows.append(
        (
            "cold import: stripe_webhook with the garbage collector on during the import",
            f"{on['ratio_to_boto3']}x (the pause saves {on['pause_saves_ms']:.0f} ms)",
            "",
            None,
        )
    )
    return rows


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
