"""``python -m devstack demo`` / ``make demo``: the whole story, end to end, on a private local stack.

Each step is a function taking the :class:`Demo` context; later issues append steps to ``STEPS``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from devstack.metering import count_calls
from devstack.stack import LocalStack


@dataclass
class Demo:
    """What the steps share: the running stack, an HTTP client, and facts gathered on the way."""

    stack: LocalStack
    http: httpx.Client
    mentor_id: str = "m-demo"
    facts: dict[str, Any] = field(default_factory=dict)

    def say(self, text: str = "") -> None:
        print(text, flush=True)

    def show(self, label: str, value: Any) -> None:
        rendered = value if isinstance(value, str) else json.dumps(value, indent=2, default=str)
        print(f"  {label}: {rendered}" if "\n" not in rendered else f"  {label}:\n{_indent(rendered)}", flush=True)

    def bearer(self, mentor_id: str | None = None) -> dict[str, str]:
        return {"authorization": f"Bearer {self.stack.token(mentor_id or self.mentor_id)}"}


def _indent(text: str, by: str = "    ") -> str:
    return "\n".join(by + line for line in text.splitlines())


def step_stack(demo: Demo) -> None:
    """The local stack is up."""
    demo.show("endpoints", demo.stack.endpoints())


def step_seed_mentor(demo: Demo) -> None:
    """Seed a mentor on the Pro plan."""
    from shared.store import default_store

    mentor = default_store().upsert_mentor(
        demo.mentor_id, plan="pro", email="ada@example.com", timezone="Europe/Berlin"
    )
    demo.show("mentor", mentor.model_dump(mode="json"))


def step_seal_and_store(demo: Demo) -> None:
    """Seal a Google credential with the vault and store the connection; show the stored item."""
    from datetime import UTC, datetime, timedelta

    from pydantic import SecretStr

    from shared.aws import client
    from shared.store import Connection, Provider, default_store
    from shared.vault import OAuthCredential, default_vault

    vault = default_vault()
    credential = OAuthCredential(
        access_token=SecretStr("ya29.demo-access-token-not-real"),
        refresh_token=SecretStr("1//demo-refresh-token-not-real"),
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        scope="https://www.googleapis.com/auth/calendar.events https://www.googleapis.com/auth/calendar.readonly",
    )
    demo.show("credential (repr)", repr(credential))
    with count_calls(client("kms")) as kms_calls:
        blob = vault.seal_credential(credential, mentor_id=demo.mentor_id, provider="google")
    default_store().save_connection(
        Connection(
            mentor_id=demo.mentor_id,
            provider=Provider.GOOGLE,
            account_label="Connected as ada@example.com",
            selected_calendar="primary",
            credential=blob,
        ),
        expected_version=None,
    )
    raw = demo.stack.client("dynamodb").get_item(
        TableName=demo.stack.environment()["TABLE_NAME"],
        Key={"PK": {"S": f"MENTOR#{demo.mentor_id}"}, "SK": {"S": "CONN#google"}},
    )["Item"]
    sealed = raw["credential"]["B"]
    raw["credential"] = {"B": f"<{len(sealed)} bytes: {sealed[:12].hex()}…>"}
    demo.show("stored item (raw DynamoDB)", raw)
    header = vault.inspect(blob)
    demo.show("sealed header", {"version": header.version, "kms_key": header.key_arn, "branch": header.branch_id})
    demo.show("KMS calls to seal (first seal of the period)", dict(kms_calls.calls))
    plaintexts = ["ya29.demo-access-token-not-real", "1//demo-refresh-token-not-real"]
    assert not any(p.encode() in sealed for p in plaintexts), "plaintext found in the sealed item"
    demo.say("  plaintext tokens appear nowhere in the stored item")


def step_kms_budget(demo: Demo) -> None:
    """Seal 1,000 credentials for 1,000 mentors, then open them all in a fresh (cold-cache) vault."""
    from pydantic import SecretStr

    from shared.aws import client
    from shared.config import BaseFunctionSettings, settings
    from shared.vault import AppleCredential, Vault, default_vault
    from shared.vault.branch_store import DynamoBranchStore

    sealer = default_vault()
    blobs = [
        (
            f"m-{n:04d}",
            sealer.seal_credential(
                AppleCredential(apple_id=f"m{n}@icloud.com", app_specific_password=SecretStr("abcd-efgh-ijkl-mnop")),
                mentor_id=f"m-{n:04d}",
                provider="apple",
            ),
        )
        for n in range(1000)
    ]
    cfg: BaseFunctionSettings = settings()
    reader = Vault(
        kms=client("kms"), store=DynamoBranchStore(client("dynamodb"), cfg.table_name), kms_key_id=cfg.kms_key_id
    )
    started = time.perf_counter()
    with count_calls(client("kms")) as kms_calls:
        for mentor_id, blob in blobs:
            reader.open_credential(blob, mentor_id=mentor_id, provider="apple")
    elapsed = time.perf_counter() - started
    demo.facts["kms_calls_1000_opens"] = kms_calls.total
    demo.show(
        "1,000 opens in a new process-like vault",
        f"{kms_calls.total} KMS call(s) {dict(kms_calls.calls)}, {elapsed * 1000:.0f} ms",
    )


def step_api(demo: Demo) -> None:
    """Ask the API for the mentor's connections through the local gateway (real HTTP, real JWT)."""
    resp = demo.http.get("/connections", headers=demo.bearer())
    demo.show(f"GET /connections → {resp.status_code}", resp.json())
    token = demo.stack.token(demo.mentor_id)
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    resp = demo.http.get("/connections", headers={"authorization": f"Bearer {tampered}"})
    demo.show(f"GET /connections with a tampered token → {resp.status_code}", resp.json())


STEPS: list[Callable[[Demo], None]] = [step_stack, step_seed_mentor, step_seal_and_store, step_kms_budget, step_api]


def main(argv: list[str] | None = None) -> int:
    """Run every step on a private stack; exit non-zero if one fails."""
    import logging
    import os

    # The story is the output: function logs and EMF metric lines stay out of it unless asked for.
    if not os.environ.get("DEMO_VERBOSE"):
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        logging.basicConfig(level=logging.WARNING)
        logging.getLogger().setLevel(logging.WARNING)
        for noisy in ("httpx", "devstack", "botocore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    started = time.perf_counter()
    with LocalStack() as stack, httpx.Client(base_url=stack.api_url, timeout=10) as http:
        demo = Demo(stack=stack, http=http)
        for number, step in enumerate(STEPS, 1):
            title = (step.__doc__ or step.__name__).strip().splitlines()[0]
            demo.say(f"\n== {number}. {title}")
            step(demo)
    print(f"\ndemo finished in {time.perf_counter() - started:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
