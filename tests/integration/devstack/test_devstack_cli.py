"""``python -m devstack up`` / ``token`` as subprocesses, the way a developer uses them."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]
STARTUP_BUDGET_S = 10.0


def _devstack(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=30
    )


@pytest.fixture(scope="module")
def running_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``python -m devstack up`` in its own directory; yields endpoints, env and startup time."""
    home = tmp_path_factory.mktemp("devstack-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TABLE_NAME", "API_URL"))}
    env["DEVSTACK_DIR"] = str(home)
    stderr = (home / "up.stderr").open("w")
    launched = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack", "up"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=stderr
    )
    try:
        assert process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(process.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout=STARTUP_BUDGET_S + 5)
        line = process.stdout.readline() if ready else b""
        startup_s = time.monotonic() - launched
        assert line, f"no endpoints line; stderr: {(home / 'up.stderr').read_text()}"
        yield {
            "endpoints": json.loads(line),
            "env": env,
            "home": home,
            "process": process,
            "startup_s": startup_s,
        }
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        stderr.close()


def test_up_prints_endpoints_within_budget(running_up: dict[str, Any]) -> None:
    # Given `python -m devstack up` was launched
    # Then within 10 s it printed one JSON line of loopback endpoints and wrote its state file
    print(f"devstack up ready in {running_up['startup_s']:.2f} s")
    assert running_up["startup_s"] < STARTUP_BUDGET_S
    endpoints = running_up["endpoints"]
    for name in ("api", "aws", "jwks", "meetings_queue_url", "busy_sync_queue_url"):
        assert endpoints[name].startswith("http://127.0.0.1:")
    state = json.loads((running_up["home"] / "state.json").read_text())
    assert state["endpoints"] == endpoints
    assert state["pid"] == running_up["process"].pid


def test_token_from_cli_is_accepted_by_running_gateway(running_up: dict[str, Any]) -> None:
    # Given a token printed by `python -m devstack token`
    result = _devstack("token", "--mentor", "m1", env=running_up["env"])
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    api = running_up["endpoints"]["api"]
    # When it calls a mentor route, and so does a tampered copy
    ok = httpx.get(f"{api}/connections", headers={"authorization": f"Bearer {token}"}, timeout=10)
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
    bad = httpx.get(f"{api}/connections", headers={"authorization": f"Bearer {forged}"}, timeout=10)
    # Then the gateway lets the first through and refuses the second
    assert ok.status_code != 401
    assert bad.status_code == 401
    assert bad.json() == {"message": "Unauthorized"}


def test_token_with_plan_upserts_the_mentor_profile(running_up: dict[str, Any]) -> None:
    # Given the running stack
    endpoints = running_up["endpoints"]
    # When a token is requested with a plan
    result = _devstack("token", "--mentor", "m2", "--plan", "pro", env=running_up["env"])
    # Then a token is printed and the mentor's profile has that plan
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(".") == 2
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=endpoints["aws"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    item = dynamodb.get_item(TableName=endpoints["table"], Key={"PK": {"S": "MENTOR#m2"}, "SK": {"S": "PROFILE"}})
    assert item["Item"]["plan"] == {"S": "pro"}


def test_up_stops_cleanly_on_sigterm(running_up: dict[str, Any]) -> None:
    # Given the running process
    process = running_up["process"]
    # When it gets SIGTERM
    process.send_signal(signal.SIGTERM)
    # Then it exits 0 promptly and removes its state file
    assert process.wait(timeout=15) == 0
    assert not (running_up["home"] / "state.json").exists()
    # and `token --plan` now explains that no stack is running
    result = _devstack("token", "--mentor", "m3", "--plan", "pro", env=running_up["env"])
    assert result.returncode == 1
    assert "devstack up" in result.stderr


def test_demo_without_demo_module_explains(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Given no devstack/demo.py (simulated: the import is blocked)
    monkeypatch.setitem(sys.modules, "devstack.demo", None)
    # When `demo` runs
    from devstack.cli import main

    code = main(["demo"])
    # Then it says so clearly and fails
    assert code == 2
    assert "demo.py" in capsys.readouterr().err
