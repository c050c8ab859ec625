"""Deployment context: dev works out of the box with labelled placeholders; other stages must say everything."""

from __future__ import annotations

import pytest

from infra.app import cdk_json_context, parse_context_args
from infra.config import PLACEHOLDER_HOST, ConfigError, DeployConfig

PROD = {
    "stage": "prod",
    "jwtIssuer": "https://issuer.test/",
    "jwtAudience": "a, b",
    "appUrl": "https://app.test/",
    "senderEmail": "no-reply@mail.app.test",
}


def test_dev_stage_fills_required_values_with_invalid_placeholders() -> None:
    cfg = DeployConfig.from_mapping({})
    assert cfg.is_dev
    assert cfg.layer == "build"
    assert set(cfg.placeholders) == {"jwtIssuer", "jwtAudience", "appUrl", "senderEmail"}
    assert PLACEHOLDER_HOST in cfg.jwt_issuer
    assert cfg.jwt_issuer.endswith(".invalid/")
    assert cfg.sender_email.endswith("@" + PLACEHOLDER_HOST)
    assert cfg.ses_identity == PLACEHOLDER_HOST
    assert cfg.poll_interval_minutes == 5


def test_other_stages_refuse_to_synthesise_without_the_required_values() -> None:
    with pytest.raises(ConfigError, match="jwtIssuer, jwtAudience, appUrl, senderEmail"):
        DeployConfig.from_mapping({"stage": "prod"})


def test_prod_values_are_parsed() -> None:
    cfg = DeployConfig.from_mapping({**PROD, "pollIntervalMinutes": "10", "sesIdentity": "app.test"})
    assert cfg.jwt_audience == ("a", "b")
    assert cfg.app_url == "https://app.test"
    assert cfg.jwks_url == "https://issuer.test/.well-known/jwks.json"
    assert cfg.ses_identity == "app.test"  # a verified domain covers its subdomains
    assert cfg.poll_interval_minutes == 10
    assert cfg.placeholders == ()
    assert cfg.platform_scope == "platform"
    custom = DeployConfig.from_mapping({**PROD, "platformScope": "https://api.example.com/platform"})
    assert custom.platform_scope == "https://api.example.com/platform"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"senderEmail": "nobody"}, "e-mail address"),
        ({"sesIdentity": "other.test"}, "not covered"),
        ({"logRetentionDays": "31"}, "logRetentionDays"),
        ({"layer": "zip"}, "layer"),
        ({"busySyncMaxConcurrency": "1"}, "≥ 2"),
        ({"jwtIssuer": "http://issuer.test"}, "https"),
        ({"providerEndpoints": "[1]"}, "JSON object"),
        ({"platformScope": "platform extra"}, "platformScope"),
    ],
)
def test_bad_values_are_refused_with_a_message(override: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DeployConfig.from_mapping({**PROD, **override})


def test_sender_domain_is_the_default_identity() -> None:
    assert DeployConfig.from_mapping(PROD).ses_identity == "mail.app.test"


def test_context_args_and_cdk_json() -> None:
    assert parse_context_args(["-c", "stage=prod", "--context", "layer=placeholder"]) == {
        "stage": "prod",
        "layer": "placeholder",
    }
    with pytest.raises(SystemExit):
        parse_context_args(["stage=prod"])
    assert "@aws-cdk/core:checkSecretUsage" in cdk_json_context()


def test_readme_deploy_guide_names_every_context_key_secret_and_scope() -> None:
    import ast
    from pathlib import Path

    from infra.config import KEYS
    from infra.constructs.secrets import SECRETS, secret_name

    root = Path(__file__).resolve().parents[2]
    # The scopes the code requests, read without importing authlib (it warns on import).
    tree = ast.parse((root / "shared" / "providers" / "oauth.py").read_text())
    scopes = {
        target.id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name) and target.id in {"GOOGLE_SCOPES", "ZOOM_SCOPES", "MICROSOFT_SCOPES"}
    }
    assert set(scopes) == {"GOOGLE_SCOPES", "ZOOM_SCOPES", "MICROSOFT_SCOPES"}
    readme = (root / "README.md").read_text()
    guide = readme[readme.index("## Deploying") :]
    assert not [k for k in KEYS if f"`{k}`" not in guide]
    assert not [s for s in SECRETS if secret_name("STAGE", s) not in guide]
    assert not [s for s in (*scopes["GOOGLE_SCOPES"], *scopes["ZOOM_SCOPES"]) if f"`{s}`" not in guide]
    assert not [s for s in scopes["MICROSOFT_SCOPES"] if f"`{s}`" not in guide]
    for path in ("/oauth/google/callback", "/oauth/zoom/callback", "/webhooks/stripe", "/webhooks/zoom"):
        assert f"<API>{path}" in guide
    for path in ("/oauth/microsoft/callback", "/webhooks/microsoft"):
        assert f"<API>{path}" in guide
