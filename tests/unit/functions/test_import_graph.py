"""Cold start: each function loads only what it needs, from its own layers, on Lambda's HTTP stack.

Each handler is imported in a fresh interpreter as Lambda would load it (``devstack.importgraph``):
Lambda's environment variables (Tracer on, the X-Ray SDK on its Lambda path), only the packages of
the function's own layers (``infra.layer.groups.FUNCTION_LAYERS``), and the real urllib3 where the
dev venv has urllib3-future in its place. The layer table itself is checked against the static
import graph of the code (``infra.layer.graph``): every third-party module a function's code can
import, lazily or not, is in its layers, and no layer is given to a function that cannot use it.
"""

from __future__ import annotations

import pytest

from devstack import importgraph
from infra.layer import graph, group_lock_file
from infra.layer.groups import FUNCTION_LAYERS, GROUPS, MAX_LAYERS_PER_FUNCTION, NOT_RUN, layers_of, stacked


@pytest.fixture(scope="module")
def cold() -> dict[str, importgraph.ColdImport]:
    return {function: importgraph.handler_import(function) for function in importgraph.FUNCTIONS}


@pytest.mark.parametrize("function", importgraph.FUNCTIONS)
def test_a_cold_start_loads_no_forbidden_library(function: str, cold: dict[str, importgraph.ColdImport]) -> None:
    """Given a Lambda-like interpreter with only the function's layers, when the handler is imported, then it
    imports and loads none of the libraries kept away from it (stripe only in the webhook, CalDAV only where
    Apple is talked to, no test tooling anywhere)."""
    imported = cold[function]
    assert f"functions.{function}.handler" in imported.modules
    assert importgraph.forbidden(function, imported) == []


@pytest.mark.parametrize("function", importgraph.FUNCTIONS)
def test_each_function_runs_on_the_http_stack_it_gets_in_lambda(
    function: str, cold: dict[str, importgraph.ColdImport]
) -> None:
    """``urllib3`` is the real urllib3 of the core layer and botocore uses it, in every function; only the
    CalDAV functions have niquests, and it runs on urllib3-future (as ``urllib3_future``, beside urllib3)."""
    http = cold[function].http
    assert http["urllib3"].startswith("urllib3 "), http
    assert http["botocore"] == http["urllib3"], http
    if "caldav" in FUNCTION_LAYERS[function]:
        assert http["niquests"].startswith("urllib3-future "), http
    else:
        assert http["niquests"].startswith("not importable"), http


@pytest.mark.parametrize("function", importgraph.FUNCTIONS)
def test_the_layer_table_matches_the_import_graph(function: str) -> None:
    """Every third-party module the function's code can import is in its layers (or the runtime), save the
    NOT_RUN exceptions, and every layer it gets provides something its code imports."""
    shipped = importgraph.function_distributions(function)
    needed = graph.distributions_needed(function)
    missing = {
        module: sorted(dists)
        for module, dists in needed.items()
        if not dists & shipped and (function, module) not in NOT_RUN
    }
    assert missing == {}, f"{function} imports these but its layers lack them: add a layer in infra/layer/groups.py"
    used_groups = set()
    for group in layers_of(function):
        locked = importgraph.layer_distributions(group_lock_file(group.name))
        if any(dists & locked for module, dists in needed.items() if (function, module) not in NOT_RUN):
            used_groups.add(group.name)
    # a group is also used when a group stacked on it is (its packages are not repeated above it)
    for group in layers_of(function):
        if group.name in used_groups:
            used_groups.update(stacked(group))
    assert used_groups == set(FUNCTION_LAYERS[function]), f"{function} ships layers its code never imports"


def test_every_function_has_its_layers_and_their_foundations() -> None:
    assert set(FUNCTION_LAYERS) == set(importgraph.FUNCTIONS)
    for function, names in FUNCTION_LAYERS.items():
        assert len(names) <= MAX_LAYERS_PER_FUNCTION
        for group in layers_of(function):
            assert set(stacked(group)) <= set(names), f"{function}: {group.name} is stacked on {stacked(group)}"
    assert {g.name for g in GROUPS} == {name for names in FUNCTION_LAYERS.values() for name in names}


def test_the_not_run_exceptions_are_still_reached_statically() -> None:
    """An exception that no longer applies (the import chain was cut) is removed from NOT_RUN."""
    for function, module in NOT_RUN:
        assert graph.chain(function, module), f"{function} no longer reaches {module}: drop it from NOT_RUN"


def test_the_rules_name_the_issues_examples() -> None:
    """The issue's examples hold as rules: no caldav in the webhook, no stripe in the poller."""
    assert "stripe_webhook" not in importgraph.ALLOWED_IMPORTERS["caldav"]
    assert "calendar_poll" not in importgraph.ALLOWED_IMPORTERS["stripe"]
    assert set(importgraph.FUNCTIONS) >= {"stripe_webhook", "calendar_poll", "mint_meeting", "busy_sync"}


def test_the_layers_hide_what_a_function_does_not_ship() -> None:
    """The simulated layers hide the dev venv's tools everywhere, and a function's missing layers from it."""
    everything = importgraph.hidden_modules()
    assert {"moto", "pytest", "devstack"} <= set(everything)
    assert not {"shared", "functions", "boto3", "botocore", "stripe", "pydantic", "caldav"} & set(everything)
    webhook = set(importgraph.hidden_modules(function="stripe_webhook"))
    assert {"caldav", "niquests", "urllib3_future", "httpx", "authlib", "cryptography", "requests"} <= webhook
    assert not {"stripe", "urllib3", "boto3", "pydantic", "aws_lambda_powertools"} & webhook
    apple = set(importgraph.hidden_modules(function="busy_sync"))
    assert not {"caldav", "niquests", "urllib3_future", "httpx", "urllib3"} & apple
    assert "stripe" in apple


def test_a_forbidden_import_is_reported() -> None:
    """Given a cold import that loaded stripe and caldav, the poller's findings name both."""
    fake = importgraph.ColdImport(ms=1.0, modules=frozenset({"stripe", "stripe._webhook", "caldav", "boto3"}))
    assert importgraph.forbidden("calendar_poll", fake) == ["caldav", "stripe"]
    assert importgraph.forbidden("stripe_webhook", fake) == ["caldav"]


def test_httpx2_is_neither_shipped_nor_installed() -> None:
    """docs/decisions/0001-http-client.md: authlib 1.9 builds its clients on httpx2 whenever httpx2 is importable,
    while our code hands them httpx objects (transports, timeouts) and catches httpx's exceptions; the two must
    not meet, in Lambda or in the tests."""
    import importlib.util

    assert "httpx2" not in importgraph.layer_distributions()
    assert importlib.util.find_spec("httpx2") is None


def test_the_tests_run_botocore_on_the_urllib3_lambda_ships() -> None:
    # Given the dev/test venv (make venv undoes urllib3-future's .pth override, as Lambda never runs it)
    import re
    import sys

    import urllib3
    from botocore import httpsession

    pinned = re.search(r"^urllib3==([0-9.]+)", group_lock_file("core").read_text(), re.M)
    assert pinned is not None
    # Then `urllib3` is the lock's urllib3 (not the fork copied over it), and botocore's sessions use it
    assert urllib3.__version__ == pinned.group(1)
    assert "future" not in urllib3.__file__
    assert httpsession.PoolManager.__module__.startswith("urllib3.")
    assert sys.modules[httpsession.PoolManager.__module__].__file__.startswith(urllib3.__path__[0])


def test_a_re_export_is_followed_only_where_it_is_used(tmp_path: object) -> None:
    """``NAME = module.attr`` in a composition root (``shared.wiring`` re-exporting ``shared.wiring.hooks``)
    reaches the function it names only from the functions that use it, not from every importer."""
    from pathlib import Path

    root = Path(str(tmp_path))
    files = {
        "shared/__init__.py": "",
        "shared/wiring/__init__.py": (
            "def store():\n    import boto3\n    return boto3\n\n\n"
            "from shared.wiring import hooks as _hooks\n\nconnect = _hooks.connect\n"
        ),
        "shared/wiring/hooks.py": "def connect():\n    import authlib\n    return authlib\n",
        "functions/__init__.py": "",
        "functions/plain/__init__.py": "",
        "functions/plain/handler.py": "from shared import wiring\n\n\ndef handle():\n    return wiring.store()\n",
        "functions/hooked/__init__.py": "",
        "functions/hooked/handler.py": "from shared import wiring\n\n\ndef handle():\n    return wiring.connect()\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    _, plain = graph.reachable("plain", root)
    _, hooked = graph.reachable("hooked", root)
    assert "authlib" not in plain
    assert "authlib" in hooked
