"""Deployment settings, read from CDK context (``cdk.json``, ``-c key=value``).

Every value a deployment differs in is a context key, listed in :data:`KEYS` with its meaning; the
README's deploy guide shows them. The ``dev`` stage fills the required ones with clearly fake
placeholders (``*.invalid`` hosts) so ``make synth`` works out of the box; any other stage refuses
to synthesise without them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from constructs import Node

from devstack.routes import SCHEDULES

DEV_STAGE: Final = "dev"
PLACEHOLDER_HOST: Final = "example.invalid"

#: Context key → what it means (the README's table is written from this).
KEYS: Final[dict[str, str]] = {
    "stage": "deployment name (default `dev`); `dev` may be destroyed, other stages retain data",
    "jwtIssuer": "the JWT issuer API Gateway trusts (the `iss` claim, e.g. a Cognito user pool URL)",
    "jwtAudience": "accepted `aud` (or `client_id`) values, comma-separated: the mentor app's and the platform's "
    "clients (classes_api accepts the same)",
    "platformScope": "the scope of the platform's client-credentials tokens (default `platform`; with Cognito "
    "`<resource server>/<scope>`): platform routes require it, mentor routes refuse it",
    "jwtJwksUrl": "the issuer's JWKS URL (default `<jwtIssuer>/.well-known/jwks.json`): classes_api checks JWTs too",
    "appUrl": "the mentor web app's origin (OAuth redirects land there; CORS allows it)",
    "apiUrl": "this API's public origin if a custom domain fronts it (default: the HTTP API endpoint)",
    "senderEmail": "the From address of every e-mail",
    "sesIdentity": "the SES identity that sends (a domain or the address; default the sender's domain)",
    "sesIdentityExists": "`true` if the identity is managed elsewhere (the stack then only refers to it)",
    "googleClientId": "Google OAuth client id (the secret goes to Secrets Manager)",
    "zoomClientId": "Zoom OAuth client id (the secret goes to Secrets Manager)",
    "microsoftClientId": "Microsoft Entra app (multi-tenant) client id (the secret goes to Secrets Manager)",
    "pollIntervalMinutes": "calendar_poll schedule (default 5)",
    "busySyncMaxConcurrency": "max concurrent busy_sync invocations (protects provider quotas; default 5)",
    "meetingsMaxConcurrency": "max concurrent mint_meeting invocations (default 10)",
    "logRetentionDays": "CloudWatch Logs retention of every function (default 30)",
    "logLevel": "POWERTOOLS_LOG_LEVEL (default INFO)",
    "alarmEmail": "an address subscribed to the alarm topic (optional)",
    "errorRatePercent": "a function's error rate (5-minute window) that raises its alarm (default 5)",
    "apiThrottleRate": "steady-state requests/s of the API's default stage (default 50)",
    "apiThrottleBurst": "burst of the API's default stage (default 100)",
    "providerEndpoints": "JSON object overriding provider base URLs by setting name, e.g. GOOGLE_API_BASE",
    "layer": "`build` (default: build/lambda-layers, `make layer`) or `placeholder` (tests, offline; not deployable)",
}

_RETENTION_DAYS: Final = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557)


class ConfigError(ValueError):
    """The context is missing or has a bad value."""


def _default_poll_minutes() -> int:
    for schedule in SCHEDULES:
        if schedule.function == "calendar_poll":
            return max(1, round(schedule.interval_s / 60))
    return 5


def _as_int(key: str, value: Any, *, minimum: int = 1) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"context {key!r} must be an integer, got {value!r}") from None
    if number < minimum:
        raise ConfigError(f"context {key!r} must be ≥ {minimum}, got {number}")
    return number


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def _as_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(part.strip() for part in str(value).split(",") if part.strip())


def _as_mapping(key: str, value: Any) -> dict[str, str]:
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigError(f"context {key!r} must be a JSON object") from None
    if not isinstance(value, Mapping):
        raise ConfigError(f"context {key!r} must be a JSON object")
    return {str(k).upper(): str(v) for k, v in value.items()}


def _scope(value: Any) -> str:
    """``platformScope``: one OAuth scope token (no spaces), default ``platform``."""
    if value is None or value == "":
        return "platform"
    text = str(value)
    if not re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]+", text):  # RFC 6749 §3.3 scope-token
        raise ConfigError(f"context 'platformScope' must be one OAuth scope token, got {text!r}")
    return text


@dataclass(frozen=True)
class DeployConfig:
    """Everything the stack reads from context, validated."""

    stage: str = DEV_STAGE
    jwt_issuer: str = f"https://auth.{PLACEHOLDER_HOST}/"
    jwt_audience: tuple[str, ...] = ("mentor-connections",)
    jwt_jwks_url: str = ""
    #: The scope of the platform's client-credentials tokens (PRODUCT.md §2.9); with Cognito
    #: ``<resource server id>/<scope>``. Platform routes require it (authorizationScopes).
    platform_scope: str = "platform"
    app_url: str = f"https://app.{PLACEHOLDER_HOST}"
    api_url: str | None = None
    sender_email: str = f"noreply@{PLACEHOLDER_HOST}"
    ses_identity: str = PLACEHOLDER_HOST
    ses_identity_exists: bool = False
    google_client_id: str = ""
    zoom_client_id: str = ""
    microsoft_client_id: str = ""
    poll_interval_minutes: int = 5
    busy_sync_max_concurrency: int = 5
    meetings_max_concurrency: int = 10
    log_retention_days: int = 30
    log_level: str = "INFO"
    alarm_email: str | None = None
    error_rate_percent: int = 5
    api_throttle_rate: int = 50
    api_throttle_burst: int = 100
    provider_endpoints: dict[str, str] = field(default_factory=dict)
    layer: str = "build"
    placeholders: tuple[str, ...] = ()

    @property
    def is_dev(self) -> bool:
        return self.stage == DEV_STAGE

    @property
    def jwks_url(self) -> str:
        return self.jwt_jwks_url or self.jwt_issuer.rstrip("/") + "/.well-known/jwks.json"

    @classmethod
    def from_context(cls, node: Node) -> DeployConfig:
        """Read and validate the context of ``node`` (the app or any construct)."""
        return cls.from_mapping({key: node.try_get_context(key) for key in KEYS})

    @classmethod
    def from_mapping(cls, ctx: Mapping[str, Any]) -> DeployConfig:
        def get(key: str) -> Any:
            value = ctx.get(key)
            return None if value is None or value == "" else value

        stage = str(get("stage") or DEV_STAGE)
        missing: list[str] = []
        placeholders: list[str] = []

        def required(key: str, default: str) -> str:
            value = get(key)
            if value is not None:
                return str(value)
            if stage != DEV_STAGE:
                missing.append(key)
            placeholders.append(key)
            return default

        defaults = cls()
        issuer = required("jwtIssuer", defaults.jwt_issuer)
        audience_raw = get("jwtAudience")
        if audience_raw is None:
            if stage != DEV_STAGE:
                missing.append("jwtAudience")
            placeholders.append("jwtAudience")
        audience = _as_list(audience_raw) if audience_raw is not None else defaults.jwt_audience
        app_url = required("appUrl", defaults.app_url)
        sender = required("senderEmail", defaults.sender_email)
        if missing:
            raise ConfigError(
                f"stage {stage!r} needs these context values: {', '.join(missing)} (see README, Deploying)"
            )
        if "@" not in sender:
            raise ConfigError(f"context 'senderEmail' must be an e-mail address, got {sender!r}")
        identity = str(get("sesIdentity") or sender.rsplit("@", 1)[1])
        domain = sender.rsplit("@", 1)[1]
        if not (sender == identity or domain == identity or domain.endswith("." + identity)):
            raise ConfigError(f"senderEmail {sender!r} is not covered by sesIdentity {identity!r}")
        retention = _as_int("logRetentionDays", get("logRetentionDays") or defaults.log_retention_days)
        if retention not in _RETENTION_DAYS:
            raise ConfigError(f"context 'logRetentionDays' must be one of {_RETENTION_DAYS}, got {retention}")
        layer = str(get("layer") or "build")
        if layer not in {"build", "placeholder"}:
            raise ConfigError(f"context 'layer' must be 'build' or 'placeholder', got {layer!r}")
        for key in ("jwtIssuer", "appUrl"):
            value = issuer if key == "jwtIssuer" else app_url
            if not value.startswith("https://") and key not in placeholders:
                raise ConfigError(f"context {key!r} must be an https URL, got {value!r}")
        api_url = get("apiUrl")
        return cls(
            stage=stage,
            jwt_issuer=issuer,
            jwt_audience=audience,
            jwt_jwks_url=str(get("jwtJwksUrl") or ""),
            platform_scope=_scope(get("platformScope")),
            app_url=app_url.rstrip("/"),
            api_url=str(api_url).rstrip("/") if api_url else None,
            sender_email=sender,
            ses_identity=identity,
            ses_identity_exists=_as_bool(get("sesIdentityExists") or False),
            google_client_id=str(get("googleClientId") or ""),
            zoom_client_id=str(get("zoomClientId") or ""),
            microsoft_client_id=str(get("microsoftClientId") or ""),
            poll_interval_minutes=_as_int("pollIntervalMinutes", get("pollIntervalMinutes") or _default_poll_minutes()),
            busy_sync_max_concurrency=_as_int(
                "busySyncMaxConcurrency", get("busySyncMaxConcurrency") or defaults.busy_sync_max_concurrency, minimum=2
            ),
            meetings_max_concurrency=_as_int(
                "meetingsMaxConcurrency", get("meetingsMaxConcurrency") or defaults.meetings_max_concurrency, minimum=2
            ),
            log_retention_days=retention,
            log_level=str(get("logLevel") or "INFO").upper(),
            alarm_email=str(get("alarmEmail")) if get("alarmEmail") else None,
            error_rate_percent=_as_int("errorRatePercent", get("errorRatePercent") or defaults.error_rate_percent),
            api_throttle_rate=_as_int("apiThrottleRate", get("apiThrottleRate") or defaults.api_throttle_rate),
            api_throttle_burst=_as_int("apiThrottleBurst", get("apiThrottleBurst") or defaults.api_throttle_burst),
            provider_endpoints=_as_mapping("providerEndpoints", get("providerEndpoints")),
            layer=layer,
            placeholders=tuple(placeholders),
        )
