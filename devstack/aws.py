"""AWS on loopback: moto in server mode, bootstrapped with what infra creates in a real account.

:class:`MotoServer` runs moto's Werkzeug app in a thread on ``127.0.0.1`` (port chosen free at
start). :func:`bootstrap` creates the single DynamoDB table (``shared.store.schema``), the KMS key
and its alias, the ``meetings`` and ``busy-sync`` queues with their dead-letter queues
(``maxReceiveCount`` 5) and the SES sender identity, and returns them as :class:`AwsEndpoints`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final

from devstack.routes import ACCOUNT_ID, DEFAULT_REGION

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)

TABLE_NAME: Final = "mentor-connections"
KMS_ALIAS: Final = "alias/mentor-connections"
MEETINGS_QUEUE: Final = "meetings"
BUSY_SYNC_QUEUE: Final = "busy-sync"
QUEUES: Final = (MEETINGS_QUEUE, BUSY_SYNC_QUEUE)
DLQ_SUFFIX: Final = "-dlq"
MAX_RECEIVE_COUNT: Final = 5
QUEUE_VISIBILITY_TIMEOUT_S: Final = 60  # the workers' timeout, as in infra
SENDER_EMAIL: Final = "noreply@mentor-connections.local"
TEST_CREDENTIALS: Final = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def boto_client(service: str, endpoint_url: str, region: str = DEFAULT_REGION) -> Any:
    """A boto3 client for the local moto server (dummy credentials, short timeouts)."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint_url,
        region_name=region,
        config=Config(connect_timeout=2, read_timeout=30, retries={"mode": "standard", "max_attempts": 3}),
        **TEST_CREDENTIALS,
    )


class MotoServer:
    """moto's server mode in its own process, on loopback.

    A separate process, not moto's ``ThreadedMotoServer``: moto keeps its backends in module-level
    state, so an in-process server would share (and lose) its tables and queues whenever a test
    in the same process enters or leaves ``mock_aws()``. Like a real AWS endpoint, the local
    stack's state now lives only behind its URL. It runs :mod:`devstack.motoserver`, moto's server
    with DynamoDB requests isolated as in DynamoDB (moto's own are not, under concurrency).
    """

    name = "aws"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, ready_timeout_s: float = 20.0) -> None:
        self.host = host
        self.port = port
        self.ready_timeout_s = ready_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self._process is None:
            raise RuntimeError("moto server not started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        if self.port == 0:
            with socket.socket() as probe:
                probe.bind((self.host, 0))
                self.port = probe.getsockname()[1]
        self._process = subprocess.Popen(
            [sys.executable, "-m", "devstack.motoserver", "-H", self.host, "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self._process.returncode} (port {self.port} busy?)")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    log.debug("moto listening on %s", self.url)
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"moto server not ready on {self.host}:{self.port} after {self.ready_timeout_s}s")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
            self._process = None

    def endpoints(self) -> dict[str, str]:
        return {"aws": self.url}

    def environment(self) -> dict[str, str]:
        return {}


@dataclass(frozen=True)
class QueueEndpoints:
    name: str
    url: str
    arn: str
    dlq_url: str
    dlq_arn: str


@dataclass(frozen=True)
class AwsEndpoints:
    """Everything :func:`bootstrap` created, with the addresses functions and tests need."""

    endpoint_url: str
    region: str
    account_id: str
    table_name: str
    kms_key_id: str
    kms_key_arn: str
    kms_alias: str
    meetings: QueueEndpoints
    busy_sync: QueueEndpoints
    sender_email: str

    def queue(self, name: str) -> QueueEndpoints:
        for queue in (self.meetings, self.busy_sync):
            if queue.name == name:
                return queue
        raise KeyError(name)

    def as_dict(self) -> dict[str, str]:
        """Flat string map (the shape of ``python -m devstack up``'s JSON line)."""
        return {
            "aws": self.endpoint_url,
            "region": self.region,
            "account_id": self.account_id,
            "table": self.table_name,
            "kms_key_id": self.kms_key_id,
            "kms_key_arn": self.kms_key_arn,
            "kms_alias": self.kms_alias,
            "meetings_queue_url": self.meetings.url,
            "meetings_dlq_url": self.meetings.dlq_url,
            "busy_sync_queue_url": self.busy_sync.url,
            "busy_sync_dlq_url": self.busy_sync.dlq_url,
            "sender_email": self.sender_email,
        }

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def create_queue_with_dlq(
    sqs: SQSClient,
    name: str,
    *,
    max_receive_count: int = MAX_RECEIVE_COUNT,
    visibility_timeout_s: int = QUEUE_VISIBILITY_TIMEOUT_S,
) -> QueueEndpoints:
    """``name`` and ``name-dlq``; the source queue redrives to the DLQ after ``max_receive_count``."""
    dlq_url = sqs.create_queue(QueueName=name + DLQ_SUFFIX, Attributes={"MessageRetentionPeriod": "1209600"})[
        "QueueUrl"
    ]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)})
    url = sqs.create_queue(
        QueueName=name,
        Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": str(visibility_timeout_s)},
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return QueueEndpoints(name=name, url=url, arn=arn, dlq_url=dlq_url, dlq_arn=dlq_arn)


def _kms_key(kms: Any, alias: str) -> tuple[str, str]:
    """(key id, key ARN) behind ``alias``, creating a rotating symmetric key if there is none."""
    try:
        meta = kms.describe_key(KeyId=alias)["KeyMetadata"]
        return meta["KeyId"], meta["Arn"]
    except kms.exceptions.NotFoundException:
        pass
    meta = kms.create_key(
        Description="mentor-connections vault (local)",
        KeySpec="SYMMETRIC_DEFAULT",
        KeyUsage="ENCRYPT_DECRYPT",
    )["KeyMetadata"]
    kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
    kms.enable_key_rotation(KeyId=meta["KeyId"])
    return meta["KeyId"], meta["Arn"]


def bootstrap(
    endpoint_url: str,
    *,
    region: str = DEFAULT_REGION,
    table_name: str = TABLE_NAME,
    kms_alias: str = KMS_ALIAS,
    sender_email: str = SENDER_EMAIL,
) -> AwsEndpoints:
    """Create (idempotently) the resources infra creates in AWS; return their addresses."""
    from shared.store.schema import create_table

    create_table(boto_client("dynamodb", endpoint_url, region), table_name)
    key_id, key_arn = _kms_key(boto_client("kms", endpoint_url, region), kms_alias)
    sqs = boto_client("sqs", endpoint_url, region)
    meetings = create_queue_with_dlq(sqs, MEETINGS_QUEUE)
    busy_sync = create_queue_with_dlq(sqs, BUSY_SYNC_QUEUE)
    # SES v2 identities: the sender address and its domain. moto's v2 SendEmail checks the same
    # identity store as v1, so no separate v1 verification is needed.
    sesv2 = boto_client("sesv2", endpoint_url, region)
    existing = {i["IdentityName"] for i in sesv2.list_email_identities().get("EmailIdentities", [])}
    for identity in (sender_email, sender_email.rsplit("@", 1)[-1]):
        if identity not in existing:
            sesv2.create_email_identity(EmailIdentity=identity)
    return AwsEndpoints(
        endpoint_url=endpoint_url,
        region=region,
        account_id=ACCOUNT_ID,
        table_name=table_name,
        kms_key_id=key_id,
        kms_key_arn=key_arn,
        kms_alias=kms_alias,
        meetings=meetings,
        busy_sync=busy_sync,
        sender_email=sender_email,
    )
