"""Every function of the wiring tables is declared once, the project's way."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from infra_support import Synth, function_names, refs, role_of

from devstack.routes import QUEUE_WORKERS, ROUTES
from infra.constructs.function import VAULT_CONTEXT_KEYS
from infra.constructs.secrets import SECRETS
from infra.constructs.sync import POLL_FUNCTION

ROOT = Path(__file__).resolve().parents[2]
DECLARED = sorted({r.function for r in ROUTES} | {w.function for w in QUEUE_WORKERS} | {POLL_FUNCTION})
API_FUNCTIONS = sorted({r.function for r in ROUTES})
WORKERS = sorted({w.function for w in QUEUE_WORKERS} | {POLL_FUNCTION})


def test_one_lambda_per_function_of_the_wiring_tables(synth: Synth) -> None:
    # Given ROUTES, QUEUE_WORKERS and the poll schedule / Then exactly those functions exist, once each
    assert sorted(function_names(synth)) == DECLARED


@pytest.mark.parametrize("name", DECLARED)
def test_handler_module_status(name: str) -> None:
    # Functions are declared before their code lands (the asset is the whole project, so synth never
    # depends on it). This lists, as skips, the ones whose handler is not written yet.
    handler = ROOT / "functions" / name / "handler.py"
    if not handler.is_file():
        pytest.skip(f"functions/{name}/handler.py not written yet (declared in infra, deploys once it exists)")
    tree = ast.parse(handler.read_text())
    defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert "lambda_handler" in defined


def test_functions_share_runtime_architecture_code_asset_and_layers(synth: Synth) -> None:
    functions = synth.of_type("AWS::Lambda::Function")
    props = [f["Properties"] for f in functions.values()]
    assert {p["Runtime"] for p in props} == {"python3.13"}
    assert {tuple(p["Architectures"]) for p in props} == {("arm64",)}
    assert len({json.dumps(p["Code"], sort_keys=True) for p in props}) == 1, "one code asset for every function"
    layers = synth.of_type("AWS::Lambda::LayerVersion")
    # which function gets which layer: tests/infra/test_packaging.py
    assert all({ref["Ref"] for ref in p["Layers"]} <= set(layers) for p in props)
    assert all(p["TracingConfig"] == {"Mode": "Active"} for p in props)
    for layer in layers.values():
        assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
        assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]


def test_each_function_has_its_own_role_and_log_group_with_retention(synth: Synth) -> None:
    names = function_names(synth)
    roles = {role_of(synth, fid) for fid in names.values()}
    assert len(roles) == len(names)
    for fid in names.values():
        (log_group_id,) = refs(synth.resources[fid]["Properties"]["LoggingConfig"]["LogGroup"])
        group = synth.resources[log_group_id]
        assert group["Type"] == "AWS::Logs::LogGroup"
        assert group["Properties"]["RetentionInDays"] == 30
        assert group["DeletionPolicy"] == "Retain"  # stage prod


@pytest.mark.parametrize("name", DECLARED)
def test_environment_configures_powertools_and_the_table(synth: Synth, name: str) -> None:
    env = synth.resources[function_names(synth)[name]]["Properties"]["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "mentor-connections"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "MentorConnections"
    assert env["POWERTOOLS_LOG_LEVEL"] == "INFO"
    assert env["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"
    assert refs(env["TABLE_NAME"])
    assert env["APP_URL"] == "https://app.mentors.test"
    assert "ApiEndpoint" in json.dumps(env["API_URL"])
    # Secrets travel by reference only: an ARN in <SETTING>_PARAM, never the value's variable
    for setting in SECRETS:
        assert setting not in env, f"{name} has the secret {setting} in its environment"
        if f"{setting}_PARAM" in env:
            (secret_id,) = refs(env[f"{setting}_PARAM"])
            assert synth.resources[secret_id]["Type"] == "AWS::SecretsManager::Secret"


def test_provider_functions_get_real_endpoints_and_client_ids(synth: Synth) -> None:
    names = function_names(synth)
    env = synth.resources[names["mint_meeting"]]["Properties"]["Environment"]["Variables"]
    assert env["GOOGLE_API_BASE"] == "https://www.googleapis.com/calendar/v3"
    assert env["ZOOM_API_BASE"] == "https://api.zoom.us/v2"
    assert env["APPLE_CALDAV_URL"] == "https://caldav.icloud.com"
    assert env["GOOGLE_CLIENT_ID"] == "google-client-id.apps.googleusercontent.com"
    assert env["KMS_KEY_ID"] == {"Fn::GetAtt": [next(k for k in synth.resources if "VaultKey" in k), "Arn"]}
    assert env["SENDER_EMAIL"] == "bookings@mentors.test"
    classes = synth.resources[names["classes_api"]]["Properties"]["Environment"]["Variables"]
    assert classes["JWT_ISSUER"] == "https://auth.mentors.test/"
    # shared.platform.auth accepts every audience the authorizer does: the mentor app's and the platform's
    assert classes["JWT_AUDIENCE"] == "mentor-app,platform"
    assert classes["JWT_PLATFORM_SCOPE"] == "platform"
    assert classes["JWT_JWKS_URL"] == "https://auth.mentors.test/.well-known/jwks.json"
    assert "GOOGLE_API_BASE" not in classes
    assert "KMS_KEY_ID" not in classes


def test_timeouts_api_fast_workers_longer(synth: Synth) -> None:
    names = function_names(synth)
    timeout = {n: synth.resources[fid]["Properties"]["Timeout"] for n, fid in names.items()}
    assert all(timeout[n] <= 29 for n in API_FUNCTIONS), timeout  # API Gateway's integration limit
    assert all(timeout[n] > max(timeout[a] for a in API_FUNCTIONS) for n in WORKERS), timeout


def test_queue_workers_use_partial_batches_and_visibility_six_times_their_timeout(synth: Synth) -> None:
    names = function_names(synth)
    by_id = {v: k for k, v in names.items()}
    mappings = synth.of_type("AWS::Lambda::EventSourceMapping")
    assert len(mappings) == len(QUEUE_WORKERS)
    workers = {w.function: w for w in QUEUE_WORKERS}
    for mapping in mappings.values():
        props = mapping["Properties"]
        (function_id,) = refs(props["FunctionName"])
        name = by_id[function_id]
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert props["BatchSize"] == workers[name].batch_size
        (queue_id,) = refs(props["EventSourceArn"])
        visibility = synth.resources[queue_id]["Properties"]["VisibilityTimeout"]
        assert visibility >= 6 * synth.resources[function_id]["Properties"]["Timeout"]
        concurrency = props["ScalingConfig"]["MaximumConcurrency"]
        assert concurrency == (4 if name == "busy_sync" else 10)  # -c busySyncMaxConcurrency=4


def test_poll_schedule_fires_calendar_poll_every_five_minutes_with_the_local_event_shape(synth: Synth) -> None:
    ((_, schedule),) = synth.of_type("AWS::Scheduler::Schedule").items()
    props = schedule["Properties"]
    assert props["ScheduleExpression"] == "rate(5 minutes)"
    assert props["State"] == "ENABLED"
    target = props["Target"]
    assert refs(target["Arn"]) == {function_names(synth)[POLL_FUNCTION]}
    event = json.dumps(target["Input"])
    assert "Scheduled Event" in event
    assert "<aws.scheduler.scheduled-time>" in event
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 0
    # The scheduler's role may invoke only calendar_poll
    (role_id,) = refs(target["RoleArn"])
    policies = [p for p in synth.of_type("AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"]["Roles"]]
    statements = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
    assert {s["Action"] for s in statements} == {"lambda:InvokeFunction"}
    assert all(refs(s["Resource"]) == {function_names(synth)[POLL_FUNCTION]} for s in statements)


def test_vault_context_keys_are_the_vaults() -> None:
    from shared.vault.keys import encryption_context

    assert set(VAULT_CONTEXT_KEYS) == set(encryption_context("2026-01"))


def test_the_meetings_worker_knows_the_queues_receive_limit(synth: Synth) -> None:
    """The worker records a job's failure on its last receive: it is told the queue's maxReceiveCount."""
    from infra.constructs.messaging import MAX_RECEIVES

    env = synth.resources[function_names(synth)["mint_meeting"]]["Properties"]["Environment"]["Variables"]
    assert env["MEETINGS_MAX_RECEIVES"] == str(MAX_RECEIVES)
    queues = [q for q in synth.of_type("AWS::SQS::Queue").values() if "RedrivePolicy" in q["Properties"]]
    assert {q["Properties"]["RedrivePolicy"]["maxReceiveCount"] for q in queues} == {MAX_RECEIVES}
