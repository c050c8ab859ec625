"""``python -m devstack``: run the local stack and talk to it.

    up                       start everything (moto, gateway, Google/Zoom emulators, Radicale);
          [--no-providers]   print ONE JSON line of endpoints on stdout when ready (then logs go
                             to stderr); run until SIGINT / SIGTERM.
                             Writes .devstack/state.json while running.
    token --mentor ID        print a bearer token the running gateway accepts;
          [--plan P]         with a plan, also upsert the mentor's profile (plan) in the table
          [--ttl S] [--scope "a b"]
    outbox [--to ADDRESS]    print the e-mails the running stack sent, one JSON line each
    demo                     run the end-to-end story (devstack/demo.py)
    stripe --type TYPE       send a Stripe event signed with the running stack's webhook secret
           [--booking ID]    (devstack/stripe_events.py) to its /webhooks/stripe; print the answer.
                             It pays the booking's own amount and currency (read from the stack);
                             --amount / --currency / --payment-intent / --amount-refunded send
                             another one (a mismatch is refused), --partial refunds half, and
                             --type checkout.session.expired ends the booking's hold.
           [--mentor ID] [--plan P] [--event-id evt_…] [--partial]
    openapi [--check]        write docs/openapi.json from the code (devstack/openapi.py);
            [--output PATH]  --check only compares (exit 1 if stale)

The devstack directory is ``<repo>/.devstack`` (git-ignored) or ``$DEVSTACK_DIR``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from devstack.jwt import LocalIssuer, devstack_dir

STATE_FILE = "state.json"
PLANS = ("free", "pro", "premium")


def state_path() -> Path:
    return devstack_dir() / STATE_FILE


def read_state() -> dict[str, Any]:
    """The running stack's state (``up`` writes it); ``FileNotFoundError`` if none is running."""
    data: dict[str, Any] = json.loads(state_path().read_text())
    return data


def _write_state(state: dict[str, Any]) -> None:
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{STATE_FILE}.{os.getpid()}")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, path)


def _remove_state(pid: int) -> None:
    with contextlib.suppress(FileNotFoundError, ValueError):
        if read_state().get("pid") == pid:
            state_path().unlink()


def cmd_up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    from devstack.stack import LocalStack

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        logging.getLogger("devstack").info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    stack = LocalStack(
        host=args.host,
        api_port=args.api_port,
        aws_port=args.aws_port,
        retry_delay_s=args.retry_delay,
        providers=args.providers,
    )
    with stack:
        endpoints = stack.endpoints()
        ready_s = round(time.monotonic() - started, 3)
        _write_state(
            {
                "pid": os.getpid(),
                "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "ready_s": ready_s,
                "endpoints": endpoints,
                "environment": stack.environment(),
                "issuer": {
                    "iss": stack.issuer.issuer,
                    "aud": stack.issuer.audience,
                    "kid": stack.issuer.kid,
                    "key_dir": str(stack.issuer.key_dir),
                },
            }
        )
        sys.stdout.write(json.dumps(endpoints, separators=(",", ":")) + "\n")
        sys.stdout.flush()
        # stdout carries exactly one line: everything after it (function logs, metrics) → stderr.
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        sys.stdout = sys.stderr
        logging.getLogger("devstack").info("ready in %.2f s (Ctrl-C to stop)", ready_s)
        try:
            while not stop.wait(0.5):
                pass
        finally:
            _remove_state(os.getpid())
    return 0


def _upsert_plan(mentor: str, plan: str) -> None:
    """Set the mentor's plan in the running stack's table, through the shared store."""
    from devstack.aws import boto_client
    from shared.store import Store, Table

    endpoints = read_state()["endpoints"]
    dynamodb = boto_client("dynamodb", endpoints["aws"], endpoints.get("region", "us-east-1"))
    Store(Table(dynamodb, endpoints["table"])).upsert_mentor(mentor, plan=plan)


def _booking_payment(booking_id: str) -> dict[str, Any]:
    """What pays ``booking_id`` in the running stack: its price, currency and recorded PaymentIntent."""
    from devstack.aws import boto_client
    from shared.store import ScheduleStore, Table

    endpoints = read_state()["endpoints"]
    dynamodb = boto_client("dynamodb", endpoints["aws"], endpoints.get("region", "us-east-1"))
    booking = ScheduleStore(Table(dynamodb, endpoints["table"])).get_booking(booking_id)
    if booking is None or booking.price_amount is None or booking.currency is None:
        return {}
    found: dict[str, Any] = {"amount": booking.price_amount, "currency": booking.currency}
    if booking.payment_intent:
        found["payment_intent"] = booking.payment_intent
    return found


def cmd_token(args: argparse.Namespace) -> int:
    claims: dict[str, Any] = {}
    if args.scope:
        claims["scope"] = args.scope
    if args.platform:
        if args.mentor or args.plan:
            print("--platform is the platform's token: no --mentor / --plan", file=sys.stderr)
            return 2
        print(LocalIssuer().issue_platform(args.ttl, **claims))
        return 0
    if not args.mentor:
        print("token needs --mentor ID (or --platform)", file=sys.stderr)
        return 2
    if args.plan:
        try:
            _upsert_plan(args.mentor, args.plan)
        except FileNotFoundError:
            print(
                f"no running local stack ({state_path()} missing): start `python -m devstack up` first",
                file=sys.stderr,
            )
            return 1
        except Exception as exc:
            print(f"could not set the plan in the running stack: {exc}", file=sys.stderr)
            return 1
    print(LocalIssuer().issue(args.mentor, args.ttl, **claims))
    return 0


def cmd_stripe(args: argparse.Namespace) -> int:
    import httpx

    from devstack import stripe_events

    subscription = args.type.startswith("customer.subscription.")
    if subscription and not args.mentor:
        print(f"{args.type} needs --mentor (the subscription's metadata.mentor_id)", file=sys.stderr)
        return 2
    if args.type in stripe_events.EVENT_TYPES and not subscription and not args.booking:
        print(f"{args.type} needs --booking (metadata.booking_id)", file=sys.stderr)
        return 2
    try:
        state = read_state()
    except FileNotFoundError:
        print(f"no running local stack ({state_path()} missing): start `python -m devstack up` first", file=sys.stderr)
        return 1
    secret = state.get("environment", {}).get("STRIPE_WEBHOOK_SECRET")
    if not secret:
        print("the running stack has no STRIPE_WEBHOOK_SECRET: restart `python -m devstack up`", file=sys.stderr)
        return 1
    payment: dict[str, Any] = {}
    if args.booking:
        payment = _booking_payment(args.booking)  # the booking's own amount, currency and PaymentIntent
    for key in ("amount", "currency", "payment_intent", "amount_refunded"):
        if getattr(args, key) is not None:
            payment[key] = getattr(args, key)
    event = stripe_events.build_event(
        args.type,
        booking_id=args.booking,
        mentor_id=args.mentor,
        plan=args.plan,
        event_id=args.event_id,
        partial_refund=args.partial,
        **payment,
    )
    try:
        resp = stripe_events.send(state["endpoints"]["api"], event, secret)
    except httpx.HTTPError as exc:
        print(f"could not reach the running gateway: {exc}", file=sys.stderr)
        return 1
    try:
        answer: Any = resp.json()
    except ValueError:
        answer = resp.text
    print(json.dumps({"event": {"id": event["id"], "type": event["type"]}, "status": resp.status_code, "body": answer}))
    return 0 if resp.is_success else 1


def cmd_outbox(args: argparse.Namespace) -> int:
    import httpx

    from devstack.outbox import read_outbox

    try:
        endpoint = read_state()["environment"]["AWS_ENDPOINT_URL"]
    except FileNotFoundError:
        print(f"no running local stack ({state_path()} missing): start `python -m devstack up` first", file=sys.stderr)
        return 1
    try:
        sent = read_outbox(endpoint)
    except httpx.HTTPError as exc:
        print(f"could not reach the running stack's moto server: {exc}", file=sys.stderr)
        return 1
    for mail in sent:
        if args.to and args.to not in mail.to:
            continue
        print(json.dumps(mail.summary(), ensure_ascii=False))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        demo = importlib.import_module("devstack.demo")
    except ModuleNotFoundError as exc:
        if exc.name != "devstack.demo":
            raise
        print("the demo is not written yet (devstack/demo.py is missing)", file=sys.stderr)
        return 2
    result = demo.main()
    return result if isinstance(result, int) else 0


def cmd_openapi(args: argparse.Namespace) -> int:
    from devstack import openapi

    return openapi.run(args.output or openapi.DOCUMENT, check=args.check)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack", description="Run the local stack and talk to it.")
    parser.add_argument("--log-level", default=os.environ.get("DEVSTACK_LOG_LEVEL", "INFO"))
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="start the local stack and keep it running")
    up.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    up.add_argument("--api-port", type=int, default=0, help="API gateway port (0: a free one)")
    up.add_argument("--aws-port", type=int, default=0, help="moto port (0: a free one)")
    up.add_argument("--retry-delay", type=int, default=1, help="seconds before a failed SQS message retries")
    up.add_argument(
        "--no-providers",
        dest="providers",
        action="store_false",
        help="leave out the Google and Zoom emulators and Radicale (CalDAV)",
    )
    up.set_defaults(func=cmd_up)

    token = commands.add_parser("token", help="print a bearer token for a mentor or for the platform")
    token.add_argument("--mentor", help="mentor id (the token's sub)")
    token.add_argument(
        "--platform",
        action="store_true",
        help="the platform backend's client-credentials token (scope JWT_PLATFORM_SCOPE, default 'platform')",
    )
    token.add_argument("--plan", choices=PLANS, help="also set the mentor's plan in the running stack")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    token.add_argument("--scope", help="space-separated scopes (the scope claim)")
    token.set_defaults(func=cmd_token)

    stripe = commands.add_parser("stripe", help="send a signed Stripe event to the running stack")
    stripe.add_argument("--type", required=True, help="event type, e.g. checkout.session.completed, charge.refunded")
    stripe.add_argument("--booking", help="metadata.booking_id (checkout / payment intent / charge events)")
    stripe.add_argument("--mentor", help="metadata.mentor_id (customer.subscription.* events)")
    stripe.add_argument("--plan", choices=PLANS[1:], default="pro", help="the subscription price's plan")
    stripe.add_argument("--event-id", help="the event id (repeat one to send a duplicate)")
    stripe.add_argument("--partial", action="store_true", help="charge.refunded: refund half, not all")
    stripe.add_argument("--amount", type=int, help="pay / refund this amount (minor units) instead of the booking's")
    stripe.add_argument("--currency", help="pay in this currency (ISO 4217) instead of the booking's")
    stripe.add_argument(
        "--payment-intent", help="the PaymentIntent id (default: the booking's recorded one for refunds, else new)"
    )
    stripe.add_argument(
        "--amount-refunded", type=int, help="charge.refunded: how much was refunded (e.g. 1 for a 1-unit refund)"
    )
    stripe.set_defaults(func=cmd_stripe)

    outbox = commands.add_parser("outbox", help="print the e-mails the running stack sent (one JSON line each)")
    outbox.add_argument("--to", help="only e-mails to this address")
    outbox.set_defaults(func=cmd_outbox)
    demo = commands.add_parser("demo", help="run the end-to-end story")
    demo.set_defaults(func=cmd_demo)

    openapi = commands.add_parser("openapi", help="write docs/openapi.json, generated from the code")
    openapi.add_argument("--output", type=Path, help="where to write (default: docs/openapi.json)")
    openapi.add_argument("--check", action="store_true", help="only compare; exit 1 if the file is stale")
    openapi.set_defaults(func=cmd_openapi)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    result: int = args.func(args)
    return result
