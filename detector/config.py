"""Configuration: defaults in ``configs/default.yaml``, a partial YAML overlay, ``--set`` overrides.

Every value is checked against the type of its default, so a typo or a wrong type is a one-line
error naming the key rather than a traceback deep inside a stage.

>>> cfg = load_config(overrides=["sampling.spacing_m=5"])
>>> cfg["sampling"]["spacing_m"]
5.0
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from detector.errors import ConfigError, InputError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.yaml"
TRAIN_CONFIG = CONFIG_DIR / "train.yaml"

# Keys whose values are free-form mappings (not checked key by key).
OPEN_SECTIONS = frozenset(
    {
        "data.repeat",
        "overlay.count",
        "overlay.backgrounds",
        "simulate.origin",
        "simulate.camera",
        "detect.roi",
        "dedup.radius_m",
        "tickets.service_codes",
        "tickets.attributes",
    }
)
# Values given per hazard class: a mapping class -> value, or one value for every class (``--set detect.conf=0.3``).
PER_CLASS = frozenset({"detect.conf", "dedup.confirm_sightings", "dedup.confirm_evidence", "tickets.auto_file"})
CHOICES = {
    "drive.video_start": {"auto", "container", "track"},
    "detect.backend": {"onnx", "torch"},
}
POSITIVE = {
    "detect.imgsz",
    "detect.tiles",
    "gps.max_gap_s",
    "localize.max_range_m",
    "localize.gps_sigma_m",
    "dedup.confirm_sightings",
    "dedup.miss_limit",
    "dedup.hold_near.radius_m",
    "store.lock_timeout_s",
    "gps.max_speed_mps",
    "sampling.spacing_m",
    "sampling.focus_spacing_m",
    "sampling.sharpness_step",
    "simulate.fps",
}
FRACTIONS = {"detect.conf", "detect.iou", "sampling.focus_conf", "dedup.confirm_evidence"}
NON_NEGATIVE = {
    "sampling.min_speed_mps",
    "sampling.min_seek_gap_s",
    "sampling.decoder_threads",
    "sampling.prefetch_frames",
    "sampling.focus_m",
    "detect.roi_above_horizon_deg",
    "simulate.duration_s",
    "simulate.gps_noise_m",
}


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(path, f"cannot read config ({e.strerror or e})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise InputError(path, f"not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(path, "a config file must be a mapping of sections")
    return data


def _coerce(key: str, value: Any, default: Any, source: str | Path | None) -> Any:
    """Give ``value`` the type of ``default``; ``None`` defaults accept anything."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false", "yes", "no", "on", "off", "1", "0"}:
            return value.lower() in {"true", "yes", "on", "1"}
        raise ConfigError(key, f"expected true or false, got {value!r}", source)
    if isinstance(default, int | float):
        if isinstance(value, bool):
            raise ConfigError(key, f"expected a number, got {value!r}", source)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(key, f"expected a number, got {value!r}", source) from None
        if isinstance(default, int) and not isinstance(default, bool):
            if number != int(number):
                raise ConfigError(key, f"expected a whole number, got {value!r}", source)
            return int(number)
        return number
    if isinstance(default, str):
        if isinstance(value, dict | list):
            raise ConfigError(key, f"expected text, got {value!r}", source)
        return str(value)
    if isinstance(default, list):
        if not isinstance(value, list):
            raise ConfigError(key, f"expected a list, got {value!r}", source)
        return value
    return value


def _per_class(key: str, value: Any, default: dict[str, Any], source: str | Path | None) -> dict[str, Any]:
    """A per-class value: a mapping over (some of) the classes of ``default``, or one value for all of them."""
    if not isinstance(value, dict):
        return {c: _coerce(key, value, d, source) for c, d in default.items()}
    unknown = sorted(set(value) - set(default))
    if unknown:
        raise ConfigError(key, f"unknown class {', '.join(map(str, unknown))} (classes: {', '.join(default)})", source)
    return {**default, **{c: _coerce(f"{key}.{c}", v, default[c], source) for c, v in value.items()}}


def _merge(base: dict[str, Any], overlay: dict[str, Any], source: str | Path | None, prefix: str = "") -> None:
    for k, v in overlay.items():
        key = f"{prefix}{k}"
        if k not in base:
            raise ConfigError(key, f"unknown key (known here: {', '.join(sorted(base))})", source)
        if key in PER_CLASS:
            base[k] = _per_class(key, v, base[k], source)
        elif isinstance(base[k], dict) and key not in OPEN_SECTIONS:
            if not isinstance(v, dict):
                raise ConfigError(key, f"expected a section (mapping), got {v!r}", source)
            _merge(base[k], v, source, key + ".")
        elif key in OPEN_SECTIONS:
            if not isinstance(v, dict):
                raise ConfigError(key, f"expected a mapping, got {v!r}", source)
            base[k] = {**base[k], **v}
        else:
            base[k] = _coerce(key, v, base[k], source)


def _parse_override(text: str) -> tuple[list[str], Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise InputError(None, f"--set {text!r}: expected key.sub=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def _value(cfg: dict[str, Any], key: str) -> Any:
    for name in key.split("."):
        cfg = cfg[name]
    return cfg


def _validate(cfg: dict[str, Any]) -> None:
    for key, allowed in CHOICES.items():
        value = _value(cfg, key)
        if value not in allowed:
            raise ConfigError(key, f"must be one of {', '.join(sorted(allowed))}, got {value!r}")
    for keys, ok, words in (
        (POSITIVE, lambda v: v > 0, "positive"),
        (NON_NEGATIVE, lambda v: v >= 0, "0 or more"),
        (FRACTIONS, lambda v: 0 <= v <= 1, "between 0 and 1"),
    ):
        for key in keys:
            value = _value(cfg, key)
            for name, v in value.items() if isinstance(value, dict) else [(None, value)]:
                if not ok(v):
                    raise ConfigError(f"{key}.{name}" if name else key, f"must be {words}, got {v!r}")


def _validate_classes(cfg: dict[str, Any]) -> None:
    """Every per-class value names exactly the detector's classes."""
    classes = list(cfg["detect"]["classes"])
    for key in sorted(PER_CLASS):
        value = _value(cfg, key)
        if sorted(value) != sorted(classes):
            raise ConfigError(key, f"needs a value for each class of detect.classes ({', '.join(classes)})")


def _validate_roi(roi: dict[str, Any]) -> None:
    sides = {"top": 0.0, "bottom": 1.0, "left": 0.0, "right": 1.0}
    if set(roi) != set(sides):
        raise ConfigError("detect.roi", f"needs exactly the keys top, bottom, left, right; got {sorted(roi)}")
    # top may also be "horizon": resolved from the camera profile (detector.inference.detect_section)
    for side in sides:
        if not (side == "top" and roi[side] == "horizon"):
            roi[side] = _coerce(f"detect.roi.{side}", roi[side], 0.0, None)
    top = 0.0 if roi["top"] == "horizon" else roi["top"]
    if not (0 <= top < roi["bottom"] <= 1 and 0 <= roi["left"] < roi["right"] <= 1):
        raise ConfigError(
            "detect.roi", f"fractions must satisfy 0 <= top < bottom <= 1 and 0 <= left < right <= 1: {roi}"
        )


def load_config(
    config_file: str | Path | None = None, overrides: list[str] | None = None, defaults: Path = DEFAULT_CONFIG
) -> dict[str, Any]:
    """``defaults``, then ``config_file`` (partial), then each ``key.sub=value`` override.

    ``detector train`` uses ``configs/train.yaml`` as its defaults; the value checks below are
    those of the pipeline's own ``default.yaml``.
    """
    cfg = copy.deepcopy(_read_yaml(defaults))
    if config_file is not None:
        _merge(cfg, _read_yaml(Path(config_file)), config_file)
    for text in overrides or []:
        keys, value = _parse_override(text)
        nested: Any = value
        for k in reversed(keys):
            nested = {k: nested}
        _merge(cfg, nested, "--set")
    if defaults == DEFAULT_CONFIG:
        _validate(cfg)
        _validate_classes(cfg)
        _validate_roi(cfg["detect"]["roi"])
    return cfg
