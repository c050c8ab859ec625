"""The whole local stack in one context manager.

    with LocalStack() as stack:
        token = stack.token("mentor-1")
        httpx.get(stack.api_url + "/connections", headers={"authorization": f"Bearer {token}"})
        stack.drain()

Start order: moto (+ bootstrap) → the environment the functions read → components (by default the
Google, Zoom and Microsoft emulators and Radicale, see :mod:`devstack.providers`; ``providers=False`` leaves
them out) → API gateway → each component's optional ``bind_api(api_url)`` hook (e.g. to register
``<API_URL>/oauth/google/callback`` with an emulator's OAuth client) → SQS pumps → scheduler.
Stop is the reverse, and restores the environment as it was.

A component is anything with ``start()``, ``stop()``, ``endpoints()`` (name → URL, merged into
:meth:`LocalStack.endpoints`) and ``environment()`` (variables the functions need to reach it,
e.g. ``GOOGLE_API_BASE``), see :class:`Component`.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import replace
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from devstack.aws import AwsEndpoints, MotoServer, bootstrap, boto_client
from devstack.gateway import GatewayServer
from devstack.jwt import LocalIssuer
from devstack.pumps import Pumps
from devstack.routes import DEFAULT_REGION, QUEUE_WORKERS, ROUTES, SCHEDULES, QueueWorker, Route, Schedule
from devstack.scheduler import Scheduler

log = logging.getLogger(__name__)


@runtime_checkable
class Component(Protocol):
    """Something the stack starts and stops: an emulator, a CalDAV server…"""

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def endpoints(self) -> Mapping[str, str]:
        """Public addresses, merged into :meth:`LocalStack.endpoints` (keys should be unique)."""
        ...

    def environment(self) -> Mapping[str, str]:
        """Environment variables the functions need to use this component."""
        ...


def _reset_function_caches() -> None:
    """Make functions re-read settings and rebuild clients (the environment changed).

    Every container-wide cache is a :mod:`shared.platform.once` factory, so one call forgets them
    all (settings, boto3 clients and everything :mod:`shared.wiring` built).
    """
    from shared import wiring

    wiring.reset()


class LocalStack:
    """moto + bootstrap + components + gateway + pumps + scheduler, on loopback."""

    def __init__(
        self,
        *,
        routes: Iterable[Route] = ROUTES,
        queue_workers: Iterable[QueueWorker] = QUEUE_WORKERS,
        schedules: Iterable[Schedule] = SCHEDULES,
        components: Iterable[Component] = (),
        providers: bool = True,
        host: str = "127.0.0.1",
        api_port: int = 0,
        aws_port: int = 0,
        region: str = DEFAULT_REGION,
        issuer: LocalIssuer | None = None,
        env: Mapping[str, str] | None = None,
        retry_delay_s: int = 1,
        poll_wait_s: int = 1,
        scheduler_autorun: bool = True,
        schedule_intervals: Mapping[str, float] | None = None,
    ) -> None:
        self.host = host
        self.region = region
        self.routes = list(routes)
        self.queue_workers = list(queue_workers)
        intervals = schedule_intervals or {}
        self.schedules = [replace(s, interval_s=intervals[s.name]) if s.name in intervals else s for s in schedules]
        self.components: list[Component] = []
        if providers:
            from devstack.providers import provider_components

            self.components.extend(provider_components(host))
        self.components.extend(components)
        self.extra_env = dict(env or {})
        #: This stack's Stripe webhook endpoint secret (``devstack.stripe_events`` signs with it).
        self.stripe_webhook_secret = "whsec_" + secrets.token_hex(24)
        self.issuer = issuer or LocalIssuer()
        self.moto = MotoServer(host, aws_port)
        self.gateway = GatewayServer(
            self.routes, self.issuer.verify, host=host, port=api_port, jwks=self.issuer.jwks, region=region
        )
        self._retry_delay_s = retry_delay_s
        self._poll_wait_s = poll_wait_s
        self.scheduler = Scheduler(self.schedules, region=region, autorun=scheduler_autorun)
        self._pumps: Pumps | None = None
        self._aws: AwsEndpoints | None = None
        self._saved_env: dict[str, str | None] = {}
        self._env: dict[str, str] = {}
        self._started: list[Any] = []
        self.running = False

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> LocalStack:
        if self.running:
            return self
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.running = True
        return self

    def _start(self) -> None:
        self.moto.start()
        self._started.append(self.moto)
        self._aws = bootstrap(self.moto.url, region=self.region)
        self._apply_env(self._aws_environment(self._aws))
        for component in self.components:
            self._start_component(component)
        self.gateway.start()
        self._started.append(self.gateway)
        self._apply_env(self.gateway.environment())
        self._apply_env(self._auth_environment())
        for component in self.components:
            self._bind_api(component)
        self._apply_env(self.extra_env)
        pumps = Pumps(
            self._aws.endpoint_url,
            region=self.region,
            account_id=self._aws.account_id,
            wait_s=self._poll_wait_s,
            retry_delay_s=self._retry_delay_s,
        )
        for worker in self.queue_workers:
            queue = self._aws.queue(worker.queue)
            pumps.add(worker, queue_url=queue.url, queue_arn=queue.arn)
        pumps.start()
        self._pumps = pumps
        self._started.append(pumps)
        self.scheduler.start()
        self._started.append(self.scheduler)
        log.info("local stack ready: %s", self.endpoints())

    def _start_component(self, component: Component) -> None:
        component.start()
        self._started.append(component)
        self._apply_env(dict(component.environment()))

    def _bind_api(self, component: Component) -> None:
        """Tell a component the gateway's URL, if it wants it (optional ``bind_api(api_url)``)."""
        bind = getattr(component, "bind_api", None)
        if callable(bind):
            bind(self.gateway.url)

    def add_component(self, component: Component) -> None:
        """Add a component; started now if the stack is running (its environment applied)."""
        self.components.append(component)
        if self.running:
            self._start_component(component)
            self._bind_api(component)

    def component(self, name: str) -> Any:
        """The component called ``name`` (``"google"``, ``"zoom"``, ``"microsoft"``, ``"caldav"`` …); ``KeyError``."""
        for component in self.components:
            if component.name == name:
                return component
        raise KeyError(name)

    def stop(self) -> None:
        """Stop everything that started (reverse order) and restore the environment."""
        while self._started:
            part = self._started.pop()
            try:
                part.stop()
            except Exception:
                log.exception("stopping %s failed", getattr(part, "name", part))
        self._pumps = None
        self._restore_env()
        self.running = False

    # --- environment -------------------------------------------------------------------------

    def _aws_environment(self, aws: AwsEndpoints) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": aws.endpoint_url,
            "AWS_REGION": aws.region,
            "AWS_DEFAULT_REGION": aws.region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "TABLE_NAME": aws.table_name,
            "KMS_KEY_ID": aws.kms_alias,
            "MEETINGS_QUEUE_URL": aws.meetings.url,
            "BUSY_SYNC_QUEUE_URL": aws.busy_sync.url,
            "SENDER_EMAIL": aws.sender_email,
            "STRIPE_WEBHOOK_SECRET": self.stripe_webhook_secret,
            "POWERTOOLS_TRACE_DISABLED": "1",
            "POWERTOOLS_SERVICE_NAME": "mentor-connections",
            "POWERTOOLS_METRICS_NAMESPACE": "MentorConnections",
        }

    def _auth_environment(self) -> dict[str, str]:
        """What a function needs to verify a mentor JWT itself (routes without the authorizer)."""
        return {
            "JWT_ISSUER": self.issuer.issuer,
            "JWT_AUDIENCE": self.issuer.audience,
            "JWT_JWKS_URL": self.gateway.endpoints()["jwks"],
        }

    def _apply_env(self, values: Mapping[str, str]) -> None:
        for key, value in values.items():
            if key not in self._saved_env:
                self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
            self._env[key] = value
        for key in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):  # real credentials must not leak in
            if key in os.environ and key not in self._saved_env:
                self._saved_env[key] = os.environ.pop(key)
        _reset_function_caches()

    def _restore_env(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        self._env.clear()
        _reset_function_caches()

    def environment(self) -> dict[str, str]:
        """The variables the stack set for the functions."""
        return dict(self._env)

    # --- accessors ---------------------------------------------------------------------------

    @property
    def aws(self) -> AwsEndpoints:
        if self._aws is None:
            raise RuntimeError("the local stack is not running")
        return self._aws

    @property
    def pumps(self) -> Pumps:
        if self._pumps is None:
            raise RuntimeError("the local stack is not running")
        return self._pumps

    @property
    def api_url(self) -> str:
        return self.gateway.url

    def endpoints(self) -> dict[str, str]:
        """Every address of the running stack, flat (the JSON line ``devstack up`` prints)."""
        found: dict[str, str] = {"api": self.gateway.url, "jwks": self.gateway.endpoints()["jwks"]}
        found.update(self.aws.as_dict())
        found.update({"issuer": self.issuer.issuer, "audience": self.issuer.audience})
        for component in self.components:
            found.update(component.endpoints())
        return found

    def token(self, sub: str, ttl_s: int = 3600, **claims: Any) -> str:
        """A bearer token the gateway accepts, for mentor ``sub``."""
        return self.issuer.issue(sub, ttl_s, **claims)

    def platform_token(self, ttl_s: int = 3600, **claims: Any) -> str:
        """The platform backend's bearer token (client credentials, the platform scope)."""
        return self.issuer.issue_platform(ttl_s, **claims)

    def client(self, service: str) -> Any:
        """A boto3 client for the stack's moto server."""
        return boto_client(service, self.aws.endpoint_url, self.region)

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until every pumped queue is empty and no worker is running (``TimeoutError``)."""
        self.pumps.drain(timeout)

    def tick(self, schedule: str) -> Any:
        """Fire a schedule now (synchronously); the function's result."""
        return self.scheduler.tick_now(schedule)
