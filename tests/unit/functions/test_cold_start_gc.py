"""functions/__init__.py: in Lambda the garbage collector waits out the handler's import, then resumes.

Every handler ends with ``init_done()``; in a Lambda-like interpreter the collector is on again after
the import, with what the import built frozen; outside Lambda nothing is paused.
"""

from __future__ import annotations

import ast
import gc
import importlib
from pathlib import Path

import pytest

from devstack import importgraph

FUNCTIONS_DIR = Path(__file__).resolve().parents[3] / "functions"
HANDLERS = sorted(FUNCTIONS_DIR.glob("*/handler.py"))


@pytest.mark.parametrize("path", HANDLERS, ids=lambda p: p.parent.name)
def test_every_handler_ends_its_import_with_init_done(path: Path) -> None:
    last = ast.parse(path.read_text()).body[-1]
    assert isinstance(last, ast.Expr), f"{path}: the last statement is not a call"
    assert isinstance(last.value, ast.Call), f"{path}: the last statement is not a call"
    assert isinstance(last.value.func, ast.Name), path
    assert last.value.func.id == "init_done", path


def test_every_function_has_a_handler_checked_here() -> None:
    assert {p.parent.name for p in HANDLERS} == set(importgraph.FUNCTIONS)


def test_in_a_lambda_like_interpreter_the_collector_is_back_on_after_the_import() -> None:
    check = (
        "import gc\n"
        "import functions\n"
        "assert not gc.isenabled(), 'paused from the first line of the functions package'\n"
        "import functions.stripe_webhook.handler\n"
        "assert gc.isenabled(), 'resumed by init_done()'\n"
        "assert gc.get_freeze_count() > 10_000, gc.get_freeze_count()\n"
        "functions.init_done()\n"
        "assert gc.isenabled()\n"
    )
    importgraph.cold_import(check, function="stripe_webhook")  # raises with the interpreter's stderr on failure


def test_outside_lambda_nothing_is_paused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAMBDA_TASK_ROOT", raising=False)
    import functions

    importlib.reload(functions)
    assert gc.isenabled()
    functions.init_done()
    assert gc.isenabled()
