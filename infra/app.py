"""CDK entry point: ``npx aws-cdk@2 synth`` / ``deploy`` from the repository root (see README, Deploying).

``python -m infra.app [-c key=value …]`` synthesises without the CDK CLI (``make synth``): it reads
``cdk.json``'s context like the CLI does, then the ``-c`` pairs. cdk-nag's AWS Solutions checks
run on every synth; an unsuppressed finding is an error annotation (``tests/infra`` fails on it).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aws_cdk import App, Aspects, Environment
from aws_cdk.cx_api import SynthesisMessageLevel
from cdk_nag import AwsSolutionsChecks

from infra.config import DeployConfig
from infra.stack import MentorConnectionsStack

CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"


def cdk_json_context() -> dict[str, Any]:
    """The ``context`` of cdk.json (what the CDK CLI would pass)."""
    data: dict[str, Any] = json.loads(CDK_JSON.read_text())
    context: dict[str, Any] = data.get("context", {})
    return context


def build_app(*, nag: bool = True, context: Mapping[str, Any] | None = None, outdir: str | None = None) -> App:
    """The CDK app with the stack and cdk-nag's AWS Solutions checks applied.

    Under the CDK CLI the context arrives in ``CDK_CONTEXT_JSON``; otherwise cdk.json's context is
    read here. ``context`` overrides both (tests pass the values of a deployment).
    """
    merged: dict[str, Any] = {} if "CDK_CONTEXT_JSON" in os.environ else cdk_json_context()
    merged.update(context or {})
    app = App(outdir=outdir or os.environ.get("CDK_OUTDIR", "cdk.out"), context=merged)
    config = DeployConfig.from_context(app.node)
    env = Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
        region=os.environ.get("CDK_DEFAULT_REGION", "us-east-1"),
    )
    MentorConnectionsStack(app, f"MentorConnections-{config.stage}", config=config, env=env)
    if nag:
        Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return app


def parse_context_args(argv: Sequence[str]) -> dict[str, str]:
    """``["-c", "stage=prod", "--context", "layer=placeholder"]`` → ``{"stage": "prod", "layer": "placeholder"}``."""
    context: dict[str, str] = {}
    args = list(argv)
    while args:
        flag = args.pop(0)
        if flag in {"-c", "--context"} and args:
            key, sep, value = args.pop(0).partition("=")
            if not sep:
                raise SystemExit(f"expected key=value after {flag}")
            context[key] = value
        else:
            raise SystemExit(f"usage: python -m infra.app [-c key=value]... (got {flag!r})")
    return context


def main(argv: Sequence[str] | None = None) -> int:
    from infra.config import ConfigError
    from infra.constructs.packaging import LayerNotBuiltError

    try:
        app = build_app(context=parse_context_args(sys.argv[1:] if argv is None else argv))
    except (ConfigError, LayerNotBuiltError) as exc:
        print(f"synth: {exc}", file=sys.stderr)
        return 2
    assembly = app.synth()
    errors = 0
    for stack in assembly.stacks:
        for entry in stack.messages:
            if entry.level == SynthesisMessageLevel.ERROR:
                errors += 1
                print(f"ERROR {entry.id}: {entry.entry.data}", file=sys.stderr)
            elif entry.level == SynthesisMessageLevel.WARNING:
                print(f"WARNING {entry.id}: {entry.entry.data}", file=sys.stderr)
        print(f"synthesised {stack.stack_name}: {Path(assembly.directory) / stack.template_file}")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
