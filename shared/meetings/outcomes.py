"""What becomes of a meetings job that a provider call failed (:mod:`shared.meetings.worker`).

Transient trouble raises :class:`RetryLater` (the message comes back after ``delay_s``); a
permanent provider refusal raises :class:`PermanentFailure`, so the message ends in the
dead-letter queue after ``MEETINGS_MAX_RECEIVES`` receives. :func:`provider_outcome` is the one
place that maps a provider's exception (:class:`~shared.providers.meetings.MeetingError`, the
token endpoint's :class:`~shared.providers.oauth.OAuthError`) to one of the two.
"""

from __future__ import annotations

from pydantic import Field

from shared.platform.env import EnvSettings


class MeetingsSettings(EnvSettings):
    """Meetings-worker tuning (environment variables of the same names, upper-cased)."""

    meetings_max_receives: int = Field(
        default=5,
        ge=1,
        description="The meetings queue's maxReceiveCount: a job failing this receive goes to the DLQ.",
    )


class RetryLater(Exception):
    """Transient: try this job again after ``delay_s`` seconds."""

    def __init__(self, reason: str, delay_s: float = 10.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_s = delay_s


class PermanentFailure(Exception):
    """The provider refused for good; the reason is on the booking and the message goes to the DLQ."""


def provider_outcome(exc: Exception, *, action: str = "") -> RetryLater | PermanentFailure:
    """The job's outcome for a provider call that raised ``exc`` (the caller raises it).

    * the provider refused the access token → retry in 30 s;
    * a retryable :class:`~shared.providers.meetings.MeetingError` → retry after its
      ``retry_after_s`` (10 s if it names none);
    * any other ``MeetingError`` → :class:`PermanentFailure` (``"<action> refused: "`` first when
      ``action`` names one);
    * the token endpoint unavailable or refusing → retry in 30 s.

    Anything else is not a provider error: it is re-raised as it is.
    """
    from shared.providers.meetings import MeetingAuthError, MeetingError
    from shared.providers.oauth import OAuthError, ProviderUnavailableError

    if isinstance(exc, MeetingAuthError):
        return RetryLater("the provider refused the access token", delay_s=30.0)
    if isinstance(exc, MeetingError):
        if exc.retryable:
            return RetryLater(f"{exc.code}: {exc}", delay_s=exc.retry_after_s or 10.0)
        prefix = f"{action} refused: " if action else ""
        return PermanentFailure(f"{prefix}{exc.code}: {exc}")
    if isinstance(exc, ProviderUnavailableError | OAuthError):
        return RetryLater(f"token unavailable: {type(exc).__name__}", delay_s=30.0)
    raise exc
