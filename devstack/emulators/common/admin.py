"""The admin routes every emulator shares (``/_admin``, ``/_admin/state``, ``/_admin/faults``, ...).

Rules: admin routes read and change the emulator's state directly; they are never delayed or faulted
(the hooks in :mod:`devstack.emulators.common.http` skip ``/_admin``).
"""

from __future__ import annotations

from dataclasses import asdict

from flask import Blueprint, current_app, request
from flask.typing import ResponseReturnValue

from devstack.emulators.common.http import empty_response, json_response, request_json_object
from devstack.emulators.common.state import EmulatorState
from devstack.emulators.common.util import ADMIN_PREFIX


def admin_blueprint(state: EmulatorState) -> Blueprint:
    bp = Blueprint("common_admin", __name__, url_prefix=ADMIN_PREFIX)
    _install_views(bp, state)
    _install_faults(bp, state)
    _install_tokens(bp, state)
    return bp


def _install_views(bp: Blueprint, state: EmulatorState) -> None:
    @bp.get("")
    def _admin_index() -> ResponseReturnValue:
        routes = sorted(
            {
                f"{','.join(sorted((r.methods or set()) - {'HEAD', 'OPTIONS'}))} {r.rule}"
                for r in current_app.url_map.iter_rules()
            }
        )
        return json_response({"emulator": state.name, "base_url": state.base_url, "routes": routes})

    @bp.get("/health")
    def _admin_health() -> ResponseReturnValue:
        return json_response({"ok": True, "emulator": state.name, "base_url": state.base_url})

    @bp.get("/state")
    def _admin_state() -> ResponseReturnValue:
        with state.lock:
            return json_response(state.snapshot())

    @bp.post("/reset")
    def _admin_reset() -> ResponseReturnValue:
        with state.lock:
            state.reset()
        return json_response({"ok": True})

    @bp.get("/requests")
    def _admin_requests() -> ResponseReturnValue:
        return json_response(
            state.requests.entries(
                path_prefix=request.args.get("path_prefix", ""), method=request.args.get("method", "")
            )
        )

    @bp.delete("/requests")
    def _admin_requests_clear() -> ResponseReturnValue:
        state.requests.clear()
        return empty_response()


def _install_faults(bp: Blueprint, state: EmulatorState) -> None:
    @bp.get("/faults")
    def _admin_faults_get() -> ResponseReturnValue:
        return json_response(state.faults.config.to_json())

    @bp.post("/faults")
    def _admin_faults_set() -> ResponseReturnValue:
        body = request_json_object() or {}
        try:
            cfg = state.faults.configure(**body)
        except (TypeError, ValueError) as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response(cfg.to_json())

    @bp.post("/clock")
    def _admin_clock() -> ResponseReturnValue:
        body = request_json_object() or {}
        if body.get("reset"):
            state.clock.reset()
        offset = state.clock.advance(float(body.get("advance_seconds", 0)))
        return json_response({"offset_seconds": offset, "now": state.now()})

    @bp.post("/settings")
    def _admin_settings() -> ResponseReturnValue:
        try:
            return json_response(asdict(state.apply_settings(request_json_object() or {})))
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)


def _install_tokens(bp: Blueprint, state: EmulatorState) -> None:
    @bp.post("/tokens/revoke")
    def _admin_revoke() -> ResponseReturnValue:
        body = request_json_object() or {}
        if body.get("token"):
            return json_response({"revoked": int(state.revoke_token(str(body["token"])))})
        if body.get("email"):
            return json_response({"revoked": state.revoke_user(str(body["email"]))})
        return json_response({"error": "give token or email"}, 400)

    @bp.post("/tokens/expire")
    def _admin_expire() -> ResponseReturnValue:
        body = request_json_object() or {}
        expired = state.expire_access_tokens(email=body.get("email"), token=body.get("token"))
        return json_response({"expired": expired})
