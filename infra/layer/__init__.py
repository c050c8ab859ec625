"""The Lambda layers: third-party runtime dependencies for arm64 / Python 3.13 (see README "Deploying").

* :mod:`infra.layer.groups` says which layers exist (core, crypto, http, oauth, ical, caldav,
  stripe) and which function gets which, checked against :mod:`infra.layer.graph` (the import
  graph of each function's code);
* :mod:`infra.layer.lock` writes ``requirements-lambda.<group>.txt`` per layer and their union
  ``requirements-lambda.txt`` (pinned, hashed) from pyproject's runtime dependencies, resolved once
  for the Lambda platform;
* :mod:`infra.layer.build` installs each group's lock into ``build/lambda-layers/<group>/python``
  from a wheelhouse cache (``build/wheelhouse``), downloading only what the cache lacks (``make layer``);
* ``infra/layer/placeholder`` is an empty stand-in the tests synthesise with (``-c layer=placeholder``)
  so they run offline; a stack built with it is labelled and not deployable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
LOCK_FILE: Final = ROOT / "requirements-lambda.txt"
BUILD_ROOT: Final = ROOT / "build" / "lambda-layers"
WHEELHOUSE: Final = ROOT / "build" / "wheelhouse"
PLACEHOLDER_DIR: Final = Path(__file__).resolve().parent / "placeholder"
STAMP_NAME: Final = ".lock-sha256"

#: The Lambda platform the layer is built for (runtime python3.13, architecture arm64).
PYTHON_VERSION: Final = "3.13"
PLATFORM_ARGS: Final = (
    "--platform",
    "manylinux2014_aarch64",
    "--platform",
    "manylinux_2_28_aarch64",
    "--python-version",
    PYTHON_VERSION,
    "--implementation",
    "cp",
    "--abi",
    f"cp{PYTHON_VERSION.replace('.', '')}",
    "--abi",
    "abi3",
    "--abi",
    "none",
    "--only-binary=:all:",
)

#: Left out of the layer: the Lambda Python runtime ships the AWS SDK, kept current by AWS, and the
#: project calls only long-standing APIs (DynamoDB, SQS, KMS, SES v2, Secrets Manager). Shipping our
#: own would add ~25 MB unzipped and cold-start time for nothing.
EXCLUDED: Final = frozenset({"boto3", "botocore", "s3transfer"})


def group_lock_file(group: str) -> Path:
    """``requirements-lambda.<group>.txt``: the lock of one layer."""
    return ROOT / f"requirements-lambda.{group}.txt"


def layer_dir(group: str, build_root: Path = BUILD_ROOT) -> Path:
    """Where ``make layer`` builds ``group``'s layer (its ``python/`` is what Lambda puts on ``sys.path``)."""
    return build_root / group


def lock_digest(group: str, text: str | None = None) -> str:
    """sha256 of ``group``'s lock file content (what its built layer is stamped with)."""
    import hashlib

    data = group_lock_file(group).read_text() if text is None else text
    return hashlib.sha256(data.encode()).hexdigest()
