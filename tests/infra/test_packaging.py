"""Packaging: one code asset with only shared/ + functions/, one arm64 layer from a pinned lock."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from aws_cdk.assertions import Annotations, Match
from infra_support import Synth

from infra.constructs.packaging import PLACEHOLDER_NOTE
from infra.layer import EXCLUDED, LOCK_FILE, ROOT, STAMP_NAME, lock_digest
from infra.layer.build import is_current
from infra.layer.lock import canonical

_PIN = re.compile(r"^([a-z0-9-]+)==([^ ]+) \\$")


def _locked() -> dict[str, str]:
    pins: dict[str, str] = {}
    lines = LOCK_FILE.read_text().splitlines()
    for i, line in enumerate(lines):
        match = _PIN.match(line)
        if match:
            pins[match.group(1)] = match.group(2)
            assert re.fullmatch(r"\s+--hash=sha256:[0-9a-f]{64}", lines[i + 1]), lines[i + 1]
    return pins


def test_lock_pins_every_runtime_dependency_with_hashes_and_leaves_out_the_sdk() -> None:
    pins = _locked()
    with (ROOT / "pyproject.toml").open("rb") as fh:
        deps = tomllib.load(fh)["project"]["dependencies"]
    names = {canonical(re.split(r"[\[<>=!~; ]", d, maxsplit=1)[0]) for d in deps}
    assert names - set(EXCLUDED) <= set(pins), "regenerate: python -m infra.layer.lock"
    assert not set(EXCLUDED) & set(pins)


def test_code_asset_holds_only_shared_and_functions(synth: Synth) -> None:
    functions = synth.of_type("AWS::Lambda::Function")
    key = next(iter(functions.values()))["Properties"]["Code"]["S3Key"]
    asset = Path(synth.outdir) / f"asset.{key.removesuffix('.zip')}"
    files = [p.relative_to(asset).as_posix() for p in asset.rglob("*") if p.is_file()]
    assert {f.split("/")[0] for f in files} == {"shared", "functions"}
    assert "shared/config.py" in files
    assert "functions/stripe_webhook/handler.py" in files
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc") or "/." in f]


def test_placeholder_layer_is_labelled_not_deployable(synth: Synth) -> None:
    ((_, layer),) = synth.of_type("AWS::Lambda::LayerVersion").items()
    assert layer["Properties"]["Description"] == PLACEHOLDER_NOTE
    warnings = Annotations.from_stack(synth.stack).find_warning("*", Match.string_like_regexp(".*NOT DEPLOYABLE.*"))
    assert warnings
    assert "NOT DEPLOYABLE" in synth.stack.template_options.description


def test_a_layer_is_current_only_when_stamped_with_the_lock_digest(tmp_path: Path) -> None:
    assert not is_current(tmp_path)
    (tmp_path / "python").mkdir()
    (tmp_path / STAMP_NAME).write_text("0" * 64)
    assert not is_current(tmp_path)
    (tmp_path / STAMP_NAME).write_text(lock_digest() + "\n")
    assert is_current(tmp_path)


def test_cdk_json_runs_the_app_from_the_venv() -> None:
    data = json.loads((ROOT / "cdk.json").read_text())
    assert data["app"].endswith("-m infra.app")
