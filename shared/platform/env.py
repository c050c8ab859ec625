"""Settings models read from the process environment: one environment variable per field.

Rules every settings class in ``shared/`` follows (they subclass :class:`EnvSettings`):

- A field's variable is its alias if it has one (``AWS_REGION``), otherwise its name upper-cased
  (``table_name`` → ``TABLE_NAME``). Variable names match case-insensitively.
- A keyword given to the constructor wins over the environment; variables no field names are
  ignored; an instance is frozen.
- Values are validated by pydantic in lax mode, as pydantic-settings did: ``"5"`` becomes ``5``,
  ``"true"`` becomes ``True``, a bound such as ``gt=0`` refuses a bad value with the variable named.
- Only scalar fields (str, numbers, bool, ``SecretStr``, optional scalars). A list, dict or model field
  would need JSON parsing of its variable: such a class is refused when it is defined.

Why not pydantic-settings, which did exactly this until issue 13's cold-start budget: importing it
and building its first model cost 17-22 ms in every function's Lambda-like cold import (``python
-X importtime``, ``bench/README.md``), for sources this project never uses (``.env`` files via
python-dotenv, CLI arguments, secret directories, nested JSON). What it did for us is the dozen
lines below; the validation itself stays pydantic's.
"""

from __future__ import annotations

import os
import types
from typing import Any, ClassVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, SecretStr

_SCALARS: tuple[type, ...] = (str, int, float, bool, SecretStr, type(None))


class EnvSettings(BaseModel):
    """A frozen pydantic model whose fields default to the environment (see the module docstring)."""

    model_config: ClassVar[ConfigDict] = ConfigDict(extra="ignore", frozen=True)

    def __init__(self, **values: Any) -> None:
        super().__init__(**environment_values(type(self), values))

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for name, field in cls.model_fields.items():
            if not _scalar(field.annotation):
                raise TypeError(
                    f"{cls.__name__}.{name}: EnvSettings reads one variable per field as a scalar; "
                    f"{field.annotation!r} would need JSON parsing of the variable"
                )


def environment_values(cls: type[BaseModel], explicit: dict[str, Any] | None = None) -> dict[str, Any]:
    """The input ``cls`` validates: each field's variable from ``os.environ``, then ``explicit`` over it.

    Keys are what pydantic validates by (the alias where there is one), so a keyword given by field
    name and one given by alias both override the variable.
    """
    environ = {key.upper(): value for key, value in os.environ.items()}
    out: dict[str, Any] = {}
    for name, field in cls.model_fields.items():
        key = field.alias or name
        variable = key.upper()
        if variable in environ:
            out[key] = environ[variable]
        if explicit:
            for given in {name, key}:
                if given in explicit:
                    out[key] = explicit[given]
    return out


def _scalar(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        return all(_scalar(arg) for arg in get_args(annotation))
    return isinstance(annotation, type) and issubclass(annotation, _SCALARS)
