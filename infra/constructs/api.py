"""Api: the HTTP API with its JWT authorizer, the HTTP-facing functions and every route.

Routes come from ``devstack.routes.ROUTES`` — the table the local gateway serves — so local and
AWS cannot drift: each entry becomes one ``AWS::ApiGatewayV2::Route`` on its function, behind the
JWT authorizer when ``auth`` is set — with ``authorizationScopes`` = the platform scope
(``platformScope``) on platform routes, so a mentor token gets 403 — and with no authorizer otherwise
(OAuth callbacks, signed webhooks, the feed, and ``GET /bookings/{id}`` / ``POST /bookings/{id}/cancel``,
whose handler accepts the booking token or checks the platform's or mentor's JWT itself — an HTTP API
authorizer is all-or-nothing per route). A route naming a function nobody declared fails the synth.

The authorizer trusts ``jwtIssuer`` / ``jwtAudience`` from context; the mentor id is ``sub``. The
default stage has throttling and JSON access logs that name the route *template* (``routeKey``),
never the raw path or query, so feed tokens and booking tokens stay out of the logs.

Construction is in two steps because every function needs the API's URL (OAuth redirect URIs,
Google watch-channel addresses) while the routes need every function: ``Api(...)`` creates the API,
then ``add_handlers`` (after the other capabilities) creates the HTTP-facing functions and routes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Final

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from cdk_nag import NagSuppressions
from constructs import Construct

from devstack.routes import ROUTES, Route
from infra.constructs.function import (
    BATCH_GET,
    CHECK,
    DELETE,
    GET,
    PUT,
    QUERY,
    RETENTION,
    UPDATE,
    Access,
    FunctionSpec,
)
from infra.constructs.platform import Platform

#: Why a route without the JWT authorizer is safe, by function (cdk-nag APIG4 suppression reasons).
PUBLIC_REASONS: Final[dict[str, str]] = {
    "oauth_callback": "OAuth redirect from Google/Zoom in the browser: no bearer token exists; the single-use, "
    "expiring, hashed `state` (bound to the mentor, PKCE) authenticates the request",
    "classes_api": "booking page of a student: the handler accepts the booking token (X-Booking-Token or ?token=, "
    "compared in constant time) or verifies the platform's or the mentor's JWT itself (same issuer/audience/JWKS); "
    "an HTTP API authorizer cannot be optional",
    "stripe_webhook": "Stripe calls it: the handler verifies the Stripe-Signature HMAC (300 s tolerance) first",
    "provider_webhooks": "Zoom/Google/Microsoft call it: the handler verifies x-zm-signature (Zoom), the channel "
    "token (Google push) or each notification's clientState (Microsoft Graph) first",
    "calendar_feed": "calendar apps subscribe without credentials: the unguessable feed token (>=128 bits) in the "
    "path is the secret, rotatable by the mentor",
}

#: The HTTP-facing functions this construct owns (the feed is the Feed capability's) and what each
#: may touch — grep of their code paths (shared/connections/, shared/busy/view.py, shared/availability/,
#: shared/feed/tokens.py, shared/schedule/classes.py, shared/schedule/bookings.py, shared/schedule/payments.py,
#: shared/connections/zoom_webhook.py and the store / vault / token modules they call):
API_FUNCTIONS: Final[dict[str, FunctionSpec]] = {
    # GET/POST/PUT/DELETE /connections…: profile, connections (Get/Query/Put/Update),
    # OAuth state (Put), the pending connection consumed on complete (Delete, ReturnValues=ALL_OLD),
    # disconnect (Delete), vault branch key (Get/Put); Apple attempt counters and breaker (Get /
    # conditional Put / Update / Delete, shared/store/guards.py); seals the Apple credential
    # and opens Google's (vault); Google calendar list refreshes tokens (both client secrets for
    # refresh / ?revoke=true) and e-mails the mentor on invalid_grant; CalDAV discovery (providers);
    # Google push channels (shared/busy/push.py) watched on complete and on a calendar switch, stopped
    # on disconnect (Query for the mentor's channels, transactions of Put / Update / Delete parts);
    # Microsoft subscriptions likewise, each create preceded by its pending clientState hash (PutItem,
    # shared/store/subscription_states.py). A reconnect re-queues the bookings waiting for it (meetings
    # queue) and syncs the calendar at once (busy-sync queue): shared/meetings/resume.py.
    "connections_api": FunctionSpec(
        name="connections_api",
        description="/connections/*",
        access=Access(
            table=(GET, QUERY, PUT, UPDATE, DELETE),
            sends_to=("meetings", "busy-sync"),
            vault=True,
            email=True,
            secrets=("GOOGLE_CLIENT_SECRET", "ZOOM_CLIENT_SECRET", "MICROSOFT_CLIENT_SECRET"),
            providers=True,
        ),
        timeout=Duration.seconds(20),
    ),
    # GET /mentors/me/busy: the mentor's connections and busy sets (Query each, shared/busy/view.py).
    # GET/PUT /mentors/me/availability: the rules item (Get; a conditional Put, shared/store/availability.py).
    # GET /mentors/{mentorId}/slots (platform): the rules (Get), connections and busy sets (Query), the
    # timeline head (Get) and its private spans (Query), one Query per class teaching in the window
    # (shared/availability/bookable.py; no BatchGetItem, no index). GET /mentors/me/feed, POST …/rotate:
    # the feed token (shared/feed/tokens.py) read (Get), created / rotated by a transaction of Put, Delete
    # and Update parts, sealed and opened with the vault (vault branch key: Get / conditional Put).
    # No provider call, no secret, no queue, no e-mail.
    "mentors_api": FunctionSpec(
        name="mentors_api",
        description="/mentors/me/*, /mentors/{mentorId}/slots",
        access=Access(
            table=(GET, QUERY, PUT, UPDATE, DELETE),
            vault=True,
        ),
        # the budget these routes had in connections_api (up to 500 per-class Queries for slots, KMS retries)
        timeout=Duration.seconds(20),
    ),
    # GET /oauth/{provider}/callback: consumes the state (DeleteItem, ReturnValues=ALL_OLD), exchanges
    # the code (client secrets), reads the account, seals the tokens (vault) and parks them under a
    # single-use pending handle (conditional Put); the vault's branch key (Get / Put). The connection
    # itself is saved by POST /connections/{p}/complete (connections_api).
    "oauth_callback": FunctionSpec(
        name="oauth_callback",
        description="/oauth/{google,zoom,microsoft}/callback",
        access=Access(
            table=(GET, QUERY, PUT, UPDATE, DELETE),
            vault=True,
            secrets=("GOOGLE_CLIENT_SECRET", "ZOOM_CLIENT_SECRET", "MICROSOFT_CLIENT_SECRET"),
            providers=True,
        ),
        timeout=Duration.seconds(20),
    ),
    # /classes…, /bookings…: class + sessions and booking + seat + hold marker as transactions (Put /
    # Update / Delete parts: a cancel or an expired hold deletes the marker), reads (Get / Query, a
    # full session's ended holds), a session's bookings (Query on GSI1), the mentor's connections
    # (Query) for provider resolution; queues meeting jobs; verifies JWTs on the booking routes itself.
    # POST /private-sessions reads the mentor's timeline (one consistent BatchGetItem of the head and hour
    # buckets) and claims the time in one transaction with ConditionCheck parts (shared/store/timeline.py);
    # POST /classes and moves bump the timeline head (Update) and read the busy sets (Query).
    "classes_api": FunctionSpec(
        name="classes_api",
        description="/classes/*, /bookings/*, /private-sessions",
        access=Access(
            table=(GET, BATCH_GET, QUERY, PUT, UPDATE, DELETE, CHECK),
            index=(QUERY,),
            sends_to=("meetings",),
            verifies_jwt=True,
        ),
    ),
    # POST /webhooks/stripe: Powertools idempotency records (Get / Put / Update / Delete on the
    # single table), booking confirm / cancel transactions (Put / Update parts), mentor plan (Update);
    # a late payment of a private session re-claims its time (BatchGetItem of the timeline, a transaction
    # with ConditionCheck parts); queues meeting jobs; the endpoint secret. No provider call, no KMS.
    "stripe_webhook": FunctionSpec(
        name="stripe_webhook",
        description="/webhooks/stripe",
        access=Access(
            table=(GET, BATCH_GET, PUT, UPDATE, DELETE, CHECK),
            sends_to=("meetings",),
            secrets=("STRIPE_WEBHOOK_SECRET",),
        ),
    ),
    # POST /webhooks/zoom, /webhooks/google: remembers each verified Zoom signature once (conditional
    # Put, Delete if handling failed), finds the mentor of a Zoom user (Query on GSI1), reads the
    # connection and deletes the credential on app_deauthorized (Get + conditional Delete), keeps the
    # Zoom-user index keys (Update); a Google
    # push reads its channel and the connection (Get), coalesces bursts (conditional Update on the
    # channel) and queues an immediate resync of that connection (busy-sync queue). Drift repair: a Zoom
    # meeting.deleted / meeting.updated reads the meeting index (Get) and queues a check, a Google push a
    # calendar.changed check (meetings queue). A Microsoft notification reads its subscription (Get),
    # coalesces like Google's (Update on the link), forgets a removed subscription (transaction of
    # Deletes) and queues a sync (busy-sync queue); one for an unknown subscription reads the pending
    # clientState (Get) and, for a stray of ours, claims it (conditional Update) and queues its delete
    # (busy-sync queue). The webhook secret token. No provider call, no KMS.
    "provider_webhooks": FunctionSpec(
        name="provider_webhooks",
        description="/webhooks/zoom, /webhooks/google, /webhooks/microsoft",
        access=Access(
            table=(GET, PUT, UPDATE, DELETE),
            index=(QUERY,),
            sends_to=("busy-sync", "meetings"),
            secrets=("ZOOM_WEBHOOK_SECRET_TOKEN",),
        ),
    ),
}

ACCESS_LOG_FORMAT: Final = {
    "requestId": "$context.requestId",
    "time": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "userAgent": "$context.identity.userAgent",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "latencyMs": "$context.responseLatency",
    "integrationLatencyMs": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
    "authorizerError": "$context.authorizer.error",
    "mentor": "$context.authorizer.claims.sub",
}


def route_id(route: Route) -> str:
    """A construct id for a route: ``GET /connections/{provider}`` → ``GetConnectionsProvider``."""
    words = [route.method.lower(), *re.split(r"[^A-Za-z0-9]+", route.path)]
    return "Route" + "".join(w[:1].upper() + w[1:] for w in words if w)


class Api(Construct):
    """HTTP API + JWT authorizer; :meth:`add_handlers` adds the functions and the routes."""

    def __init__(self, scope: Construct, construct_id: str, *, platform: Platform) -> None:
        super().__init__(scope, construct_id)
        cfg = platform.config
        self.platform = platform
        self.http_api = apigwv2.HttpApi(
            self,
            "HttpApi",
            api_name=f"mentor-connections-{cfg.stage}",
            description="mentor-connections HTTP API (routes: devstack/routes.py)",
            create_default_stage=False,
            cors_preflight=apigwv2.CorsPreflightOptions(
                allow_origins=[cfg.app_url],
                allow_methods=[
                    apigwv2.CorsHttpMethod.GET,
                    apigwv2.CorsHttpMethod.POST,
                    apigwv2.CorsHttpMethod.PUT,
                    apigwv2.CorsHttpMethod.PATCH,
                    apigwv2.CorsHttpMethod.DELETE,
                ],
                allow_headers=["authorization", "content-type", "x-booking-token"],
                max_age=Duration.hours(1),
            ),
        )
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=RETENTION[cfg.log_retention_days],
            removal_policy=RemovalPolicy.DESTROY if cfg.is_dev else RemovalPolicy.RETAIN,
        )
        self.stage = apigwv2.HttpStage(
            self,
            "DefaultStage",
            http_api=self.http_api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=cfg.api_throttle_rate, burst_limit=cfg.api_throttle_burst),
        )
        cfn_stage = self.stage.node.default_child
        assert isinstance(cfn_stage, apigwv2.CfnStage)
        cfn_stage.access_log_settings = apigwv2.CfnStage.AccessLogSettingsProperty(
            destination_arn=self.access_logs.log_group_arn, format=json.dumps(ACCESS_LOG_FORMAT, sort_keys=True)
        )
        self.authorizer = authorizers.HttpJwtAuthorizer(
            "MentorJwt",
            cfg.jwt_issuer,
            jwt_audience=list(cfg.jwt_audience),
            authorizer_name="mentor-jwt",
            identity_source=["$request.header.Authorization"],
        )
        self.url: str = cfg.api_url or self.http_api.api_endpoint
        self.routes: dict[str, apigwv2.HttpRoute] = {}

    def add_handlers(self, extra_functions: Mapping[str, lambda_.IFunction]) -> None:
        """Create :data:`API_FUNCTIONS`, then a route for every entry of ``ROUTES``."""
        functions: dict[str, lambda_.IFunction] = dict(extra_functions)
        for spec in API_FUNCTIONS.values():
            functions[spec.name] = self.platform.function(self, spec).function
        self.add_routes(ROUTES, functions)

    def add_routes(self, routes: Iterable[Route], functions: Mapping[str, lambda_.IFunction]) -> None:
        """One route per entry, on its function's integration (shared by that function's routes)."""
        integrations_by_function: dict[str, integrations.HttpLambdaIntegration] = {}
        for route in routes:
            function = functions.get(route.function)
            if function is None:
                raise KeyError(f"route {route.key} names function {route.function!r}, which no capability declares")
            integration = integrations_by_function.setdefault(
                route.function,
                integrations.HttpLambdaIntegration(f"{route.function}-integration", function),
            )
            created = apigwv2.HttpRoute(
                self,
                route_id(route),
                http_api=self.http_api,
                route_key=apigwv2.HttpRouteKey.with_(route.path, apigwv2.HttpMethod(route.method)),
                integration=integration,
                authorizer=self.authorizer if route.auth else apigwv2.HttpNoneAuthorizer(),
                # platform routes (PRODUCT.md §2.9): the token must carry the platform scope, else 403
                authorization_scopes=[self.platform.config.platform_scope] if route.platform else None,
            )
            if not route.auth:
                reason = PUBLIC_REASONS.get(route.function)
                if reason is None:
                    raise ValueError(f"public route {route.key} on {route.function!r} has no documented reason")
                NagSuppressions.add_resource_suppressions(created, [{"id": "AwsSolutions-APIG4", "reason": reason}])
            self.routes[route.key] = created
