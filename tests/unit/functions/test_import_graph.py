"""Cold start: no function loads a library it does not need (``devstack.importgraph`` holds the rules).

Each handler is imported in a fresh interpreter as Lambda would load it: Lambda's environment
variables (Tracer on, the X-Ray SDK on its Lambda path) and only the packages the layer ships.
"""

from __future__ import annotations

import pytest

from devstack import importgraph


@pytest.fixture(scope="module")
def hidden() -> list[str]:
    return importgraph.hidden_modules()


@pytest.mark.parametrize("function", importgraph.FUNCTIONS)
def test_a_cold_start_loads_no_forbidden_library(function: str, hidden: list[str]) -> None:
    """Given a Lambda-like interpreter, when the handler is imported, then it imports without the dev
    venv's extras and loads none of the libraries kept away from it (stripe only in the webhook,
    CalDAV only where Apple is talked to, no test tooling anywhere)."""
    imported = importgraph.handler_import(function, hidden=hidden)
    assert f"functions.{function}.handler" in imported.modules
    assert importgraph.forbidden(function, imported) == []


def test_the_rules_name_the_issues_examples() -> None:
    """The issue's examples hold as rules: no caldav in the webhook, no stripe in the poller."""
    assert "stripe_webhook" not in importgraph.ALLOWED_IMPORTERS["caldav"]
    assert "calendar_poll" not in importgraph.ALLOWED_IMPORTERS["stripe"]
    assert set(importgraph.FUNCTIONS) >= {"stripe_webhook", "calendar_poll", "mint_meeting", "busy_sync"}


def test_the_layer_hides_dev_tools_but_not_the_project_or_its_runtime(hidden: list[str]) -> None:
    """The simulated layer hides what only the dev venv has and keeps what ships."""
    assert {"moto", "pytest", "devstack"} <= set(hidden)
    assert not {"shared", "functions", "boto3", "botocore", "stripe", "pydantic", "caldav"} & set(hidden)


def test_a_forbidden_import_is_reported() -> None:
    """Given a cold import that loaded stripe and caldav, the poller's findings name both."""
    fake = importgraph.ColdImport(ms=1.0, modules=frozenset({"stripe", "stripe._webhook", "caldav", "boto3"}))
    assert importgraph.forbidden("calendar_poll", fake) == ["caldav", "stripe"]
    assert importgraph.forbidden("stripe_webhook", fake) == ["caldav"]
