"""Loading a configuration: its YAML defaults, then a partial YAML overlay, then ``--set key.sub=value`` overrides.

Each layer is merged over the last and the result validated by the typed model, so a typo or a wrong value
is a one-line :class:`~detector.errors.ConfigError` naming the key and the layer it came from.

>>> cfg = load_config(overrides=["sampling.spacing_m=5"])
>>> cfg.sampling.spacing_m
5.0
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from detector.config.pipeline import Config
from detector.config.sections import KeyProblem, marked_keys
from detector.config.tools import ServerFile, SimulateConfig, SimulatorFile
from detector.config.training import TrainingConfig
from detector.errors import ConfigError, InputError
from detector.project import PROJECT

CONFIG_DIR = PROJECT / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.yaml"
TRAIN_CONFIG = CONFIG_DIR / "train.yaml"
SIMULATOR_CONFIG = CONFIG_DIR / "simulate.yaml"
SERVER_CONFIG = CONFIG_DIR / "serve-106.yaml"

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ConfigKind(Generic[M]):
    """A kind of configuration: the YAML file of its defaults and the model it fills."""

    defaults: Path
    model: type[M]

    def load(self, config_file: str | Path | None = None, overrides: list[str] | None = None) -> M:
        """The defaults, then ``config_file`` (partial), then each ``key.sub=value`` override."""
        data = _read_yaml(self.defaults)
        config = self._validated(data, self.defaults)
        if config_file is not None:
            _merge(data, _read_yaml(Path(config_file)), config_file, self.model)
            config = self._validated(data, config_file)
        return self.overridden(config, overrides or [])

    def parse(self, path: Path) -> M:
        """A whole configuration written out before (a run's ``recipe.yaml``), not overlaid on the defaults."""
        return self._validated(_read_yaml(path), path)

    def overridden(self, config: M, overrides: list[str]) -> M:
        """``config`` with each ``key.sub=value`` override set."""
        for text in overrides:
            keys, value = _parse_override(text)
            config = self.updated(config, {".".join(keys): value}, "--set")
        return config

    def updated(self, config: M, values: dict[str, Any], source: str = "the caller") -> M:
        """``config`` with the dotted keys of ``values`` set, checked as a layer of its own."""
        data = config.model_dump(mode="python")
        for key, value in values.items():
            nested: Any = value
            for k in reversed(key.split(".")):
                nested = {k: nested}
            _merge(data, nested, source, self.model)
        return self._validated(data, source)

    def _validated(self, data: dict[str, Any], source: str | Path) -> M:
        try:
            return self.model.model_validate(data)
        except ValidationError as e:
            raise _config_error(e, source) from None


PIPELINE = ConfigKind(DEFAULT_CONFIG, Config)
TRAINING = ConfigKind(TRAIN_CONFIG, TrainingConfig)
SIMULATOR = ConfigKind(SIMULATOR_CONFIG, SimulatorFile)
SERVER = ConfigKind(SERVER_CONFIG, ServerFile)


def load_config(config_file: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """The pipeline's configuration (``configs/default.yaml``), overlaid and overridden."""
    return PIPELINE.load(config_file, overrides)


def simulator_settings(settings: dict[str, Any] | None = None) -> SimulateConfig:
    """The simulator's defaults (``configs/simulate.yaml``) with ``settings`` (keys of its section) set.

    >>> simulator_settings({"fps": 10, "camera.pitch_deg": 9}).camera.pitch_deg
    9.0
    """
    defaults = SIMULATOR.load()
    values = {f"simulate.{k}": v for k, v in (settings or {}).items()}
    return SIMULATOR.updated(defaults, values, "simulator settings").simulate


def _config_error(error: ValidationError, source: str | Path) -> ConfigError:
    first = error.errors()[0]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, KeyProblem):
        return ConfigError(cause.key, str(cause), source)
    # A union's branches add their type to the place (roi.top: a fraction or "horizon"): keep the field names.
    key = ".".join(str(part) for part in first["loc"] if not _branch_name(str(part)))
    if first["type"] == "extra_forbidden":
        return ConfigError(key, "unknown key", source)
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] != "value_error" and "got" not in message:
        message += f", got {first['input']!r}"
    return ConfigError(key or "(top level)", message, source)


def _branch_name(part: str) -> bool:
    """A union branch's type that pydantic puts in an error's place (``constrained-float``, ``literal['x']``),
    not a key: keys may hold a hyphen too (``rdd2022-india``)."""
    return "[" in part or part in {"float", "int", "str", "bool"} or part.startswith(_BRANCH_PREFIXES)


_BRANCH_PREFIXES = ("constrained-", "function-", "lax-or-strict", "json-or-python", "nullable")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(path, f"cannot read config ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise InputError(path, f"not a UTF-8 text file (byte {e.start})") from None
    try:
        data = _parse_yaml(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise InputError(path, f"not valid YAML{where}") from None
    except ValueError as e:
        raise InputError(path, str(e)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(path, "a config file must be a mapping of sections")
    return copy.deepcopy(data)


MAX_DEPTH = 32  # no configuration nests deeper; a 5,000-deep file exhausted the parser's recursion


def _parse_yaml(text: str) -> Any:
    """The YAML ``text`` as Python values: yaml.YAMLError if it is no YAML, ValueError if it nests too deep."""
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    if _depth(data) > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    return data


def _depth(value: Any, level: int = 0) -> int:
    """How deeply ``value``'s mappings and lists nest (stops counting past :data:`MAX_DEPTH`)."""
    if level > MAX_DEPTH or not isinstance(value, dict | list):
        return level
    items = value.values() if isinstance(value, dict) else value
    return max((_depth(item, level + 1) for item in items), default=level + 1)


def _merge(
    base: dict[str, Any], overlay: dict[str, Any], source: str | Path, model: type[BaseModel], prefix: str = "",
    new_classes: frozenset[str] | None = None,
) -> None:  # fmt: skip
    """Merge ``overlay`` into ``base`` in place: sections key by key, per-class values and free-form mappings
    over their defaults, anything else replaced. Unknown keys are refused here, where the known ones are listed.
    A per-class value may name the classes the overlay's own ``detect.classes`` adds (a model with a new class)."""
    per_class, free_form = set(marked_keys(model, "per_class")), set(marked_keys(model, "open"))
    if new_classes is None:
        named = overlay.get("detect", {}).get("classes") if isinstance(overlay.get("detect"), dict) else None
        new_classes = frozenset(map(str, named)) if isinstance(named, list) else frozenset()
    for k, v in overlay.items():
        key = f"{prefix}{k}"
        if k not in base:
            raise ConfigError(key, _unknown_key(str(k), base, prefix), source)
        if key in per_class:
            base[k] = _per_class(key, v, base[k], source, new_classes)
        elif key in free_form:
            if not isinstance(v, dict):
                raise ConfigError(key, f"expected a mapping, got {v!r}", source)
            base[k] = _merged_mapping(base[k], v)
        elif isinstance(base[k], dict):
            if not isinstance(v, dict):
                raise ConfigError(key, f"expected a section (mapping), got {v!r}", source)
            _merge(base[k], v, source, model, key + ".", new_classes)
        else:
            base[k] = v


def _merged_mapping(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """A free-form mapping laid over its default: an entry that is a mapping in both is merged too (one training
    source's ``block_size`` set without repeating its ``path``), anything else replaced.

    >>> _merged_mapping({"in": {"path": "a", "split": "groups"}}, {"in": {"split": "blocks"}, "cz": {"path": "b"}})
    {'in': {'path': 'a', 'split': 'blocks'}, 'cz': {'path': 'b'}}
    """
    merged = dict(base)
    for k, v in overlay.items():
        old = merged.get(k)
        merged[k] = _merged_mapping(old, v) if isinstance(old, dict) and isinstance(v, dict) else v
    return merged


def _unknown_key(name: str, known: dict[str, Any], prefix: str = "") -> str:
    """Why ``name`` is refused: the known key it most resembles, as Ultralytics suggests, and the known keys.

    >>> _unknown_key("spacin", {"spacing_m": 3, "focus_m": 10}, "sampling.")
    "unknown key, did you mean 'sampling.spacing_m'? (known here: focus_m, spacing_m)"
    >>> _unknown_key("zzz", {"spacing_m": 3})
    'unknown key (known here: spacing_m)'
    """
    names = sorted(str(k) for k in known)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f", did you mean '{prefix}{close[0]}'?" if close else ""
    return f"unknown key{hint} (known here: {', '.join(names)})"


def _per_class(
    key: str, value: Any, default: dict[str, Any], source: str | Path, new_classes: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """A per-class value: a mapping over (some of) the classes of ``default`` and ``new_classes``, or one value for
    all of them."""
    if not isinstance(value, dict):
        return dict.fromkeys(default, value)
    unknown = sorted(set(value) - set(default) - new_classes)
    if unknown:
        raise ConfigError(key, f"unknown class {', '.join(map(str, unknown))} (classes: {', '.join(default)})", source)
    return {**default, **value}


def _parse_override(text: str) -> tuple[list[str], Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise InputError(None, f"--set {text!r}: expected key.sub=value")
    try:
        value = _parse_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw  # not YAML: the text itself
    except ValueError as e:
        raise InputError(None, f"--set {key.strip()}: {e}") from None
    return key.strip().split("."), value
