"""Microsoft 365 / Teams in the rules (PRODUCT.md §2.2, §2.4): ``teams`` resolves to the Microsoft
connection among three video providers, Microsoft's OAuth app, and the Teams ``transactionId``."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from shared.platform.api import ApiError
from shared.platform.config import ProviderSettings
from shared.providers.microsoft.teams import transaction_id
from shared.providers.oauth import MICROSOFT_SCOPES, oauth_app
from shared.schedule.classes import resolve_provider
from shared.store import Connection, ConnectionStatus, MeetingProvider, Provider


def _conn(provider: Provider, status: ConnectionStatus = ConnectionStatus.CONNECTED) -> Connection:
    return Connection(mentor_id="m1", provider=provider, status=status)


def test_teams_is_minted_by_the_microsoft_connection() -> None:
    assert MeetingProvider.TEAMS.connection is Provider.MICROSOFT
    assert {p: p.connection for p in MeetingProvider} == {
        MeetingProvider.GOOGLE_MEET: Provider.GOOGLE,
        MeetingProvider.ZOOM: Provider.ZOOM,
        MeetingProvider.TEAMS: Provider.MICROSOFT,
    }


@pytest.mark.parametrize(
    "connections",
    [
        [_conn(Provider.MICROSOFT)],
        [_conn(Provider.MICROSOFT), _conn(Provider.APPLE)],
        [_conn(Provider.MICROSOFT), _conn(Provider.ZOOM, ConnectionStatus.NEEDS_RECONNECT)],
    ],
)
def test_microsoft_alone_resolves_to_teams(connections: list[Connection]) -> None:
    provider, conn = resolve_provider(None, connections)
    assert (provider, conn.provider) == (MeetingProvider.TEAMS, Provider.MICROSOFT)


def test_three_connected_providers_need_a_choice_named_in_the_message() -> None:
    with pytest.raises(ApiError) as err:
        resolve_provider(None, [_conn(Provider.MICROSOFT), _conn(Provider.ZOOM), _conn(Provider.GOOGLE)])
    assert (err.value.status, err.value.code) == (400, "meeting_provider_required")
    assert err.value.extra["choices"] == ["google_meet", "zoom", "teams"]
    assert err.value.message == "Google Meet, Zoom and Microsoft Teams are connected: choose meetingProvider."
    # Two connected: "A and B"
    with pytest.raises(ApiError) as two:
        resolve_provider(None, [_conn(Provider.MICROSOFT), _conn(Provider.GOOGLE)])
    assert two.value.message == "Google Meet and Microsoft Teams are connected: choose meetingProvider."


def test_teams_named_needs_a_live_microsoft_connection() -> None:
    provider, _ = resolve_provider(MeetingProvider.TEAMS, [_conn(Provider.MICROSOFT), _conn(Provider.ZOOM)])
    assert provider is MeetingProvider.TEAMS
    for connections, state in (
        ([_conn(Provider.GOOGLE)], "not_connected"),
        ([_conn(Provider.MICROSOFT, ConnectionStatus.NEEDS_RECONNECT)], "needs_reconnect"),
    ):
        with pytest.raises(ApiError) as err:
            resolve_provider(MeetingProvider.TEAMS, connections)
        assert (err.value.status, err.value.code) == (409, "provider_not_connected")
        assert (err.value.extra["provider"], err.value.extra["connectionStatus"]) == ("teams", state)


def test_no_video_provider_names_all_three() -> None:
    with pytest.raises(ApiError) as err:
        resolve_provider(None, [_conn(Provider.APPLE)])
    assert (err.value.status, err.value.code) == (409, "no_video_provider")
    assert "Microsoft 365 (Teams)" in err.value.message


def test_microsoft_oauth_app_defaults_to_the_common_tenant_without_revocation() -> None:
    cfg = ProviderSettings(microsoft_client_id="app-id", microsoft_client_secret=SecretStr("s3cret"))
    app = oauth_app(Provider.MICROSOFT, cfg)
    assert (app.authorize_url, app.token_url) == (cfg.microsoft_auth_url, cfg.microsoft_token_url)
    defaults = {name: field.default for name, field in ProviderSettings.model_fields.items()}
    assert defaults["microsoft_auth_url"] == "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"
    assert defaults["microsoft_token_url"] == "https://login.microsoftonline.com/common/oauth2/v2.0/token"
    assert defaults["microsoft_api_base"] == "https://graph.microsoft.com/v1.0"
    assert (app.client_id, app.token_auth, app.revoke_url, app.send_scope) == (
        "app-id",
        "client_secret_post",
        "",
        True,
    )
    assert app.scopes == MICROSOFT_SCOPES == ("offline_access", "Calendars.ReadWrite", "User.Read")
    assert "s3cret" not in repr(app)


def test_transaction_id_is_stable_per_session_key_and_distinct_between_keys() -> None:
    first = transaction_id("sess_1.g1")
    assert first == transaction_id("sess_1.g1")
    assert len({first, transaction_id("sess_1.g2"), transaction_id("sess_2.g1")}) == 3
    assert len(first) == 36  # a UUID string, well under any length Graph could refuse
