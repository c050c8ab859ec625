"""Packaging: the project's code as ONE asset for every function, third-party packages as ONE layer.

* Code: the repository root filtered down to ``shared/`` and ``functions/`` (an allow-list, so
  tests, .venv, devstack, infra, cdk.out, docs, bench, node_modules … never ship). Handlers are
  ``functions.<name>.handler.lambda_handler``. One ``Code`` object is bound to every function, so
  the template has a single code asset.
* Layer: ``build/lambda-layer`` (``make layer`` installs ``requirements-lambda.txt``, arm64 /
  CPython 3.13 wheels), or with ``-c layer=placeholder`` the labelled empty stand-in in
  ``infra/layer/placeholder`` that lets tests synthesise offline; such a stack says so in its
  description and carries a warning annotation: it is not deployable.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Annotations, RemovalPolicy, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import DeployConfig
from infra.constructs.function import ARCHITECTURE, RUNTIME
from infra.layer import BUILD_DIR, PLACEHOLDER_DIR, ROOT, lock_digest
from infra.layer.build import is_current

#: What the code asset ships (gitignore-style globs: exclude everything, re-include the packages).
CODE_EXCLUDE: Final = (
    "*",
    "!shared",
    "!shared/**",
    "!functions",
    "!functions/**",
    "**/__pycache__",
    "**/*.pyc",
    "**/.*",
)
PLACEHOLDER_NOTE: Final = "PLACEHOLDER LAYER (-c layer=placeholder): NOT DEPLOYABLE, functions lack their packages"


class LayerNotBuiltError(RuntimeError):
    """``build/lambda-layer`` is missing or older than ``requirements-lambda.txt``."""


class Packaging(Construct):
    """The shared code asset and the dependency layer."""

    def __init__(self, scope: Construct, construct_id: str, *, config: DeployConfig) -> None:
        super().__init__(scope, construct_id)
        self.placeholder = config.layer == "placeholder"
        self.code: lambda_.Code = lambda_.Code.from_asset(str(ROOT), exclude=list(CODE_EXCLUDE))
        if self.placeholder:
            layer_dir = PLACEHOLDER_DIR
            description = PLACEHOLDER_NOTE
            Annotations.of(Stack.of(self)).add_warning_v2("mentor-connections:placeholder-layer", PLACEHOLDER_NOTE)
        else:
            if not is_current():
                raise LayerNotBuiltError(
                    f"{BUILD_DIR.relative_to(ROOT)} is missing or out of date with requirements-lambda.txt: "
                    "run `make layer` (or synthesise with -c layer=placeholder for tests)"
                )
            layer_dir = BUILD_DIR
            description = (
                f"mentor-connections runtime dependencies (requirements-lambda.txt sha256 {lock_digest()[:12]})"
            )
        self.layer = lambda_.LayerVersion(
            self,
            "Dependencies",
            code=lambda_.Code.from_asset(str(layer_dir)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description=description,
            removal_policy=RemovalPolicy.RETAIN if not config.is_dev else RemovalPolicy.DESTROY,
        )
