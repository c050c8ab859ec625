"""Vault benchmark: KMS calls per 1,000 opens, seal/open latency, blob size, import cost.

Runs offline against in-process moto (KMS + DynamoDB). ``python -m bench.bench_vault`` prints JSON.
Latencies exclude KMS (the key is cached, as in a warm Lambda); moto's KMS timing means nothing.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench import Row

REGION = "us-east-1"
TABLE = "mentor-connections-bench"
MENTORS = 1_000


def _percentiles_us(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_us": round(statistics.median(ordered) * 1e6, 2),
        "p99_us": round(ordered[int(len(ordered) * 0.99) - 1] * 1e6, 2),
        "mean_us": round(statistics.fmean(ordered) * 1e6, 2),
    }


def _timed(fn: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def _import_ms() -> float:
    """Wall time of a cold ``import shared.vault`` in a fresh interpreter (cold-start cost)."""
    code = "import time; t = time.perf_counter(); import shared.vault; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return round(float(out.stdout.strip()) * 1000, 1)


def main() -> dict[str, object]:
    """Run the benchmark and return its measurements."""
    import boto3
    from moto import mock_aws

    from shared.store.schema import create_table
    from shared.vault import DynamoBranchStore, KeyCache, OAuthCredential, Vault

    with mock_aws():
        kms: Any = boto3.client("kms", region_name=REGION)
        ddb: Any = boto3.client("dynamodb", region_name=REGION)
        create_table(ddb, TABLE)
        key_arn = kms.create_key()["KeyMetadata"]["Arn"]
        calls: Counter[str] = Counter()
        kms.meta.events.register("before-call.kms", lambda event_name, **_: calls.update([event_name.split(".")[-1]]))
        store = DynamoBranchStore(ddb, TABLE)

        def credential(i: int) -> OAuthCredential:
            return OAuthCredential(
                access_token=f"ya29.a0AfH6SM-bench-access-token-{i:06d}-" + "x" * 120,
                refresh_token=f"1//0bench-refresh-token-{i:06d}-" + "y" * 60,
                expires_at=datetime(2026, 11, 21, 13, 0, tzinfo=UTC),
                scope="https://www.googleapis.com/auth/calendar.events",
            )

        # A writer process seals one credential for each of 1,000 mentors.
        writer = Vault(kms=kms, store=store, kms_key_id=key_arn, cache=KeyCache())
        creds = [credential(i) for i in range(MENTORS)]
        seal_samples: list[float] = []
        blobs: list[bytes] = []
        for i, cred in enumerate(creds):
            start = time.perf_counter()
            blobs.append(writer.seal_credential(cred, mentor_id=f"mentor-{i:06d}", provider="google"))
            seal_samples.append(time.perf_counter() - start)
        seal_kms = dict(calls)

        # A fresh warm process (its own empty cache, default bounds) opens all 1,000.
        calls.clear()
        reader = Vault(kms=kms, store=store, kms_key_id=key_arn, cache=KeyCache(max_age_s=300, max_uses=1000))
        open_samples: list[float] = []
        for i, blob in enumerate(blobs):
            start = time.perf_counter()
            reader.open_credential(blob, mentor_id=f"mentor-{i:06d}", provider="google")
            open_samples.append(time.perf_counter() - start)
        open_kms = dict(calls)

        # Raw seal/open of a 256-byte payload with a hot cache (large cache bounds: crypto only).
        hot = Vault(kms=kms, store=store, kms_key_id=key_arn, cache=KeyCache(max_uses=10**9))
        payload = b"p" * 256
        raw_blob = hot.seal(payload, mentor_id="m", provider="zoom")
        raw_seal = _timed(lambda: hot.seal(payload, mentor_id="m", provider="zoom"), 5_000)
        raw_open = _timed(lambda: hot.open(raw_blob, mentor_id="m", provider="zoom"), 5_000)

    return {
        "mentors": MENTORS,
        "kms_calls_sealing_1000": seal_kms,
        "kms_calls_opening_1000_fresh_process": open_kms,
        "kms_calls_opening_1000_total": sum(open_kms.values()),
        "seal_credential": _percentiles_us(seal_samples),
        "open_credential_incl_first_kms": _percentiles_us(open_samples),
        "seal_256B_hot": _percentiles_us(raw_seal),
        "open_256B_hot": _percentiles_us(raw_open),
        "blob_bytes_oauth": len(blobs[0]),
        "blob_overhead_bytes": len(raw_blob) - len(payload),
        "import_shared_vault_ms": _import_ms(),
    }


def summary(result: dict[str, Any]) -> list[Row]:
    """``(figure, value, target, met)`` rows for the ``make bench`` table."""
    opened = result["open_credential_incl_first_kms"]
    return [
        (
            f"KMS calls per {result['mentors']:,} credential reads (fresh warm process)",
            f"{result['kms_calls_opening_1000_total']} ({result['kms_calls_opening_1000_fresh_process']})",
            "<= 10",
            result["kms_calls_opening_1000_total"] <= 10,
        ),
        (
            "credential open (AES-256-GCM, cached data key)",
            f"median {opened['median_us']} µs, p99 {opened['p99_us']} µs",
            "",
            None,
        ),
    ]


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
