"""Packaging: the project's code as ONE asset for every function, third-party packages as layers per need.

* Code: the repository root filtered down to ``shared/`` and ``functions/`` (an allow-list, so
  tests, .venv, devstack, infra, cdk.out, docs, bench, node_modules … never ship). Handlers are
  ``functions.<name>.handler.lambda_handler``. One ``Code`` object is bound to every function, so
  the template has a single code asset.
* Layers: one per group of :mod:`infra.layer.groups` (core, crypto, http, oauth, ical, caldav,
  stripe), built by ``make layer`` into ``build/lambda-layers/<group>`` from
  ``requirements-lambda.<group>.txt`` (arm64 / CPython 3.13 wheels); each function gets only the
  layers :data:`infra.layer.groups.FUNCTION_LAYERS` lists for it (:meth:`Packaging.layers_for`).
  With ``-c layer=placeholder`` every group is the labelled empty stand-in in
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
from infra.layer import PLACEHOLDER_DIR, ROOT, group_lock_file, layer_dir, lock_digest
from infra.layer.build import is_current
from infra.layer.groups import GROUPS, layers_of

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
    """A layer of ``build/lambda-layers`` is missing or older than its ``requirements-lambda.<group>.txt``."""


class Packaging(Construct):
    """The shared code asset and the dependency layers (one per group)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: DeployConfig) -> None:
        super().__init__(scope, construct_id)
        self.placeholder = config.layer == "placeholder"
        self.code: lambda_.Code = lambda_.Code.from_asset(str(ROOT), exclude=list(CODE_EXCLUDE))
        if self.placeholder:
            Annotations.of(Stack.of(self)).add_warning_v2("mentor-connections:placeholder-layer", PLACEHOLDER_NOTE)
        else:
            stale = [g.name for g in GROUPS if not is_current(g.name)]
            if stale:
                raise LayerNotBuiltError(
                    f"layers {stale} in build/lambda-layers are missing or out of date with their "
                    "requirements-lambda.<group>.txt: run `make layer` "
                    "(or synthesise with -c layer=placeholder for tests)"
                )
        self.layers: dict[str, lambda_.ILayerVersion] = {}
        for group in GROUPS:
            if self.placeholder:
                layer_path, description = PLACEHOLDER_DIR, f"{group.name}: {PLACEHOLDER_NOTE}"
            else:
                layer_path = layer_dir(group.name)
                description = (
                    f"mentor-connections {group.name} layer: {group.purpose} "
                    f"({group_lock_file(group.name).name} sha256 {lock_digest(group.name)[:12]})"
                )[:256]
            self.layers[group.name] = lambda_.LayerVersion(
                self,
                f"Layer{group.name.capitalize()}",
                code=lambda_.Code.from_asset(str(layer_path)),
                compatible_runtimes=[RUNTIME],
                compatible_architectures=[ARCHITECTURE],
                description=description,
                removal_policy=RemovalPolicy.RETAIN if not config.is_dev else RemovalPolicy.DESTROY,
            )

    def layers_for(self, function: str) -> list[lambda_.ILayerVersion]:
        """The layers ``function`` ships, bottom first (:data:`infra.layer.groups.FUNCTION_LAYERS`)."""
        return [self.layers[group.name] for group in layers_of(function)]
