"""One Lambda function the project's way, and what it may touch.

Every function: Python 3.13 on arm64, the project's code as one shared asset plus the dependency
layers its code needs (``infra.layer.groups``), Powertools configured by environment, X-Ray
tracing, its own log group with a retention, its own IAM role holding only what its
:class:`Access` lists, and an error-rate alarm.

:class:`Access` is the per-function least-privilege table; each capability construct writes one
per function it owns, with the code paths that justify it. How each field becomes IAM:

* ``table`` / ``index`` — those DynamoDB actions on the table ARN / on ``…/index/GSI1`` only.
  There is no ``dynamodb:TransactWriteItems`` IAM action: a transaction is authorised by the
  actions of its parts (``PutItem``, ``UpdateItem``, ``DeleteItem``, ``ConditionCheckItem``).
  Table reads and writes also need the table's KMS key, granted only ``kms:ViaService`` DynamoDB.
* ``vault`` — ``kms:Decrypt`` + ``kms:GenerateDataKey`` on the vault key, only with the
  encryption context the vault uses (``shared.vault.keys.encryption_context``): ``app`` and
  ``purpose`` pinned to the vault's values, and no keys beyond ``app``, ``purpose``, ``branch``.
* ``email`` — ``ses:SendEmail`` / ``ses:SendRawEmail`` on the sending identity, ``ses:FromAddress``
  pinned to the configured sender.
* ``secrets`` — ``secretsmanager:GetSecretValue`` on those secrets only; the function gets their
  ARNs in ``<SETTING>_PARAM`` variables (``shared.platform.secrets``), never the values.
* ``sends_to`` — ``sqs:SendMessage`` (which also covers ``SendMessageBatch``) on those queues only,
  and their URL in ``<QUEUE>_QUEUE_URL``.
* always — ``logs:CreateLogStream`` / ``logs:PutLogEvents`` on its own log group, X-Ray's two
  write actions (which only exist on ``*``), and whatever its event source needs (SQS consume on
  its own queue, added by the event source).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from cdk_nag import NagSuppressions
from constructs import Construct

from shared.store.schema import GSI1
from shared.vault.keys import APP, PURPOSE, encryption_context

if TYPE_CHECKING:
    from infra.constructs.platform import Platform

SERVICE_NAME: Final = "mentor-connections"
METRICS_NAMESPACE: Final = "MentorConnections"  # shared.platform.observability's Metrics namespace
RUNTIME: Final = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE: Final = lambda_.Architecture.ARM_64
RUNTIME_REASON: Final = (
    "Python 3.13 on purpose: the layers' binary wheels (cryptography, pydantic-core, lxml and others) are locked for "
    "CPython 3.13 / arm64 (requirements-lambda*.txt) and the code is tested on it; moving to a newer runtime is "
    "a lock regeneration plus a test run, done deliberately rather than by the linter"
)

#: The encryption-context keys of a vault branch key (``{"app", "purpose", "branch"}``).
VAULT_CONTEXT_KEYS: Final = tuple(sorted(encryption_context("any")))

RETENTION: Final = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
}

# DynamoDB action groups the capability constructs combine.
GET: Final = "GetItem"
QUERY: Final = "Query"
PUT: Final = "PutItem"
UPDATE: Final = "UpdateItem"
DELETE: Final = "DeleteItem"
CHECK: Final = "ConditionCheckItem"
BATCH_GET: Final = "BatchGetItem"
BATCH_WRITE: Final = "BatchWriteItem"
_WRITES: Final = frozenset({PUT, UPDATE, DELETE, CHECK, BATCH_WRITE})


@dataclass(frozen=True)
class Access:
    """What one function may touch (see the module docstring for the IAM each field becomes)."""

    table: tuple[str, ...] = ()
    index: tuple[str, ...] = ()
    vault: bool = False
    email: bool = False
    secrets: tuple[str, ...] = ()
    sends_to: tuple[str, ...] = ()
    providers: bool = False  # talks to Google / Zoom / iCloud: provider endpoints + client ids in env
    verifies_jwt: bool = False  # checks a mentor's JWT itself (routes without the authorizer)

    @property
    def writes(self) -> bool:
        return bool(_WRITES & set(self.table))


@dataclass(frozen=True)
class FunctionSpec:
    """A function's name (``functions/<name>/handler.py``), sizing and :class:`Access`."""

    name: str
    description: str
    access: Access
    timeout: Duration = field(default_factory=lambda: Duration.seconds(10))
    memory_mb: int = 512
    environment: Mapping[str, str] = field(default_factory=dict)

    @property
    def handler(self) -> str:
        return f"functions.{self.name}.handler.lambda_handler"


class AppFunction(Construct):
    """A Lambda function with its own role, log group and error-rate alarm (see module docstring)."""

    def __init__(self, scope: Construct, construct_id: str, *, spec: FunctionSpec, platform: Platform) -> None:
        super().__init__(scope, construct_id)
        cfg = platform.config
        self.spec = spec
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=RETENTION[cfg.log_retention_days],
            removal_policy=RemovalPolicy.DESTROY if cfg.is_dev else RemovalPolicy.RETAIN,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"mentor-connections {spec.name}: least privilege (infra/constructs/function.py)",
        )
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            description=f"mentor-connections {spec.name}: {spec.description}",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=spec.handler,
            code=platform.code,
            layers=platform.layers(spec.name),
            memory_size=spec.memory_mb,
            timeout=spec.timeout,
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            environment=self._environment(platform),
        )
        NagSuppressions.add_resource_suppressions(
            self.function,
            [{"id": "AwsSolutions-L1", "reason": RUNTIME_REASON}],
        )
        self._grant(platform)
        self.alarm = platform.monitoring.error_rate_alarm(self, self.function, spec.name)

    # --- environment --------------------------------------------------------------------------

    def _environment(self, platform: Platform) -> dict[str, str]:
        cfg, access = platform.config, self.spec.access
        env: dict[str, str] = {
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": cfg.log_level,
            # Responses carry secrets shown once (booking tokens, the feed URL): X-Ray must not keep them.
            "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
            "TABLE_NAME": platform.table.table_name,
            "APP_URL": cfg.app_url,
            "API_URL": platform.api_url,
            # Mentor routes refuse a platform token (shared.platform.api.mentor_id), so every function knows it
            "JWT_PLATFORM_SCOPE": cfg.platform_scope,
        }
        if access.vault:
            env["KMS_KEY_ID"] = platform.vault_key.key_arn
        if access.email:
            env["SENDER_EMAIL"] = cfg.sender_email
        for queue in access.sends_to:
            env[queue_url_variable(queue)] = platform.queue(queue).queue.queue_url
        for name in access.secrets:
            env[f"{name}_PARAM"] = platform.secrets.secret(name).secret_arn
        if access.providers:
            env.update(platform.provider_environment())
        if access.verifies_jwt:
            env.update(
                {
                    "JWT_ISSUER": cfg.jwt_issuer,
                    # every audience API Gateway accepts: the mentor app's and the platform's clients
                    "JWT_AUDIENCE": ",".join(cfg.jwt_audience),
                    "JWT_JWKS_URL": cfg.jwks_url,
                }
            )
        env.update(self.spec.environment)
        return env

    # --- IAM ----------------------------------------------------------------------------------

    def _grant(self, platform: Platform) -> None:
        access = self.spec.access
        table = platform.table
        if access.table:
            self.role.add_to_policy(
                iam.PolicyStatement(
                    sid="Table", actions=[f"dynamodb:{a}" for a in access.table], resources=[table.table_arn]
                )
            )
        if access.index:
            self.role.add_to_policy(
                iam.PolicyStatement(
                    sid="TableIndex",
                    actions=[f"dynamodb:{a}" for a in access.index],
                    resources=[f"{table.table_arn}/index/{GSI1}"],
                )
            )
        if access.table or access.index:
            key_actions = ["kms:Decrypt", "kms:DescribeKey"]
            if access.writes:
                key_actions += ["kms:Encrypt", "kms:GenerateDataKey"]
            self.role.add_to_policy(
                iam.PolicyStatement(
                    sid="TableKeyViaDynamoDB",
                    actions=key_actions,
                    resources=[platform.table_key.key_arn],
                    conditions={"StringEquals": {"kms:ViaService": f"dynamodb.{Stack.of(self).region}.amazonaws.com"}},
                )
            )
        if access.vault:
            self.role.add_to_policy(vault_statement(platform.vault_key.key_arn))
        if access.email:
            self.role.add_to_policy(platform.email.send_statement())
        if access.secrets:
            # GetSecretValue only (what Powertools' SecretsProvider calls), on exactly these secrets.
            self.role.add_to_policy(
                iam.PolicyStatement(
                    sid="ReadSecrets",
                    actions=["secretsmanager:GetSecretValue"],
                    resources=[platform.secrets.secret(name).secret_arn for name in access.secrets],
                )
            )
        if access.sends_to:
            # sqs:SendMessage also authorises SendMessageBatch; the URL comes from the environment.
            self.role.add_to_policy(
                iam.PolicyStatement(
                    sid="SendToQueues",
                    actions=["sqs:SendMessage"],
                    resources=[platform.queue(queue).queue.queue_arn for queue in access.sends_to],
                )
            )


def vault_statement(key_arn: str) -> iam.PolicyStatement:
    """``kms:Decrypt`` / ``kms:GenerateDataKey`` on the vault key, only under the vault's encryption context."""
    return iam.PolicyStatement(
        sid="VaultKeyWithContext",
        actions=["kms:Decrypt", "kms:GenerateDataKey"],
        resources=[key_arn],
        conditions={
            "StringEquals": {
                "kms:EncryptionContext:app": APP,
                "kms:EncryptionContext:purpose": PURPOSE,
            },
            "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": list(VAULT_CONTEXT_KEYS)},
            "Null": {"kms:EncryptionContext:branch": "false"},
        },
    )


def queue_url_variable(queue: str) -> str:
    """``meetings`` → ``MEETINGS_QUEUE_URL``, ``busy-sync`` → ``BUSY_SYNC_QUEUE_URL`` (``QueueSettings``)."""
    return queue.upper().replace("-", "_") + "_QUEUE_URL"


def error_rate(function: lambda_.IFunction, period: Duration) -> cloudwatch.MathExpression:
    """Errors as a percentage of invocations (0 when idle)."""
    return cloudwatch.MathExpression(
        expression="IF(invocations > 0, 100 * errors / invocations, 0)",
        using_metrics={
            "errors": function.metric_errors(period=period, statistic="Sum"),
            "invocations": function.metric_invocations(period=period, statistic="Sum"),
        },
        label="error rate (%)",
        period=period,
    )
