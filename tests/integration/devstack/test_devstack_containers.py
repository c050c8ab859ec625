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
    routes = [
        Route("GET", "/probe", "probe", auth=False, module=PROBE),
        Route("GET", "/echo", "echo", auth=False, module="devstack_resolver_probe"),
    ]
    server = GatewayServer(routes, issuer.verify)
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


def test_concurrent_requests_each_see_their_own_event(gateway: GatewayServer) -> None:
    """Powertools keeps the current event on a class shared by every module copy; the local runtime
    makes it per thread, so concurrent requests never read each other's event (as in Lambda)."""

    def ask(n: int) -> tuple[int, dict[str, Any]]:
        with httpx.Client(base_url=gateway.url, timeout=10) as client:
            resp = client.get("/echo", params={"n": str(n)})
            assert resp.status_code == 200, resp.text
            return n, resp.json()

    # When 160 requests with distinct query strings run 16 at a time
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(ask, range(160)))
    # Then every handler saw its own request, before and after yielding to the others
    mixed = [(n, body) for n, body in answers if body != {"n": str(n), "again": str(n)}]
    assert mixed == []


def test_a_missing_function_raises_not_found() -> None:
    # Given a function whose module does not exist / When a container is asked for / Then not found
    containers = Containers("functions.not_written_yet.handler")
    with pytest.raises(FunctionNotFoundError), containers.handler():
        pass
    assert containers.copies == 0
