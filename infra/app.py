"""CDK entry point: ``npx aws-cdk@2 synth`` / ``deploy`` from the repository root (see README)."""

from __future__ import annotations

import os

from aws_cdk import App, Aspects, Environment
from cdk_nag import AwsSolutionsChecks

from infra.stack import MentorConnectionsStack


def build_app(*, nag: bool = True) -> App:
    """The CDK app with the stack and cdk-nag's AWS Solutions checks applied."""
    app = App(outdir=os.environ.get("CDK_OUTDIR", "cdk.out"))
    env = Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
        region=os.environ.get("CDK_DEFAULT_REGION", "us-east-1"),
    )
    stage = app.node.try_get_context("stage") or "dev"
    MentorConnectionsStack(app, f"MentorConnections-{stage}", env=env, retain_data=stage != "dev")
    if nag:
        Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return app


if __name__ == "__main__":
    build_app().synth()
