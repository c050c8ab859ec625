"""``make bench``: run every ``bench/bench_*.py`` module and print one table; the JSON goes to a file.

    python -m bench                 # all of them (about 4.5 minutes on 2 cores)
    python -m bench imports vault   # only these
    BENCH_JSON=out.json python -m bench

The table (stdout) has one line per figure: what was measured, the value, the target and whether
it is met. The full measurements are written as JSON to ``build/bench/report.json`` (or
``$BENCH_JSON``). A benchmark that fails is reported in the table and the JSON, not fatal; the exit
status is 1 if any failed, so a broken bench does not go unnoticed.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import Row

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = ROOT / "build" / "bench" / "report.json"


def run(selected: list[str]) -> tuple[dict[str, Any], list[tuple[str, Row]]]:
    """Run the selected (or all) benchmark modules; return the report and the table's rows."""
    report: dict[str, Any] = {}
    rows: list[tuple[str, Row]] = []
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    for name in names:
        short = name.removeprefix("bench_")
        if selected and short not in selected and name not in selected:
            continue
        print(f"bench {short} …", file=sys.stderr, flush=True)
        started = time.perf_counter()
        module = importlib.import_module(f"bench.{name}")
        try:
            result = module.main()
            lines = module.summary(result)
        except Exception as exc:  # report and continue with the others
            result = {"error": f"{type(exc).__name__}: {exc}"}
            lines = [("benchmark failed", result["error"], "", False)]
        result["_seconds"] = round(time.perf_counter() - started, 2)
        report[short] = result
        rows += [(short, line) for line in lines]
        print(f"bench {short}: {result['_seconds']} s", file=sys.stderr, flush=True)
    return report, rows


def render(rows: list[tuple[str, Row]]) -> str:
    """The rows as one Markdown table (readable as plain text too)."""
    marks = {True: "met", False: "NOT MET", None: ""}
    table = [("bench", "figure", "value", "target", "")]
    table += [(bench, figure, value, target, marks[met]) for bench, (figure, value, target, met) in rows]
    widths = [max(len(r[i]) for r in table) for i in range(5)]
    lines = ["| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)) + " |" for r in table]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    started = datetime.now(UTC)
    report, rows = run(argv)
    out = Path(os.environ.get("BENCH_JSON") or DEFAULT_JSON)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "started": started.isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }
    out.write_text(json.dumps({"meta": meta, "report": report}, indent=2, default=str) + "\n")
    print(render(rows))
    print(f"\nfull measurements: {out}")
    return 1 if any("error" in result for result in report.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
