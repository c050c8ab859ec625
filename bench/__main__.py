"""``make bench``: run every ``bench/bench_*.py`` module's ``main()`` and print one JSON report.

Benchmarks measure; they do not assert (tests do). Each module returns a dict of numbers.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path
from typing import Any


def run(selected: list[str]) -> dict[str, Any]:
    """Run the selected (or all) benchmark modules; a failing one is reported, not fatal."""
    report: dict[str, Any] = {}
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    for name in names:
        if selected and name.removeprefix("bench_") not in selected and name not in selected:
            continue
        started = time.perf_counter()
        try:
            result = importlib.import_module(f"bench.{name}").main()
        except Exception as exc:  # report and continue with the others
            result = {"error": f"{type(exc).__name__}: {exc}"}
        result["_seconds"] = round(time.perf_counter() - started, 2)
        report[name.removeprefix("bench_")] = result
        print(f"bench {name}: {json.dumps(result, default=str)}", file=sys.stderr)
    return report


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1:]), indent=2, default=str))
