"""Typed credentials. Secret fields are :class:`pydantic.SecretStr`: repr, str and JSON dumps mask them.

Only :func:`credential_to_plaintext` reveals them, to produce the bytes the vault seals; the sealed
JSON carries a ``kind`` discriminator so :func:`credential_from_plaintext` gets the right type back.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, field_validator


class OAuthCredential(BaseModel):
    """Google or Zoom OAuth tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    kind: Literal["oauth"] = "oauth"
    access_token: SecretStr
    refresh_token: SecretStr | None = None
    expires_at: AwareDatetime = Field(description="When the access token expires (UTC).")
    scope: str = ""
    token_type: str = "Bearer"

    @field_validator("expires_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    def secrets(self) -> list[str]:
        """The secret values (for log masking)."""
        found = [self.access_token.get_secret_value()]
        if self.refresh_token is not None:
            found.append(self.refresh_token.get_secret_value())
        return found


class AppleCredential(BaseModel):
    """An Apple ID and its app-specific password (iCloud CalDAV)."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    kind: Literal["apple"] = "apple"
    apple_id: str
    app_specific_password: SecretStr

    def secrets(self) -> list[str]:
        """The secret values (for log masking)."""
        return [self.app_specific_password.get_secret_value()]


Credential = Annotated[OAuthCredential | AppleCredential, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[OAuthCredential | AppleCredential] = TypeAdapter(Credential)


def _reveal(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def credential_to_plaintext(credential: OAuthCredential | AppleCredential) -> bytes:
    """The JSON bytes to seal, secrets revealed. Handle with care: seal them at once."""
    doc = {name: _reveal(value) for name, value in credential.model_dump(mode="python").items()}
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode("utf-8")


def credential_from_plaintext(data: bytes) -> OAuthCredential | AppleCredential:
    """Parse bytes made by :func:`credential_to_plaintext` (raises ``pydantic.ValidationError``)."""
    return _ADAPTER.validate_json(data)
