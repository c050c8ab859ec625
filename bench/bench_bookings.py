"""``POST /bookings`` benchmark: latency through the local API gateway.

A fresh local stack (:class:`devstack.stack.LocalStack`, no providers, no queue pumps), one
in-person class of one session with room for every booking, then ~200 sequential ``POST
/bookings`` with the platform's token, each over HTTP on loopback through the gateway (JWT and
scope check, the API Gateway event, the in-process ``classes_api`` handler, moto over HTTP): p50 /
p95 / max. Each booking is one session read and one three-item transaction (seat, booking, hold
marker). The first request (clients built) is reported on its own.

``python -m bench.bench_bookings`` prints JSON. Figures from moto are the local stack's, not
DynamoDB's.
"""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import Row

BOOKINGS = 200


def _percentiles_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def against_local_stack() -> dict[str, Any]:
    import httpx

    from devstack.stack import LocalStack
    from shared.platform.observability import logger

    with LocalStack(providers=False, queue_workers=()) as stack:
        logger.setLevel("WARNING")  # keep stdout for the report
        mentor = {"authorization": f"Bearer {stack.token('m-bench-bookings')}"}
        platform = {"authorization": f"Bearer {stack.platform_token()}"}
        start = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
        klass = {
            "title": "Bench bookings",
            "format": "in_person",
            "timezone": "UTC",
            "durationMinutes": 60,
            "capacity": BOOKINGS + 1,
            "location": "Room 1",
            "starts": [start.isoformat()],
        }
        with httpx.Client(base_url=stack.api_url, timeout=30) as api, contextlib.redirect_stdout(io.StringIO()):
            created = api.post("/classes", json=klass, headers=mentor)
            if created.status_code != 201:
                raise RuntimeError(f"POST /classes: {created.status_code} {created.text}")
            session_id = created.json()["sessions"][0]["sessionId"]

            def book(n: int) -> float:
                body = {
                    "sessionId": session_id,
                    "studentEmail": f"s{n}@example.com",
                    "studentName": f"Student {n}",
                    "priceAmount": 2500,
                    "currency": "EUR",
                }
                began = time.perf_counter()
                resp = api.post("/bookings", json=body, headers=platform)
                elapsed = time.perf_counter() - began
                if resp.status_code != 201:
                    raise RuntimeError(f"POST /bookings: {resp.status_code} {resp.text}")
                return elapsed

            first_s = book(0)
            samples = [book(n) for n in range(1, BOOKINGS + 1)]
    return {"first_request_ms": round(first_s * 1000, 1), "latency": _percentiles_ms(samples)}


def main() -> dict[str, Any]:
    """Run the benchmark and return its measurements."""
    return {"local_stack": against_local_stack()}


def summary(result: dict[str, Any]) -> list[Row]:
    """``(figure, value, target, met)`` rows for the ``make bench`` table."""
    run = result["local_stack"]["latency"]
    return [
        (
            f"POST /bookings through the local gateway ({run['n']} bookings)",
            f"p50 {run['p50_ms']} ms, p95 {run['p95_ms']} ms, max {run['max_ms']} ms",
            "",
            None,
        )
    ]


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
