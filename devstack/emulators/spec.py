"""Access to the providers' machine-readable API descriptions, and conformance checkers.

The files live in ``<repo>/../shared/specs`` (override with ``MC_SHARED_DIR``, which may name
either the shared directory or the ``specs`` directory itself). See ``specs/NOTES.md`` there.

Two checkers walk a JSON value against a schema and report what does not fit:

* :func:`check_discovery` - Google API Discovery schemas (``$ref`` by schema id,
  ``properties``, ``items``, ``additionalProperties``; ``format: int64`` values are JSON
  strings in Google's wire format).
* :func:`check_openapi` - OpenAPI 3 schemas (``$ref`` to ``#/components/...``, ``allOf``,
  ``oneOf``/``anyOf``, ``properties``, ``items``, ``additionalProperties``, ``enum``,
  ``maxLength``, ``minimum``/``maximum``, ``required`` in request mode).

Both return :class:`Finding` objects; ``problem == "unknown field"`` marks a field the schema
does not declare. :func:`assert_request_conforms` / :func:`assert_response_conforms` wrap
them for tests of the project's own provider clients.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

GOOGLE_DISCOVERY = "google-calendar-v3.discovery.json"
ZOOM_MEETINGS = "zoom-meetings-openapi.json"
ZOOM_USERS = "zoom-users-openapi.json"
OAUTH_ENDPOINTS = "oauth-endpoints.json"

ENV_SHARED_DIR = "MC_SHARED_DIR"

UNKNOWN = "unknown field"

JSONDict = dict[str, Any]


class SpecNotFoundError(FileNotFoundError):
    pass


def repo_root() -> Path:
    # devstack/emulators/spec.py -> repo root is two levels above devstack/
    return Path(__file__).resolve().parents[2]


def specs_dir() -> Path:
    """Directory holding the spec files."""
    override = os.environ.get(ENV_SHARED_DIR)
    candidates: list[Path] = []
    if override:
        base = Path(override)
        candidates += [base / "specs", base]
    candidates.append(repo_root().parent / "shared" / "specs")
    for c in candidates:
        if (c / GOOGLE_DISCOVERY).is_file() or (c / ZOOM_MEETINGS).is_file():
            return c
    raise SpecNotFoundError(
        f"provider specs not found (looked in {', '.join(str(c) for c in candidates)}); "
        f"set {ENV_SHARED_DIR} to the shared directory"
    )


def specs_available() -> bool:
    try:
        specs_dir()
    except SpecNotFoundError:
        return False
    return True


@lru_cache(maxsize=16)
def _load(path: str) -> JSONDict:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data


def load_spec(name: str) -> JSONDict:
    return _load(str(specs_dir() / name))


def google_discovery() -> JSONDict:
    return load_spec(GOOGLE_DISCOVERY)


def zoom_meetings_openapi() -> JSONDict:
    return load_spec(ZOOM_MEETINGS)


def zoom_users_openapi() -> JSONDict:
    return load_spec(ZOOM_USERS)


def oauth_endpoints() -> JSONDict:
    return load_spec(OAUTH_ENDPOINTS)


@dataclass(frozen=True)
class Finding:
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def _child(path: str, key: str) -> str:
    if re.fullmatch(r"[A-Za-z_@$][A-Za-z0-9_@$\-]*", key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _type_ok(expected: str, value: Any) -> bool:
    actual = _json_type(value)
    if expected == actual or expected == "any":
        return True
    return expected == "number" and actual == "integer"


def _format_problem(fmt: str | None, value: str) -> str | None:
    if fmt in ("int64", "uint64", "int32", "uint32"):
        return None if re.fullmatch(r"-?\d+", value) else f"expected {fmt} digits in a string"
    if fmt == "date-time":
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return "not an RFC 3339 date-time"
        return None
    if fmt == "date":
        try:
            date.fromisoformat(value)
        except ValueError:
            return "not a yyyy-mm-dd date"
    return None


# --------------------------------------------------------------------------------------------
# Google discovery
# --------------------------------------------------------------------------------------------


def discovery_schema(name: str, doc: Mapping[str, Any] | None = None) -> JSONDict:
    d = doc if doc is not None else google_discovery()
    schemas = d.get("schemas", {})
    if name not in schemas:
        raise KeyError(f"discovery schema {name!r} not found")
    schema = schemas[name]
    assert isinstance(schema, dict)
    return schema


def check_discovery(
    value: Any,
    schema: str | Mapping[str, Any],
    *,
    doc: Mapping[str, Any] | None = None,
    check_types: bool = True,
    root: str = "$",
) -> list[Finding]:
    """Walk ``value`` against a discovery schema (a schema id such as ``"Event"`` or a schema
    object). Returns unknown fields and (with ``check_types``) type/format mismatches."""
    d = doc if doc is not None else google_discovery()
    sch: Mapping[str, Any] = {"$ref": schema} if isinstance(schema, str) else schema
    findings: list[Finding] = []
    _walk_discovery(value, sch, root, findings, d.get("schemas", {}), check_types)
    return findings


def unknown_discovery_paths(value: Any, schema: str | Mapping[str, Any]) -> list[str]:
    return [f.path for f in check_discovery(value, schema, check_types=False) if f.problem == UNKNOWN]


def _walk_discovery(
    value: Any,
    schema: Mapping[str, Any],
    path: str,
    out: list[Finding],
    schemas: Mapping[str, Any],
    check_types: bool,
) -> None:
    seen = 0
    while "$ref" in schema:
        ref = schema["$ref"]
        if ref not in schemas:
            out.append(Finding(path, f"schema $ref {ref!r} missing from the document"))
            return
        schema = schemas[ref]
        seen += 1
        if seen > 20:
            return
    if value is None:
        return  # JSON null clears a field in patch semantics; nothing to check below it
    typ = schema.get("type")
    if typ is None and ("properties" in schema or "additionalProperties" in schema):
        typ = "object"
    if typ == "object":
        if not isinstance(value, dict):
            if check_types:
                out.append(Finding(path, f"expected object, got {_json_type(value)}"))
            return
        props = schema.get("properties", {})
        addl = schema.get("additionalProperties")
        for key, sub in value.items():
            if key in props:
                _walk_discovery(sub, props[key], _child(path, key), out, schemas, check_types)
            elif isinstance(addl, Mapping):
                _walk_discovery(sub, addl, f"{path}[{json.dumps(key)}]", out, schemas, check_types)
            else:
                out.append(Finding(_child(path, key), UNKNOWN))
        return
    if typ == "array":
        if not isinstance(value, list):
            if check_types:
                out.append(Finding(path, f"expected array, got {_json_type(value)}"))
            return
        items = schema.get("items", {})
        for i, sub in enumerate(value):
            _walk_discovery(sub, items, f"{path}[{i}]", out, schemas, check_types)
        return
    if not check_types or typ is None:
        return
    if not _type_ok(str(typ), value):
        out.append(Finding(path, f"expected {typ}, got {_json_type(value)}"))
        return
    if isinstance(value, str):
        problem = _format_problem(schema.get("format"), value)
        if problem:
            out.append(Finding(path, problem))
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        out.append(Finding(path, f"{value!r} not one of {enum}"))


@dataclass(frozen=True)
class DiscoveryMethod:
    id: str  # e.g. "calendar.events.insert"
    http_method: str
    path: str  # relative to servicePath, e.g. "calendars/{calendarId}/events"
    scopes: tuple[str, ...]
    request_ref: str | None
    response_ref: str | None
    parameters: Mapping[str, Any]

    @property
    def rpc_name(self) -> str:
        """``calendar.v3.Events.Insert`` - the form Google puts in ErrorInfo metadata.method."""
        parts = self.id.split(".")
        return ".".join(["calendar", "v3", *(p[:1].upper() + p[1:] for p in parts[1:])])


def discovery_methods(doc: Mapping[str, Any] | None = None) -> dict[str, DiscoveryMethod]:
    d = doc if doc is not None else google_discovery()
    out: dict[str, DiscoveryMethod] = {}

    def visit(resources: Mapping[str, Any]) -> None:
        for res in resources.values():
            for m in res.get("methods", {}).values():
                out[m["id"]] = DiscoveryMethod(
                    id=m["id"],
                    http_method=m["httpMethod"],
                    path=m["path"],
                    scopes=tuple(m.get("scopes", [])),
                    request_ref=(m.get("request") or {}).get("$ref"),
                    response_ref=(m.get("response") or {}).get("$ref"),
                    parameters=m.get("parameters", {}),
                )
            visit(res.get("resources", {}))

    visit(d.get("resources", {}))
    return out


def check_discovery_query(method: DiscoveryMethod, query: Mapping[str, Any], doc: Mapping[str, Any]) -> list[Finding]:
    """Query parameters against the method's and the document's parameter declarations."""
    findings: list[Finding] = []
    params = {**doc.get("parameters", {}), **method.parameters}
    for name, raw in query.items():
        decl = params.get(name)
        if decl is None or decl.get("location") != "query":
            findings.append(Finding(f"?{name}", "unknown query parameter"))
            continue
        values = raw if isinstance(raw, list) else [raw]
        for v in values:
            sv = str(v).lower() if isinstance(v, bool) else str(v)
            if decl.get("type") == "integer":
                if not re.fullmatch(r"-?\d+", sv):
                    findings.append(Finding(f"?{name}", "expected integer"))
                    continue
                lo, hi = decl.get("minimum"), decl.get("maximum")
                if lo is not None and int(sv) < int(lo):
                    findings.append(Finding(f"?{name}", f"below minimum {lo}"))
                if hi is not None and int(sv) > int(hi):
                    findings.append(Finding(f"?{name}", f"above maximum {hi}"))
            elif decl.get("type") == "boolean" and sv not in ("true", "false"):
                findings.append(Finding(f"?{name}", "expected true/false"))
            enum = decl.get("enum")
            if enum is not None and sv not in enum:
                findings.append(Finding(f"?{name}", f"{sv!r} not one of {enum}"))
    return findings


# --------------------------------------------------------------------------------------------
# OpenAPI (Zoom)
# --------------------------------------------------------------------------------------------


def _resolve_pointer(doc: Mapping[str, Any], ref: str) -> Mapping[str, Any]:
    if not ref.startswith("#/"):
        raise KeyError(f"only local $refs are supported: {ref}")
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[part]
    if not isinstance(node, Mapping):
        raise KeyError(f"$ref {ref} does not name an object")
    return node


def openapi_operation(doc: Mapping[str, Any], path: str, method: str) -> Mapping[str, Any]:
    try:
        op = doc["paths"][path][method.lower()]
    except KeyError as exc:
        raise KeyError(f"operation {method.upper()} {path} not in the OpenAPI document") from exc
    assert isinstance(op, Mapping)
    return op


def _json_content_schema(node: Mapping[str, Any], doc: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if "$ref" in node:
        node = _resolve_pointer(doc, node["$ref"])
    content = node.get("content", {})
    media = content.get("application/json")
    if media is None:
        return None
    schema = media.get("schema")
    return schema if isinstance(schema, Mapping) else None


def openapi_request_schema(doc: Mapping[str, Any], path: str, method: str) -> Mapping[str, Any] | None:
    body = openapi_operation(doc, path, method).get("requestBody")
    return _json_content_schema(body, doc) if body else None


def openapi_response_schema(
    doc: Mapping[str, Any], path: str, method: str, status: int | str
) -> Mapping[str, Any] | None:
    responses = openapi_operation(doc, path, method).get("responses", {})
    node = responses.get(str(status))
    return _json_content_schema(node, doc) if node else None


def openapi_scopes(doc: Mapping[str, Any], path: str, method: str) -> tuple[list[str], list[str]]:
    """``(granular, all_accepted)`` scopes of an operation: ``x-extensions.x-granular-scopes``
    and the union of its ``security`` oauth scope lists (which include the classic scopes)."""
    op = openapi_operation(doc, path, method)
    ext = op.get("x-extensions", {})
    granular = list(ext.get("x-granular-scopes", []))
    accepted: list[str] = []
    for req in op.get("security", []):
        for scopes in req.values():
            for s in scopes:
                if s not in accepted:
                    accepted.append(s)
    for s in granular:
        if s not in accepted:
            accepted.append(s)
    return granular, accepted


def _merge_openapi(schema: Mapping[str, Any], doc: Mapping[str, Any], depth: int = 0) -> JSONDict:
    """Resolve ``$ref`` and fold ``allOf``/``oneOf``/``anyOf`` into one permissive schema."""
    if depth > 30:
        return {}
    if "$ref" in schema:
        base = dict(_merge_openapi(_resolve_pointer(doc, schema["$ref"]), doc, depth + 1))
        return base
    out: JSONDict = {k: v for k, v in schema.items() if k not in ("allOf", "oneOf", "anyOf")}
    parts: list[Mapping[str, Any]] = []
    for key in ("allOf", "oneOf", "anyOf"):
        parts.extend(schema.get(key, []))
    if parts:
        props: JSONDict = dict(out.get("properties", {}))
        required: list[str] = list(out.get("required", [])) if "allOf" in schema else []
        for part in parts:
            merged = _merge_openapi(part, doc, depth + 1)
            for name, sub in merged.get("properties", {}).items():
                props.setdefault(name, sub)
            if "allOf" in schema and part in schema.get("allOf", []):
                required += list(merged.get("required", []))
            for k in ("type", "items", "additionalProperties", "enum", "format"):
                if k in merged and k not in out:
                    out[k] = merged[k]
        if props:
            out["properties"] = props
            out.setdefault("type", "object")
        if required:
            out["required"] = required
        else:
            out.pop("required", None)
    return out


def check_openapi(
    value: Any,
    schema: Mapping[str, Any],
    doc: Mapping[str, Any],
    *,
    request_mode: bool = False,
    root: str = "$",
) -> list[Finding]:
    """Walk ``value`` against an OpenAPI schema. Unknown fields are reported whenever the
    schema does not declare them (absent ``additionalProperties`` counts as closed here -
    the point is to catch fields the provider never documented). ``request_mode`` adds
    ``required``, ``maxLength`` and ``minimum``/``maximum`` checks."""
    findings: list[Finding] = []
    _walk_openapi(value, schema, root, findings, doc, request_mode, 0)
    return findings


def _walk_openapi(
    value: Any,
    schema: Mapping[str, Any],
    path: str,
    out: list[Finding],
    doc: Mapping[str, Any],
    request_mode: bool,
    depth: int,
) -> None:
    if depth > 40:
        return
    sch = _merge_openapi(schema, doc)
    if value is None:
        if request_mode and not sch.get("nullable", False) and sch.get("type") is not None:
            out.append(Finding(path, "null not allowed"))
        return
    typ = sch.get("type")
    if typ is None and ("properties" in sch or "additionalProperties" in sch):
        typ = "object"
    if typ == "object":
        if not isinstance(value, dict):
            out.append(Finding(path, f"expected object, got {_json_type(value)}"))
            return
        props = sch.get("properties", {})
        addl = sch.get("additionalProperties")
        for key, sub in value.items():
            if key in props:
                _walk_openapi(sub, props[key], _child(path, key), out, doc, request_mode, depth + 1)
            elif isinstance(addl, Mapping):
                _walk_openapi(sub, addl, f"{path}[{json.dumps(key)}]", out, doc, request_mode, depth + 1)
            elif addl is True:
                continue
            else:
                out.append(Finding(_child(path, key), UNKNOWN))
        if request_mode:
            for name in sch.get("required", []):
                if name not in value:
                    out.append(Finding(_child(path, name), "required field missing"))
        return
    if typ == "array":
        if not isinstance(value, list):
            out.append(Finding(path, f"expected array, got {_json_type(value)}"))
            return
        items = sch.get("items", {})
        for i, sub in enumerate(value):
            _walk_openapi(sub, items, f"{path}[{i}]", out, doc, request_mode, depth + 1)
        if request_mode and "maxItems" in sch and len(value) > int(sch["maxItems"]):
            out.append(Finding(path, f"more than {sch['maxItems']} items"))
        return
    if typ is None:
        return
    if not _type_ok(str(typ), value):
        out.append(Finding(path, f"expected {typ}, got {_json_type(value)}"))
        return
    enum = sch.get("enum")
    if enum is not None and value not in enum:
        out.append(Finding(path, f"{value!r} not one of {enum}"))
    if isinstance(value, str):
        fmt = sch.get("format")
        if fmt == "date-time":
            problem = _format_problem(fmt, value)
            if problem:
                out.append(Finding(path, problem))
        if request_mode and "maxLength" in sch and len(value) > int(sch["maxLength"]):
            out.append(Finding(path, f"longer than {sch['maxLength']} characters"))
    if request_mode and isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in sch and value < sch["minimum"]:
            out.append(Finding(path, f"below minimum {sch['minimum']}"))
        if "maximum" in sch and value > sch["maximum"]:
            out.append(Finding(path, f"above maximum {sch['maximum']}"))


# --------------------------------------------------------------------------------------------
# Zoom operations: which document holds which path
# --------------------------------------------------------------------------------------------


def zoom_doc_for(path: str) -> JSONDict:
    """The Zoom document that declares ``path`` (meetings first, then users)."""
    for loader in (zoom_meetings_openapi, zoom_users_openapi):
        doc = loader()
        if path in doc.get("paths", {}):
            return doc
    raise KeyError(f"no Zoom OpenAPI document declares {path}")


# --------------------------------------------------------------------------------------------
# assertions for tests of the project's provider clients
# --------------------------------------------------------------------------------------------


def request_findings(
    body: Any,
    *,
    google_method: str | None = None,
    zoom_operation: tuple[str, str] | None = None,
    query: Mapping[str, Any] | None = None,
    allow_unknown: bool = False,
) -> list[Finding]:
    """Findings for a request body (and optionally its query) sent to a provider.

    ``google_method`` is a discovery method id (``"calendar.events.insert"``);
    ``zoom_operation`` is ``(method, path template)``, e.g. ``("POST", "/users/{userId}/meetings")``.
    """
    if (google_method is None) == (zoom_operation is None):
        raise ValueError("give exactly one of google_method / zoom_operation")
    findings: list[Finding] = []
    if google_method is not None:
        doc = google_discovery()
        method = discovery_methods(doc).get(google_method)
        if method is None:
            raise KeyError(f"unknown discovery method {google_method!r}")
        if method.request_ref is None:
            if body not in (None, {}, b"", ""):
                findings.append(Finding("$", f"{google_method} takes no request body"))
        else:
            findings += check_discovery(body, method.request_ref, doc=doc)
        if query:
            findings += check_discovery_query(method, query, doc)
    else:
        assert zoom_operation is not None
        http_method, path = zoom_operation
        doc = zoom_doc_for(path)
        schema = openapi_request_schema(doc, path, http_method)
        if schema is None:
            if body not in (None, {}, b"", ""):
                findings.append(Finding("$", f"{http_method} {path} takes no JSON body"))
        else:
            findings += check_openapi(body, schema, doc, request_mode=True)
        if query:
            declared = {
                p["name"]
                for p in openapi_operation(doc, path, http_method).get("parameters", [])
                if p.get("in") == "query"
            }
            findings += [Finding(f"?{k}", "unknown query parameter") for k in query if k not in declared]
    if allow_unknown:
        findings = [f for f in findings if f.problem != UNKNOWN]
    return findings


def assert_request_conforms(
    body: Any,
    *,
    google_method: str | None = None,
    zoom_operation: tuple[str, str] | None = None,
    query: Mapping[str, Any] | None = None,
    allow_unknown: bool = False,
) -> None:
    """Raise ``AssertionError`` listing every finding when a request body/query does not fit
    the provider's published description. See :func:`request_findings`."""
    findings = request_findings(
        body, google_method=google_method, zoom_operation=zoom_operation, query=query, allow_unknown=allow_unknown
    )
    if findings:
        target = google_method or f"{zoom_operation[0]} {zoom_operation[1]}"  # type: ignore[index]
        raise AssertionError(f"request for {target} does not conform:\n  " + "\n  ".join(map(str, findings)))


def response_findings(
    body: Any,
    *,
    google_schema: str | None = None,
    zoom_operation: tuple[str, str, int] | None = None,
) -> list[Finding]:
    """Findings for a response body: ``google_schema`` is a discovery schema id (``"Event"``);
    ``zoom_operation`` is ``(method, path template, status)``."""
    if (google_schema is None) == (zoom_operation is None):
        raise ValueError("give exactly one of google_schema / zoom_operation")
    if google_schema is not None:
        return check_discovery(body, google_schema)
    assert zoom_operation is not None
    http_method, path, status = zoom_operation
    doc = zoom_doc_for(path)
    schema = openapi_response_schema(doc, path, http_method, status)
    if schema is None:
        raise KeyError(f"no JSON schema for {http_method} {path} -> {status}")
    return check_openapi(body, schema, doc)


def assert_response_conforms(
    body: Any,
    *,
    google_schema: str | None = None,
    zoom_operation: tuple[str, str, int] | None = None,
) -> None:
    findings = response_findings(body, google_schema=google_schema, zoom_operation=zoom_operation)
    if findings:
        raise AssertionError("response does not conform:\n  " + "\n  ".join(map(str, findings)))
