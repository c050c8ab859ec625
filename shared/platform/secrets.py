"""Secrets from Secrets Manager or SSM (in AWS) or from the environment (local stack, tests).

In AWS a function's environment never holds a secret's *value*: the stack puts the secret's ARN in
``<SETTING>_PARAM`` (``GOOGLE_CLIENT_SECRET_PARAM``, ``STRIPE_WEBHOOK_SECRET_PARAM`` …, see
``infra/constructs/secrets.py``) and grants read on just that secret. :func:`resolve_secret` reads
it through Powertools Parameters (cached in memory for ``SECRETS_MAX_AGE_S`` seconds, 300 by
default); without the ``_PARAM`` variable it falls back to the plain ``<SETTING>`` variable, which
is how the local stack and the tests configure secrets.

Which store: a value starting with ``arn:aws:ssm:`` / ``arn:aws-…:ssm:`` or with ``/`` is an SSM
parameter (read with decryption, for SecureString); anything else (a Secrets Manager ARN or name)
is a Secrets Manager secret whose ``SecretString`` is the value.

:func:`fill_secret_params` is the pydantic hook: a settings class's ``model_validator(mode="before")``
calls it so every ``SecretStr`` field ``x`` is filled from ``X_PARAM`` when that is set.
"""

from __future__ import annotations

import os
import re
from typing import Any, Final

from pydantic import BaseModel, SecretStr

PARAM_SUFFIX: Final = "_PARAM"
DEFAULT_MAX_AGE_S: Final = 300
_SSM_ARN: Final = re.compile(r"^arn:aws[a-z-]*:ssm:")


class SecretUnavailableError(RuntimeError):
    """The parameter / secret named by a ``*_PARAM`` variable could not be read (its value is never shown)."""


def _max_age() -> int:
    try:
        return max(0, int(os.environ.get("SECRETS_MAX_AGE_S", DEFAULT_MAX_AGE_S)))
    except ValueError:
        return DEFAULT_MAX_AGE_S


def is_ssm_name(reference: str) -> bool:
    """Whether ``reference`` names an SSM parameter (else: a Secrets Manager secret)."""
    return reference.startswith("/") or bool(_SSM_ARN.match(reference))


def fetch(reference: str, *, max_age: int | None = None) -> str:
    """The value of the SSM parameter or Secrets Manager secret ``reference`` (Powertools-cached)."""
    from aws_lambda_powertools.utilities import parameters  # imported on first use: cold start

    age = _max_age() if max_age is None else max_age
    try:
        if is_ssm_name(reference):
            value = parameters.get_parameter(reference, decrypt=True, max_age=age)
        else:
            value = parameters.get_secret(reference, max_age=age)
    except Exception as exc:  # GetParameterError, botocore errors …: name the reference, never a value
        raise SecretUnavailableError(f"could not read secret {reference!r} ({type(exc).__name__})") from None
    if isinstance(value, bytes):
        value = value.decode()
    return str(value)


def resolve_secret(env_name_of_value: str, env_name_of_param: str | None = None) -> SecretStr:
    """The secret named by ``$<env_name_of_param>`` if set, else ``$<env_name_of_value>`` (or empty).

    ``env_name_of_param`` defaults to ``<env_name_of_value>_PARAM``.
    """
    param_env = env_name_of_param or env_name_of_value + PARAM_SUFFIX
    reference = os.environ.get(param_env, "").strip()
    if reference:
        return SecretStr(fetch(reference))
    return SecretStr(os.environ.get(env_name_of_value, ""))


def secret_fields(model: type[BaseModel]) -> list[str]:
    """The names of ``model``'s ``SecretStr`` fields."""
    return [name for name, info in model.model_fields.items() if info.annotation is SecretStr]


def fill_secret_params(model: type[BaseModel], data: Any) -> Any:
    """For a ``mode="before"`` model validator: fill each ``SecretStr`` field whose ``<FIELD>_PARAM`` is set.

    Fields given explicitly (constructor keyword) are left alone only when no parameter is
    configured; in AWS the parameter wins over any stray plain variable.
    """
    if not isinstance(data, dict):
        return data
    filled = dict(data)
    for name in secret_fields(model):
        env = name.upper()
        if os.environ.get(env + PARAM_SUFFIX, "").strip():
            filled[name] = resolve_secret(env)
    return filled
