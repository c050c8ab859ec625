"""The signed-in user and their calendars: ``GET /v1.0/me``, ``GET /v1.0/me/calendars`` and
``GET /v1.0/me/calendars/{calendar-id}``, plus the 400 every unknown ``/v1.0`` path gets.

Rules: ``/me`` answers Graph's default property set (NOTES-msgraph §2.8); ``mail`` may be null
(then ``userPrincipalName`` names the account). Calendars carry ``canEdit`` (shared read-only
calendars are ``false``) and their online-meeting providers.
"""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from devstack.emulators.common import JSONDict, json_response
from devstack.emulators.microsoft import guards
from devstack.emulators.microsoft.errors import bad_request
from devstack.emulators.microsoft.model import TEAMS, MsCalendar, MsUser
from devstack.emulators.microsoft.state import MicrosoftState

_METADATA = "https://graph.microsoft.com/v1.0/$metadata"


def user_json(user: MsUser) -> JSONDict:
    return {
        "@odata.context": f"{_METADATA}#users/$entity",
        "businessPhones": [],
        "displayName": user.display_name,
        "givenName": user.given_name,
        "jobTitle": None,
        "mail": user.mail,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": "en-US",
        "surname": user.surname,
        "userPrincipalName": user.user_principal_name,
        "id": user.id,
    }


def calendar_json(state: MicrosoftState, cal: MsCalendar) -> JSONDict:
    owner = state.users.get(cal.owner_id)
    providers = [TEAMS] if cal.online_meetings else []
    return {
        "id": cal.id,
        "name": cal.name,
        "color": cal.color,
        "hexColor": "",
        "isDefaultCalendar": cal.is_default,
        "changeKey": "fJKVL07sbkmIfHqjbDnRgQAAAAAACA==",
        "canShare": cal.can_edit and cal.is_default,
        "canViewPrivateItems": cal.can_edit,
        "canEdit": cal.can_edit,
        "allowedOnlineMeetingProviders": providers,
        "defaultOnlineMeetingProvider": TEAMS if cal.online_meetings else "unknown",
        "isTallyingResponses": cal.is_default,
        "isRemovable": not cal.is_default,
        "owner": {"name": owner.display_name if owner else "", "address": cal.owner_email},
    }


def blueprint(state: MicrosoftState) -> Blueprint:
    bp = Blueprint("microsoft_me", __name__, url_prefix=guards.API_PREFIX)

    @bp.get("/me")
    def get_me() -> ResponseReturnValue:
        with state.lock:
            _, user = guards.authorize(state, "me")
            return json_response(user_json(user))

    @bp.get("/me/calendars")
    def list_calendars() -> ResponseReturnValue:
        with state.lock:
            _, user = guards.authorize(state, "calendars")
            value = [calendar_json(state, state.calendars[cid]) for cid in user.calendars]
            return json_response({"@odata.context": f"{_METADATA}#users('{user.id}')/calendars", "value": value})

    @bp.get("/me/calendars/<calendar_id>")
    def get_calendar(calendar_id: str) -> ResponseReturnValue:
        with state.lock:
            _, user = guards.authorize(state, "calendar")
            cal = guards.calendar_for(state, user, calendar_id)
            body = {"@odata.context": f"{_METADATA}#users('{user.id}')/calendars/$entity", **calendar_json(state, cal)}
            return json_response(body)

    @bp.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def unknown(rest: str) -> ResponseReturnValue:
        segment = rest.split("/")[-1]
        return bad_request(f"Resource not found for the segment '{segment}'.", "BadRequest")

    return bp
