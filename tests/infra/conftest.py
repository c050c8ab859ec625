"""Synthesise the stack ONCE per test session (cdk-nag included) and share the template.

The synth uses ``-c layer=placeholder`` so it needs neither the network nor a built layer, and
the context of a production deployment (``stage=prod``: retention, deletion protection, a real
issuer and sender), so the assertions are about what would be deployed.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

from aws_cdk import Stack
from aws_cdk.assertions import Template
from infra_support import Synth

PROD_CONTEXT: dict[str, Any] = {
    "stage": "prod",
    "layer": "placeholder",
    "jwtIssuer": "https://auth.mentors.test/",
    "jwtAudience": "mentor-app,platform",
    "appUrl": "https://app.mentors.test",
    "senderEmail": "bookings@mentors.test",
    "googleClientId": "google-client-id.apps.googleusercontent.com",
    "zoomClientId": "zoom-client-id",
    "alarmEmail": "ops@mentors.test",
    "busySyncMaxConcurrency": "4",
}


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    from infra.app import build_app

    outdir = tmp_path_factory.mktemp("cdk.out")
    start = time.monotonic()
    app = build_app(nag=True, context=PROD_CONTEXT, outdir=str(outdir))
    (stack,) = [c for c in app.node.children if isinstance(c, Stack)]
    app.synth()
    template = Template.from_stack(stack)
    as_json = template.to_json()
    seconds = time.monotonic() - start
    return Synth(stack, template, as_json["Resources"], as_json.get("Outputs", {}), str(outdir), seconds)
