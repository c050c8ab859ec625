"""docs/openapi.json (PRODUCT.md §3: "publishes its OpenAPI document, generated from the code, and
keeps it current"): the committed file is what the generator makes now, and every route of the
contract's table that some function serves is in it, with the right authorizer."""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from contract_support import PENDING, pending

from devstack import openapi
from devstack.routes import ROUTES, Route

REPO = Path(__file__).resolve().parents[2]

#: Served today (issue 3): a floor, so the coverage test cannot pass by finding nothing.
CONNECTIONS_ROUTES = {
    "GET /connections",
    "POST /connections/{provider}/authorize",
    "POST /connections/{provider}/complete",
    "POST /connections/apple",
    "GET /connections/google/calendars",
    "PUT /connections/google/calendar",
    "DELETE /connections/{provider}",
    "GET /oauth/{provider}/callback",
    "POST /webhooks/zoom",
}


@pytest.fixture(scope="module")
def generated() -> tuple[str, list[str]]:
    return openapi.generate()


@pytest.fixture(scope="module")
def document(generated: tuple[str, list[str]]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(generated[0])
    return doc


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def _operation(doc: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    for documented, item in doc["paths"].items():
        if _shape(documented) == _shape(path) and method.lower() in item:
            op: dict[str, Any] = item[method.lower()]
            return op
    return None


# --- the contract's table ---------------------------------------------------------------------------


def _product_md() -> Path | None:
    shared = os.environ.get("MC_SHARED_DIR")
    for candidate in ([Path(shared)] if shared else []) + [REPO.parent / "shared"]:
        if (candidate / "PRODUCT.md").is_file():
            return candidate / "PRODUCT.md"
    return None


def contract_routes(text: str) -> list[tuple[str, str]]:
    """(method, path) of every route in PRODUCT.md §3's table, ``{a,b}`` and ``…/x`` expanded."""
    section = text.split("## 3. HTTP API", 1)[1].split("\n## ", 1)[0]
    found: list[tuple[str, str]] = []
    method, previous = "", ""
    for row in (line for line in section.splitlines() if line.startswith("| `")):
        first_cell = row.split("|")[1]
        waiting: list[str] = []  # "`GET`, `PUT /x`": a method alone shares the next item's path
        for item in re.findall(r"`([^`]+)`", first_cell):
            parts = item.split(" ", 1)
            if len(parts) == 1 and item.isalpha() and item.isupper():
                waiting.append(item)
                continue
            if len(parts) == 2 and parts[0].isupper():
                method, path = parts
            else:
                path = item  # "/webhooks/zoom" after "POST /webhooks/stripe": the same method
            found += [(m, path) for m in waiting]
            waiting = []
            path = re.sub(r"\[.*\]$", "", path)  # "[?revoke=true]"
            if path.startswith("…"):  # "DELETE …/sessions/{sid}": the previous path's head
                rest = path[1:]
                path = previous[: previous.index(rest.split("/")[1]) - 1] + rest
            previous = path
            alternatives = re.search(r"\{([a-z]+(?:,[a-z]+)+)\}", path)
            if alternatives:
                found += [(method, path.replace(alternatives.group(0), a)) for a in alternatives.group(1).split(",")]
            else:
                found.append((method, path))
    return found


def _route_of(method: str, path: str) -> Route:
    """The ROUTES entry API Gateway would pick for a request to ``path`` (placeholders filled in)."""
    sample = re.sub(r"\{[^}]*\}", "x1", path)
    candidates = [r for r in ROUTES if r.method == method and r.match(sample) is not None]
    assert candidates, f"{method} {path} of PRODUCT.md §3 has no route in devstack/routes.py"
    return min(candidates, key=Route.specificity)


def _served(route: Route) -> bool:
    """Whether some function serves ``route`` today (its module exists; its resolver, if any, has it)."""
    if not (REPO / "functions" / route.function / "handler.py").is_file():
        return False
    module = importlib.import_module(f"functions.{route.function}.handler")
    app = getattr(module, "app", None)
    if app is None:
        return True
    served = [*app._static_routes, *app._dynamic_routes]
    return any(r.method == route.method and _shape(r.openapi_path) == _shape(route.path) for r in served)


def test_contract_table_parses() -> None:
    # Given the table's shorthand: {google,zoom} alternatives, "…/sessions/{sid}", a method shared by a list
    text = "## 3. HTTP API\n| `POST /c/{google,zoom}/a` | x |\n| `PATCH /k/{id}/s/{sid}`, `DELETE …/s/{sid}` | y |\n"
    text += "| `POST /w/stripe`, `/w/zoom` | z |\n| `DELETE /c/{provider}[?revoke=true]` | w |\n"
    text += "| `GET`, `PUT /m/me/a` | v |\n## 4. Next\n"
    # Then each becomes full routes
    assert contract_routes(text) == [
        ("POST", "/c/google/a"),
        ("POST", "/c/zoom/a"),
        ("PATCH", "/k/{id}/s/{sid}"),
        ("DELETE", "/k/{id}/s/{sid}"),
        ("POST", "/w/stripe"),
        ("POST", "/w/zoom"),
        ("DELETE", "/c/{provider}"),
        ("GET", "/m/me/a"),
        ("PUT", "/m/me/a"),
    ]


# --- the document -----------------------------------------------------------------------------------


def test_committed_document_is_current(generated: tuple[str, list[str]]) -> None:
    # Given the committed docs/openapi.json / When the generator runs on today's code / Then they agree
    committed = openapi.DOCUMENT.read_text() if openapi.DOCUMENT.exists() else ""
    stale = committed != generated[0]
    assert not stale, "docs/openapi.json is not what the code says: run make openapi"


def test_every_served_contract_route_is_documented(document: dict[str, Any]) -> None:
    # Given the routes of PRODUCT.md §3 that some function serves today
    product = _product_md()
    if product is None:
        pytest.skip("PRODUCT.md not found (set MC_SHARED_DIR to the shared directory)")
    table = contract_routes(product.read_text())
    # (rows still to be built have no route at all: neither a specific nor a catch-all one)
    for method, path in table:
        if pending(method, path):
            sample = re.sub(r"\{[^}]*\}", "x1", path)
            clash = [r.key for r in ROUTES if r.method == method and r.match(sample) is not None]
            assert clash == [], (
                f"{method} {path} is served now ({clash}): drop it from PENDING ({PENDING[method, path]})"
            )
    routes = {_route_of(method, path) for method, path in table if not pending(method, path)}
    assert len(routes) == len(ROUTES)  # the table and ROUTES agree (one route per row item)
    served = {route for route in routes if _served(route)}
    assert {route.key for route in served} >= CONNECTIONS_ROUTES
    # Then each is in the document, with the bearer JWT exactly where API Gateway's authorizer is
    for route in served:
        op = _operation(document, route.method, route.path)
        assert op is not None, f"{route.key} is served but not in docs/openapi.json"
        scheme = openapi.PLATFORM_SECURITY_SCHEME if route.platform else openapi.SECURITY_SCHEME
        assert (op.get("security") == [{scheme: []}]) is route.auth, route.key
        assert op["responses"]["4XX"] == {"$ref": "#/components/responses/Error"}
    # And nothing else is: every documented operation is a served route
    documented = sum(len(item) for item in document["paths"].values())
    assert documented == len(served)


def test_document_shape(document: dict[str, Any]) -> None:
    # Then: one document for the whole API, versioned like the package, with the shared pieces
    import tomllib

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert (document["openapi"], document["info"]["title"], document["info"]["version"]) == (
        "3.1.0",
        "mentor-connections",
        version,
    )
    assert document["servers"][0]["url"] == "{apiUrl}"
    assert document["components"]["securitySchemes"][openapi.SECURITY_SCHEME]["bearerFormat"] == "JWT"
    assert document["components"]["securitySchemes"][openapi.PLATFORM_SECURITY_SCHEME]["bearerFormat"] == "JWT"
    assert document["components"]["schemas"]["Error"]["required"] == ["error"]
    # Powertools' generic 422 is gone: validation answers 400 with the error envelope
    text = json.dumps(document)
    assert "HTTPValidationError" not in text
    assert '"422"' not in text
    # Summaries come from the handlers' docstrings
    apple = _operation(document, "POST", "/connections/apple")
    assert apple is not None
    assert apple["summary"].startswith("Connect iCloud Calendar")
    assert apple["tags"] == ["connections_api"]
    # And each operation is tagged with the function that serves it (the /mentors routes: mentors_api)
    slots = _operation(document, "GET", "/mentors/{mentorId}/slots")
    assert slots is not None
    assert slots["summary"].startswith("Bookable slots of a mentor")
    assert slots["tags"] == ["mentors_api"]
    assert {route.function for route in ROUTES if route.path.startswith("/mentors/")} == {"mentors_api"}
    for route in ROUTES:
        op = _operation(document, route.method, route.path)
        if op is not None and "tags" in op:
            assert op["tags"] == [route.function], route.key


@pytest.mark.parametrize("function", ["connections_api", "mentors_api"])
def test_a_resolver_route_missing_from_routes_is_an_error(function: str) -> None:
    # Given a route table that lacks the function's routes (the connections routes, the /mentors routes)
    routes = [r for r in ROUTES if r.function != function]
    # When the document is built / Then the generator refuses (API Gateway would never deliver them)
    with pytest.raises(openapi.OpenApiError, match=r"not in devstack/routes\.py ROUTES"):
        openapi.build_document([function], routes)


def test_a_function_without_resolver_is_documented_from_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a function whose handler has no resolver (a plain lambda_handler)
    module = types.ModuleType("functions.plain_fn.handler", "plain_fn: serves a calendar feed.\n\nMore text.")
    module.lambda_handler = lambda event, context: {}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "functions.plain_fn.handler", module)
    routes = [Route("GET", "/plain/{token}", "plain_fn", auth=False), Route("POST", "/plain", "plain_fn", auth=True)]
    # When the document is built
    doc, missing = openapi.build_document(["plain_fn"], routes)
    # Then its routes are documented from the table, with the module docstring as summary
    get = doc["paths"]["/plain/{token}"]["get"]
    assert get["summary"] == "plain_fn: serves a calendar feed."
    assert get["parameters"] == [{"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}]
    assert "security" not in get
    assert doc["paths"]["/plain"]["post"]["security"] == [{openapi.SECURITY_SCHEME: []}]
    assert missing == []


def test_cli_check_reports_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a stale copy of the document
    stale = tmp_path / "openapi.json"
    stale.write_text("{}\n")
    from devstack.cli import main

    # When `openapi --check` runs on it / Then it fails and says what to do; writing fixes it
    assert main(["openapi", "--check", "--output", str(stale)]) == 1
    assert "make openapi" in capsys.readouterr().err
    assert main(["openapi", "--output", str(stale)]) == 0
    assert main(["openapi", "--check", "--output", str(stale)]) == 0
