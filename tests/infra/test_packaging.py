"""Packaging: one code asset with only shared/ + functions/, arm64 layers per need from pinned locks."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Annotations, Match
from infra_support import Synth, function_names

from infra.constructs.packaging import PLACEHOLDER_NOTE
from infra.layer import EXCLUDED, LOCK_FILE, ROOT, STAMP_NAME, group_lock_file, layer_dir, lock_digest
from infra.layer.build import drop_urllib3_future_shadows, is_current
from infra.layer.groups import FUNCTION_LAYERS, GROUPS
from infra.layer.lock import canonical, closure

_PIN = re.compile(r"^([a-z0-9-]+)==([^ ]+) \\$")


def _locked(lock: Path = LOCK_FILE) -> dict[str, str]:
    pins: dict[str, str] = {}
    lines = lock.read_text().splitlines()
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


def test_group_locks_partition_the_lock_with_the_same_pins_and_hashes() -> None:
    """Every distribution of requirements-lambda.txt is in some group's lock, at the same version and hash."""
    union: dict[str, str] = {}
    full_text = LOCK_FILE.read_text()
    for group in GROUPS:
        pins = _locked(group_lock_file(group.name))
        assert pins, f"{group.name}: empty lock"
        for name, version in pins.items():
            assert union.setdefault(name, version) == version
            entry = re.search(
                rf"^{re.escape(name)}==\S+ \\\n\s+--hash=\S+$", group_lock_file(group.name).read_text(), re.M
            )
            assert entry, f"{group.name}: {name} has no hash line"
            assert entry.group(0) in full_text, f"{group.name}: {name} differs from requirements-lambda.txt"
    assert union == _locked()


def test_the_layers_a_function_gets_never_overlap() -> None:
    """Lambda extracts a function's layers one over the other into /opt: none may repeat another's distribution."""
    for function, groups in FUNCTION_LAYERS.items():
        seen: dict[str, str] = {}
        for group in groups:
            for name in _locked(group_lock_file(group)):
                assert name not in seen, f"{function}: {name} in both {seen.get(name)} and {group}"
                seen[name] = group


def test_only_the_caldav_functions_carry_urllib3_future_and_niquests() -> None:
    carriers = {
        function
        for function, groups in FUNCTION_LAYERS.items()
        if any({"urllib3-future", "niquests"} & set(_locked(group_lock_file(g))) for g in groups)
    }
    assert carriers == {"busy_sync", "connections_api"}
    # the /mentors routes (busy, availability, slots, feed URL) call no provider: the store and the vault only
    assert FUNCTION_LAYERS["mentors_api"] == ("core", "crypto")
    assert "stripe" in FUNCTION_LAYERS["stripe_webhook"]
    assert not [f for f, groups in FUNCTION_LAYERS.items() if "stripe" in groups and f != "stripe_webhook"]


def test_a_group_leaves_out_what_it_omits_and_what_only_that_pulls_in() -> None:
    """``Group.omit``: the stripe layer has the SDK but not requests (the webhook calls no Stripe API), nor the
    libraries only requests needs; a dependency shared with a root the group keeps stays."""

    def dist(name: str, *requires: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "version": "1", "requires_dist": list(requires)}}

    installs = [
        dist("stripe", "typing_extensions>=4.7", "requests>=2.20", 'httpx; extra == "async"'),
        dist("requests", "idna<4,>=2.5", "certifi>=2017.4.17", "charset_normalizer<4,>=2", "urllib3<3,>=1.21.1"),
        dist("typing-extensions"),
        dist("idna"),
        dist("certifi"),
        dist("charset-normalizer"),
        dist("urllib3"),
    ]
    everything = {"stripe", "typing-extensions", "requests", "idna", "certifi", "charset-normalizer", "urllib3"}
    assert closure(["stripe>=10"], installs) == everything
    assert closure(["stripe>=10"], installs, omit=("requests",)) == {"stripe", "typing-extensions"}
    assert closure(["stripe>=10", "idna"], installs, omit=("Requests",)) == {"stripe", "typing-extensions", "idna"}
    stripe = next(g for g in GROUPS if g.name == "stripe")
    assert stripe.omit == ("requests",)
    assert set(_locked(group_lock_file("stripe"))) == {"stripe"}
    assert "requests" not in _locked()


def test_a_layer_without_urllib3_loses_urllib3_futures_copy_of_it(tmp_path: Path) -> None:
    """The build drops urllib3-future's urllib3/ and .pth, which would overwrite the real urllib3 in /opt."""
    for name in ("urllib3_future", "urllib3"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / "urllib3_future.pth").write_text("import os")
    assert drop_urllib3_future_shadows(tmp_path) == ["urllib3", "urllib3_future.pth"]
    assert [p.name for p in tmp_path.iterdir()] == ["urllib3_future"]


def test_every_function_gets_exactly_its_layers(synth: Synth) -> None:
    """Each function's Layers are exactly its groups of FUNCTION_LAYERS (CDK orders them by id; the layers of a
    function never overlap, so the order Lambda extracts them in does not matter), at most Lambda's 5."""
    layer_ids = {
        res["Properties"]["Description"].split(":")[0]: logical_id
        for logical_id, res in synth.of_type("AWS::Lambda::LayerVersion").items()
    }
    assert set(layer_ids) == {g.name for g in GROUPS}
    names = function_names(synth)
    assert set(names) == set(FUNCTION_LAYERS)
    for function, logical_id in names.items():
        layers = synth.resources[logical_id]["Properties"]["Layers"]
        assert sorted(ref["Ref"] for ref in layers) == sorted(layer_ids[g] for g in FUNCTION_LAYERS[function]), function
        assert len(layers) <= 5


def test_code_asset_holds_only_shared_and_functions(synth: Synth) -> None:
    functions = synth.of_type("AWS::Lambda::Function")
    key = next(iter(functions.values()))["Properties"]["Code"]["S3Key"]
    asset = Path(synth.outdir) / f"asset.{key.removesuffix('.zip')}"
    files = [p.relative_to(asset).as_posix() for p in asset.rglob("*") if p.is_file()]
    assert {f.split("/")[0] for f in files} == {"shared", "functions"}
    assert "shared/__init__.py" in files
    assert "functions/stripe_webhook/handler.py" in files
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc") or "/." in f]


def test_placeholder_layer_is_labelled_not_deployable(synth: Synth) -> None:
    layers = synth.of_type("AWS::Lambda::LayerVersion")
    assert len(layers) == len(GROUPS)
    for layer in layers.values():
        assert layer["Properties"]["Description"].endswith(PLACEHOLDER_NOTE)
    warnings = Annotations.from_stack(synth.stack).find_warning("*", Match.string_like_regexp(".*NOT DEPLOYABLE.*"))
    assert warnings
    assert "NOT DEPLOYABLE" in synth.stack.template_options.description


def test_a_layer_is_current_only_when_stamped_with_its_lock_digest(tmp_path: Path) -> None:
    assert not is_current("core", tmp_path)
    (layer_dir("core", tmp_path) / "python").mkdir(parents=True)
    (layer_dir("core", tmp_path) / STAMP_NAME).write_text("0" * 64)
    assert not is_current("core", tmp_path)
    (layer_dir("core", tmp_path) / STAMP_NAME).write_text(lock_digest("core") + "\n")
    assert is_current("core", tmp_path)
    assert not is_current("caldav", tmp_path)


def test_cdk_json_runs_the_app_from_the_venv() -> None:
    data = json.loads((ROOT / "cdk.json").read_text())
    assert data["app"].endswith("-m infra.app")


def test_built_layers_of_a_function_share_no_file_and_keep_the_real_urllib3() -> None:
    """On the layers `make layer` built (skipped when there are none): no two layers of a function hold the same
    top-level entry (Lambda would overwrite one with the other in /opt/python), and the only urllib3/ is the
    core layer's real urllib3."""
    import pytest

    built = {g.name: layer_dir(g.name) / "python" for g in GROUPS if is_current(g.name)}
    if len(built) < len(GROUPS):
        pytest.skip("layers not built (make layer)")
    entries = {name: {p.name for p in path.iterdir()} for name, path in built.items()}
    for function, groups in FUNCTION_LAYERS.items():
        seen: dict[str, str] = {}
        for group in groups:
            for entry in entries[group]:
                assert entry not in seen, f"{function}: {entry} in both {seen[entry]} and {group}"
                seen[entry] = group
    assert [name for name, found in entries.items() if "urllib3" in found] == ["core"]
    version = (built["core"] / "urllib3" / "_version.py").read_text()
    assert re.search(r"__version__ = version = '2\.\d+\.\d+'", version), version
    assert not [name for name, found in entries.items() if "urllib3_future.pth" in found]
