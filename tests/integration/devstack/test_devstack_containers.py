"""The local gateway runs a function like Lambda does: one request per container at a time, more
containers for concurrent requests (a Powertools resolver is per-container state)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from devstack.gateway import GatewayServer
from devstack.jwt import LocalIssuer
from devstack.routes import Containers, FunctionNotFoundError, Route

PROBE = "devstack_container_probe"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    issuer = LocalIssuer(tmp_path_factory.mktemp("containers-keys"))
    server = GatewayServer([Route("GET", "/probe", "probe", auth=False, module=PROBE)], issuer.verify)
    server.start()
    yield server
    server.stop()


def _get(url: str) -> dict[str, Any]:
    with httpx.Client(base_url=url, timeout=10) as client:
        resp = client.get("/probe")
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body


def test_concurrent_requests_never_share_a_container(gateway: GatewayServer) -> None:
    # When 8 requests arrive at once
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: _get(gateway.url), range(8)))
    # Then none ran while another was running in the same module object; several containers served
    assert not any(r["overlap"] for r in results)
    assert len({r["container"] for r in results}) > 1
    assert sum(r["primary"] for r in results) >= 1
    # When requests come one after another / Then the imported module (sys.modules) serves each
    sequential = [_get(gateway.url) for _ in range(3)]
    assert all(r["primary"] for r in sequential)


def test_a_missing_function_raises_not_found() -> None:
    # Given a function whose module does not exist / When a container is asked for / Then not found
    containers = Containers("functions.not_written_yet.handler")
    with pytest.raises(FunctionNotFoundError), containers.handler():
        pass
    assert containers.copies == 0
