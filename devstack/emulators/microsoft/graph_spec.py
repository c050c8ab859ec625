"""The Graph OpenAPI cut (``../shared/specs/msgraph/msgraph-calendar-v1.0.openapi.json``) and the
checks the emulator and its tests run against it.

Rules, from the cut's own caveats (NOTES-msgraph §2):

* Action paths are accepted in both forms: ``/me/calendar/getSchedule`` is looked up as
  ``/me/calendar/microsoft.graph.getSchedule`` (:func:`template_for`).
* ``required: ["@odata.type"]`` is a generator artefact and never enforced; OData control
  information (``@odata.context``, ``@odata.etag``, ...) is not part of the schemas and is
  skipped in answers (OData JSON Format §4.5).
* getSchedule's parameters are PascalCase in the cut and camelCase in the docs: bodies are
  matched case-insensitively (:func:`pascal_schedule_body`).
* ``resourceData`` in a notification is an open type: its ``id`` and ``@odata.*`` members pass.
* Enum members are read case-insensitively, as Graph reads them (its docs send
  ``"contentType": "HTML"``).
* Responses are given as ``2XX``/``4XX``/``5XX`` ranges; an exact status is looked up first.
  Error bodies are matched with keys compared case-insensitively (``innerError`` on the wire,
  ``innererror`` in the cut).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import Any

from devstack.emulators import spec

MSGRAPH_OPENAPI = "msgraph/msgraph-calendar-v1.0.openapi.json"
NAMESPACE = "microsoft.graph."
_ENUM = re.compile(r"('.*') not one of (\[.*\])")
_ODATA_TYPE_MISSING = '["@odata.type"]: required field missing'

JSONDict = dict[str, Any]


def document() -> JSONDict:
    return spec.load_spec(MSGRAPH_OPENAPI)


def template_for(path: str) -> str:
    """The cut's path template for a path relative to ``/v1.0`` (``{calendar-id}`` style
    placeholders allowed); action segments gain the ``microsoft.graph.`` prefix if missing."""
    doc_paths = document().get("paths", {})
    if path in doc_paths:
        return path
    head, _, last = path.rpartition("/")
    prefixed = f"{head}/{NAMESPACE}{last}"
    if prefixed in doc_paths:
        return prefixed
    raise KeyError(f"{path} is not in the Graph OpenAPI cut")


def _case_only(problem: str) -> bool:
    """An enum finding whose value differs only in case: Graph reads enum members case-insensitively
    (its own docs send ``"contentType": "HTML"`` for the ``html`` member)."""
    match = _ENUM.fullmatch(problem)
    if match is None:
        return False
    try:
        members = ast.literal_eval(match.group(2))
        value = ast.literal_eval(match.group(1))
    except (ValueError, SyntaxError):
        return False
    return isinstance(value, str) and value.lower() in {str(m).lower() for m in members}


def _clean(findings: list[spec.Finding]) -> list[spec.Finding]:
    out = []
    for f in findings:
        if _case_only(f.problem):
            continue
        if str(f).endswith(_ODATA_TYPE_MISSING):
            continue  # caveat 3: never enforced
        if f.problem == spec.UNKNOWN and ".resourceData." in f.path:
            continue  # resourceData is an open type (OpenType="true" in the CSDL): it carries id, @odata.id, ...
        if f.problem == spec.UNKNOWN and re.search(r'\["@odata\.[A-Za-z]+"\]$|\.@odata\.[A-Za-z]+$', f.path):
            continue  # OData control information
        out.append(f)
    return out


def request_findings(method: str, template: str, body: Any) -> list[spec.Finding]:
    doc = document()
    schema = spec.openapi_request_schema(doc, template, method)
    if schema is None:
        if body not in (None, {}, b"", ""):
            return [spec.Finding("$", f"{method} {template} takes no JSON body")]
        return []
    return _clean(spec.check_openapi(body, schema, doc, request_mode=True))


def _response_schema(method: str, template: str, status: int) -> Mapping[str, Any] | None:
    doc = document()
    responses = spec.openapi_operation(doc, template, method).get("responses", {})
    for key in (str(status), f"{str(status)[0]}XX"):
        if key in responses:
            return spec.openapi_response_schema(doc, template, method, key)
    raise KeyError(f"{method} {template} declares no {status} answer")


def response_findings(method: str, template: str, status: int, body: Any) -> list[spec.Finding]:
    """What in an answer the cut does not declare (or types differently)."""
    schema = _response_schema(method, template, status)
    if schema is None:
        if body not in (None, b"", ""):
            return [spec.Finding("$", f"{method} {template} -> {status} has no JSON body")]
        return []
    doc = document()
    if status >= 400:
        body = _match_case(body, spec._merge_openapi(schema, doc), doc)
    return _clean(spec.check_openapi(body, schema, doc))


def _match_case(value: Any, schema: Mapping[str, Any], doc: Mapping[str, Any]) -> Any:
    """``value`` with object keys renamed to the schema's spelling where they differ only in case."""
    if not isinstance(value, dict):
        return value
    props: Mapping[str, Any] = schema.get("properties", {})
    lower = {name.lower(): name for name in props}
    out: JSONDict = {}
    for key, sub in value.items():
        name = key if key in props else str(lower.get(key.lower(), key))
        sub_schema = props.get(name)
        out[name] = _match_case(sub, spec._merge_openapi(sub_schema, doc), doc) if sub_schema else sub
    return out


def notification_findings(body: Any) -> list[spec.Finding]:
    """What in a change- or lifecycle-notification POST body ``changeNotificationCollection`` does not declare."""
    doc = document()
    schema = {"$ref": "#/components/schemas/microsoft.graph.changeNotificationCollection"}
    return _clean(spec.check_openapi(body, schema, doc))


def pascal_schedule_body(body: Mapping[str, Any]) -> JSONDict:
    """A getSchedule body with its parameter names spelled as in the cut (PascalCase)."""
    names = {"schedules": "Schedules", "starttime": "StartTime", "endtime": "EndTime"}
    names["availabilityviewinterval"] = "AvailabilityViewInterval"
    return {names.get(k.lower(), k): v for k, v in body.items()}
