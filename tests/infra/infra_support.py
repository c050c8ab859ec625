"""The session's synth result and helpers that read the template as plain JSON (fast; no jsii round trips)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import Stack
from aws_cdk.assertions import Template


@dataclass
class Synth:
    """The synthesised stack, its template and how long the synth took."""

    stack: Stack
    template: Template
    resources: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
    outdir: str
    seconds: float

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == cfn_type}


def function_names(synth: Synth) -> dict[str, str]:
    """Function name (``functions/<name>``) → logical id of its AWS::Lambda::Function."""
    out: dict[str, str] = {}
    for logical_id, res in synth.of_type("AWS::Lambda::Function").items():
        handler = res["Properties"]["Handler"]
        name = handler.split(".")[1]
        assert handler == f"functions.{name}.handler.lambda_handler"
        out[name] = logical_id
    return out


def role_of(synth: Synth, function_logical_id: str) -> str:
    role = synth.resources[function_logical_id]["Properties"]["Role"]
    return str(role["Fn::GetAtt"][0])


def statements(synth: Synth, role_logical_id: str) -> list[dict[str, Any]]:
    """Every statement of the identity policies attached to ``role_logical_id`` (inline + AWS::IAM::Policy)."""
    found: list[dict[str, Any]] = []
    for res in synth.of_type("AWS::IAM::Policy").values():
        if {"Ref": role_logical_id} in res["Properties"]["Roles"]:
            found += res["Properties"]["PolicyDocument"]["Statement"]
    for policy in synth.resources[role_logical_id]["Properties"].get("Policies", []):
        found += policy["PolicyDocument"]["Statement"]
    return found


def actions(statement: dict[str, Any]) -> list[str]:
    value = statement["Action"]
    return [value] if isinstance(value, str) else list(value)


def resources(statement: dict[str, Any]) -> list[Any]:
    value = statement["Resource"]
    return value if isinstance(value, list) else [value]


def refs(value: Any) -> set[str]:
    """Logical ids referenced anywhere in ``value`` (Ref / Fn::GetAtt)."""
    out: set[str] = set()
    if isinstance(value, dict):
        if "Ref" in value:
            out.add(str(value["Ref"]))
        if "Fn::GetAtt" in value:
            out.add(str(value["Fn::GetAtt"][0]))
        for v in value.values():
            out |= refs(v)
    elif isinstance(value, list):
        for v in value:
            out |= refs(v)
    return out
