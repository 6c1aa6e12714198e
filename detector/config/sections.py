"""The typed shape shared by every configuration: sections that refuse unknown keys and check their values.

A model here has no defaults of its own: its YAML file (``configs/*.yaml``) fills it, so a value is written
once. Numbers given as text (``--set sampling.spacing_m=5``) are coerced; a wrong type or range is a
:class:`~pydantic.ValidationError` that :mod:`detector.config.loading` turns into one line naming the key.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

Positive = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Port = Annotated[int, Field(ge=0, le=65535)]


class KeyProblem(ValueError):
    """A check across keys that names the key at fault (a field's own checks are named by their place)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(problem)
        self.key = key


class Section(BaseModel):
    """A config section: every key known, every value checked, read-only once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


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
