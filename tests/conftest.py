"""Shared fixtures.

``aws_env`` / ``store`` — moto in-process (table + KMS key + alias), for unit and component tests.

``local_stack`` — the whole local stack (moto + bootstrap, API gateway, SQS pumps, scheduler),
started once per session on loopback. While it runs, ``os.environ`` points the functions at it
(``AWS_ENDPOINT_URL``, ``TABLE_NAME``, queue URLs, ``API_URL`` …); it is restored at the end.
Tests that need a pristine AWS environment while it runs should ``monkeypatch`` those variables.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator

import httpx
import pytest
from moto import mock_aws

from devstack.jwt import LocalIssuer
from devstack.stack import LocalStack
from shared import wiring
from shared.platform import aws
from shared.platform.observability import logger
from shared.store import ScheduleStore, Store, Table
from shared.store.schema import create_table

TABLE = "mentor-connections-test"

#: The local providers (emulators, Radicale) and the fixtures built on them, for e2e and reliability.
pytest_plugins = ["stack_fixtures"]

#: The longest test files (30-75 s each on the 2-core CI machine), run first: `make test` spreads whole
#: files over two xdist workers in collection order, so a long file started last would leave the
#: other worker idle at the end. Order only; every test runs either way.
SLOW_FIRST = (
    "tests/reliability/test_stripe_storm.py",
    "tests/reliability/test_provider_faults.py",
    "tests/e2e/test_meetings_faults_e2e.py",
    "tests/e2e/test_drift_repair_e2e.py",
    "tests/reliability/test_concurrency.py",
    "tests/integration/devstack/test_devstack_cli.py",
    "tests/reliability/test_secrets_canary.py",
    "tests/reliability/test_self_healing_faults.py",
    "tests/reliability/test_microsoft_faults.py",
    "tests/e2e/test_push_first_e2e.py",
    "tests/security/test_seat_property.py",
    "tests/e2e/test_microsoft_busy_e2e.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the files of :data:`SLOW_FIRST` first, in that order; the rest keep theirs (a stable sort)."""
    rank = {path: n for n, path in enumerate(SLOW_FIRST)}

    def key(item: pytest.Item) -> int:
        path = item.nodeid.partition("::")[0]
        return rank.get(path, len(SLOW_FIRST))

    items.sort(key=key)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The running local stack (its own signing key, so tests never touch the repo's .devstack/).

    Schedules fire only when a test ticks them (``local_stack.tick("calendar-poll")``): a poll firing
    on its own five minutes into the session would sync every test's calendars in the background.
    """
    issuer = LocalIssuer(tmp_path_factory.mktemp("devstack-keys"))
    with LocalStack(issuer=issuer, scheduler_autorun=False) as stack:
        yield stack


@pytest.fixture
def api(local_stack: LocalStack) -> Iterator[httpx.Client]:
    """An HTTP client for the local API gateway."""
    with httpx.Client(base_url=local_stack.api_url, timeout=10) as client:
        yield client


@pytest.fixture
def mentor_headers(local_stack: LocalStack) -> Callable[..., dict[str, str]]:
    """``mentor_headers("m1", scope="a b")`` → ``{"authorization": "Bearer <jwt for m1>"}``."""

    def make(mentor_id: str = "mentor-1", **claims: object) -> dict[str, str]:
        return {"authorization": f"Bearer {local_stack.token(mentor_id, **claims)}"}

    return make


@pytest.fixture
def platform_headers(local_stack: LocalStack) -> dict[str, str]:
    """The platform backend's bearer token (client credentials, scope ``platform``): what ``POST
    /bookings`` and the other platform routes need (PRODUCT.md §2.9)."""
    return {"authorization": f"Bearer {local_stack.platform_token()}"}


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Moto-backed AWS with the project's table and KMS key; env as a deployed function sees it."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "TABLE_NAME": TABLE,
        "KMS_KEY_ID": "alias/mentor-connections",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_SERVICE_NAME": "tests",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    wiring.reset()
    with mock_aws():
        create_table(aws.client("dynamodb"), TABLE)
        kms = aws.client("kms")
        key = kms.create_key(Description="mentor-connections vault")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName="alias/mentor-connections", TargetKeyId=key)
        yield
    wiring.reset()

    wiring.reset()


@pytest.fixture
def atomic_dynamodb(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto's item writes atomic, as DynamoDB's are.

    DynamoDB evaluates a condition and applies the write as one step; moto's in-process backend
    does not lock, so two threads can both pass a condition. Race tests use this fixture so they
    test *our* conditional logic, not moto's missing isolation.
    """
    import threading

    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ("put_item", "update_item", "delete_item", "transact_write_items", "get_item"):
        original = getattr(DynamoDBBackend, name)

        def locked(self: object, *args: object, __original: object = original, **kwargs: object) -> object:
            with lock:
                return __original(self, *args, **kwargs)  # type: ignore[operator]

        monkeypatch.setattr(DynamoDBBackend, name, locked)


@pytest.fixture
def store(aws_env: None) -> Store:
    """A repository over the mocked table."""
    return Store(Table(aws.client("dynamodb"), TABLE))


@pytest.fixture
def schedule(aws_env: None) -> ScheduleStore:
    """Classes, sessions and bookings over the mocked table."""
    return ScheduleStore(Table(aws.client("dynamodb"), TABLE))


@pytest.fixture
def captured_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Every log record of every logger (and the project logger), at DEBUG, into one buffer.

    Canary tests search it for secrets; it includes botocore's DEBUG request/response logs.
    """
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    old_project_level = logger.log_level
    logger.setLevel("DEBUG")
    monkeypatch.setattr(logger.registered_handler, "stream", stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        logger.setLevel(old_project_level)
