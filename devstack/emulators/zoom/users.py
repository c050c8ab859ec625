"""Zoom users: ``GET /v2/users/{userId}`` (``me``, the caller's id or e-mail).

Rules: an app sees only the user who authorized it; the answer has the fields of Zoom's
``user`` response.
"""

from __future__ import annotations

import hashlib

from flask import Blueprint
from flask.typing import ResponseReturnValue

from devstack.emulators.common import json_response, rfc3339_seconds
from devstack.emulators.zoom import guards
from devstack.emulators.zoom.state import ZoomState


def blueprint(state: ZoomState) -> Blueprint:
    bp = Blueprint("zoom_users", __name__, url_prefix="/v2")

    @bp.get("/users/<user_id>")
    def get_user(user_id: str) -> ResponseReturnValue:
        with state.lock:
            _, me = guards.authorize(state, "user")
            u = guards.resolve_user(me, user_id)
            created = rfc3339_seconds(u.created_at)
            return json_response(
                {
                    "id": u.id,
                    "first_name": u.first_name,
                    "last_name": u.last_name,
                    "display_name": u.display_name,
                    "email": u.email,
                    "type": u.type,
                    "role_name": u.role_name,
                    "pmi": u.pmi,
                    "use_pmi": False,
                    "personal_meeting_url": f"{state.settings.web_base}/j/{u.pmi}",
                    "timezone": u.timezone,
                    "verified": 1,
                    "dept": "",
                    "created_at": created,
                    "user_created_at": created,
                    "last_login_time": rfc3339_seconds(state.now()),
                    "last_client_version": "6.0.0.0000(mac)",
                    "pic_url": "",
                    "language": u.language,
                    "phone_number": "",
                    "status": "active",
                    "role_id": "0",
                    "account_id": u.account_id,
                    "account_number": 10000000 + abs(int(hashlib.sha256(u.account_id.encode()).hexdigest()[:6], 16)),
                    "cluster": "us05",
                    "jid": f"{u.id.lower()}@xmpp.zoom.us",
                    "group_ids": [],
                    "im_group_ids": [],
                    "login_types": [100],
                }
            )

    return bp
