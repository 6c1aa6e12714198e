"""The typed shape shared by every configuration: sections that refuse unknown keys and check their values.

A model here has no defaults of its own: its YAML file (``configs/*.yaml``) fills it, so a value is written
once. Numbers given as text (``--set sampling.spacing_m=5``) are coerced; a wrong type or range is a
:class:`~pydantic.ValidationError` that :mod:`detector.config.loading` turns into one line naming the key.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

Positive = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Port = Annotated[int, Field(ge=0, le=65535)]
Threads = Annotated[int, Field(ge=0, le=1024)]  # 0: let the library choose
LARGEST = 1e12  # no setting is larger than this (seconds, metres, counts): a bigger one is a typo or an attack


class KeyProblem(ValueError):
    """A check across keys that names the key at fault (a field's own checks are named by their place)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(problem)
        self.key = key


class Section(BaseModel):
    """A config section: every key known, every value checked, read-only once loaded.

    Every number in it, however deeply nested (a per-class mapping, a free-form one, a list), is finite and
    at most :data:`LARGEST` in size: ``inf``, ``nan`` or ``1e309`` would pass a ``> 0`` check and then sample
    one frame, or none, and record the drive as done."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _finite_numbers(cls, value: Any) -> Any:
        check_number(value)
        return value


def check_number(value: Any, where: str = "") -> None:
    """ValueError if ``value`` is, or holds, a number that is not finite or larger than :data:`LARGEST`;
    the message names where in ``value`` it is.

    >>> check_number({"a": [1, 2.5]}), check_number("inf")
    (None, None)
    >>> check_number({"a": [1, float("nan")]})
    Traceback (most recent call last):
    ValueError: a.1: expected a finite number of at most 1e+12 in size, got nan
    """
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        if not (math.isfinite(value) and abs(value) <= LARGEST):
            at = f"{where}: " if where else ""
            raise ValueError(f"{at}expected a finite number of at most {LARGEST:g} in size, got {value!r}")
    elif isinstance(value, dict | list | tuple):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for k, item in items:
            check_number(item, f"{where}.{k}" if where else str(k))


def marked_keys(model: type[BaseModel], marker: str, prefix: str = "") -> list[str]:
    """Dotted keys of the fields marked ``marker``: ``per_class`` (a mapping class -> value, or one value for
    all) or ``open`` (a free-form mapping, merged key by key over the defaults, not checked against them)."""
    keys = []
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if extra.get(marker):
            keys.append(prefix + name)
        elif isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            keys += marked_keys(info.annotation, marker, f"{prefix}{name}.")
    return keys


def per_class(**kwargs: Any) -> Any:
    """A field given per hazard class."""
    return Field(json_schema_extra={"per_class": True}, **kwargs)


def open_mapping(**kwargs: Any) -> Any:
    """A free-form mapping field."""
    return Field(json_schema_extra={"open": True}, **kwargs)
