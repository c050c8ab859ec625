"""cdk-nag suppressions that apply across the stack, each with its reason.

Resource-specific ones live next to the resource (public routes: ``infra.constructs.api``).
Every suppression here is narrowed with ``appliesTo`` where cdk-nag reports a finding per
permission, so a new wildcard elsewhere still fails the synth.
"""

from __future__ import annotations

from aws_cdk import Stack
from cdk_nag import NagPackSuppression, NagSuppressions


def suppress_stack_findings(stack: Stack) -> None:
    """Stack-wide suppressions (see each reason)."""
    NagSuppressions.add_stack_suppressions(
        stack,
        [
            NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="X-Ray's PutTraceSegments / PutTelemetryRecords (Lambda active tracing) do not support "
                "resource-level permissions: AWS documents Resource '*' for them",
                applies_to=["Resource::*"],
            ),
        ],
    )
