import math
from pathlib import Path

import pytest

from detector.config import SERVER, SIMULATOR, TRAINING, load_config, simulator_settings
from detector.errors import ConfigError, InputError


def test_defaults_load_with_their_types():
    cfg = load_config()
    assert cfg.sampling.spacing_m == 3.0
    assert cfg.drive.video_start == "auto"
    assert cfg.detect.conf["pothole"] == 0.25  # a per-class mapping, every class filled
    assert set(cfg.detect.conf) == {"pothole", "fallen_sign"}


def test_simulator_and_test_server_knobs_stay_out_of_the_production_defaults():
    cfg = load_config()
    assert not hasattr(cfg, "simulate")
    assert not hasattr(cfg.tickets, "server")
    with pytest.raises(ConfigError, match="'simulate'"):
        load_config(overrides=["simulate.fps=10"])
    assert isinstance(SIMULATOR.load().simulate.fps, int)
    assert SERVER.load(overrides=["server.port=8311"]).server.port == 8311


def test_partial_overlay_keeps_other_defaults(tmp_path: Path):
    overlay = tmp_path / "city.yaml"
    overlay.write_text("sampling:\n  spacing_m: 5\n")
    cfg = load_config(overlay)
    assert cfg.sampling.spacing_m == 5.0
    assert cfg.sampling.min_speed_mps == load_config().sampling.min_speed_mps


def test_set_overrides_beat_the_file_and_are_coerced(tmp_path: Path):
    overlay = tmp_path / "city.yaml"
    overlay.write_text("sampling: {spacing_m: 5}\nrun: {progress: true}\n")
    cfg = load_config(overlay, ["sampling.spacing_m=7.5", "run.progress=false"])
    assert cfg.sampling.spacing_m == 7.5
    assert cfg.run.progress is False
    simulate = SIMULATOR.load(overrides=["simulate.camera.pitch_deg=10"]).simulate
    assert simulate.camera.pitch_deg == 10
    assert simulate.camera.height_m == 1.4


def test_a_loaded_config_is_read_only_and_updated_by_copy():
    from pydantic import ValidationError

    from detector.config import PIPELINE

    cfg = load_config()
    with pytest.raises(ValidationError):
        cfg.sampling.spacing_m = 9.0
    moved = PIPELINE.updated(cfg, {"sampling.spacing_m": 9, "drive.id": "van-3"})
    assert (moved.sampling.spacing_m, moved.drive.id) == (9.0, "van-3")
    assert (cfg.sampling.spacing_m, cfg.drive.id) == (3.0, None)
    with pytest.raises(ConfigError, match=r"'sampling\.spacing_m'"):
        PIPELINE.updated(cfg, {"sampling.spacing_m": -1})


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("sampling.spacing=3", "sampling.spacing"),
        ("sampling.spacing_m=far", "sampling.spacing_m"),
        ("sampling.spacing_m=-1", "sampling.spacing_m"),
        ("drive.video_start=gps", "drive.video_start"),
        ("run.progress=maybe", "run.progress"),
        ("nosuchsection.x=1", "nosuchsection"),
        ("sampling=3", "sampling"),
    ],
)
def test_bad_values_name_the_key(override: str, names: str):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[override])
    assert f"'{names}'" in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_files_name_the_file(tmp_path: Path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("sampling: [unclosed\n")
    with pytest.raises(InputError, match=r"broken\.yaml: not valid YAML"):
        load_config(broken)
    with pytest.raises(InputError, match=r"missing\.yaml: cannot read config"):
        load_config(tmp_path / "missing.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(InputError, match="must be a mapping"):
        load_config(listing)


def test_set_without_equals_is_an_error():
    with pytest.raises(InputError, match=r"expected key\.sub=value"):
        load_config(overrides=["sampling.spacing_m"])


def test_per_class_values_take_a_mapping_or_one_value_for_every_class():
    cfg = load_config(overrides=["detect.conf.fallen_sign=0.55"])
    assert cfg.detect.conf["fallen_sign"] == 0.55
    assert cfg.detect.conf["pothole"] == load_config().detect.conf["pothole"]
    assert load_config(overrides=["detect.conf=0.3"]).detect.conf == {"pothole": 0.3, "fallen_sign": 0.3}
    assert load_config(overrides=["tickets.auto_file=true"]).tickets.auto_file == {
        "pothole": True,
        "fallen_sign": True,
    }


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("detect.conf.manhole=0.3", "detect.conf"),
        ("detect.conf.pothole=1.5", "detect.conf.pothole"),
        ("dedup.confirm_sightings.pothole=1.5", "dedup.confirm_sightings.pothole"),
        ("tickets.auto_file.fallen_sign=perhaps", "tickets.auto_file.fallen_sign"),
    ],
)
def test_a_bad_per_class_value_names_the_key(override: str, names: str):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[override])
    assert f"'{names}'" in str(err.value)


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("simulate.fps=29.5", "simulate.fps"),
        ("simulate.width=641", "simulate.width"),
        ("simulate.lens=orb", "simulate.lens"),
    ],
)
def test_the_simulator_config_is_checked_the_same_way(override: str, names: str):
    with pytest.raises(ConfigError) as err:
        SIMULATOR.load(overrides=[override])
    assert f"'{names}'" in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"'simulate\.distortion'"):
        simulator_settings({"lens": "fisheye", "distortion": [0.1, 0.2]})


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("data.sources.dnit={path: potholes/dnit, split: random}", "data.sources.dnit.split"),
        ("data.holdout=nowhere", "data.holdout"),
        ("data.repeat.nowhere=2", "data.repeat.nowhere"),
        ("data.repeat.dnit=0", "data.repeat.dnit"),
        ("composite.pole_p=2", "composite.pole_p"),
        ("train.epochs=3", "train.epochs"),
    ],
)
def test_the_training_config_is_checked_the_same_way(override: str, names: str):
    with pytest.raises(ConfigError) as err:
        TRAINING.load(overrides=[override])
    assert f"'{names}'" in str(err.value)
    assert "\n" not in str(err.value)


def test_every_shipped_training_overlay_loads():
    from detector.config import TRAIN_CONFIG

    overlays = [*sorted(TRAIN_CONFIG.parent.glob("finetune-*.yaml")), TRAIN_CONFIG.parent / "train-gpu.yaml"]
    assert len(overlays) >= 4
    names = {TRAINING.load(path).name for path in overlays}
    assert len(names) == len(overlays)  # each writes its own run folder


def numeric_keys(data: dict, prefix: str = "") -> list[tuple[str, object]]:
    """(dotted key, value) of every number in a config dump; a list holding numbers is one key (its value the list)."""
    found = []
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            found += numeric_keys(v, key + ".")
        elif isinstance(v, list | tuple) and any(isinstance(x, int | float) and not isinstance(x, bool) for x in v):
            found.append((key, list(v)))
        elif isinstance(v, int | float) and not isinstance(v, bool):
            found.append((key, v))
    return found


def with_bad_number(value: object, bad: float) -> object:
    """``value`` with its (first) number replaced by ``bad``."""
    if isinstance(value, list):
        i = next(i for i, x in enumerate(value) if isinstance(x, int | float) and not isinstance(x, bool))
        return [*value[:i], bad, *value[i + 1 :]]
    return bad


@pytest.mark.parametrize("kind_name", ["PIPELINE", "TRAINING", "SIMULATOR", "SERVER"])
def test_every_numeric_setting_refuses_what_is_not_a_finite_number(kind_name: str, tmp_path: Path):
    """``--set sampling.spacing_m=.inf`` once sampled one frame and recorded the drive as done."""
    import yaml

    import detector.config as config

    kind = getattr(config, kind_name)
    defaults = kind.load()
    keys = numeric_keys(defaults.model_dump(mode="python"))
    assert len(keys) >= 4
    overlay = tmp_path / "overlay.yaml"

    def assert_names(error: ConfigError, key: str) -> None:
        parent, _, last = key.rpartition(".")
        text = str(error)
        assert (f"'{key}" in text or f"'{parent}': {last}" in text) and "\n" not in text, (key, text)

    for key, value in keys:
        for bad in (math.inf, -math.inf, math.nan, 1e13):
            with pytest.raises(ConfigError) as err:
                kind.updated(defaults, {key: with_bad_number(value, bad)}, "--set")
            assert_names(err.value, key)
        nested: object = with_bad_number(value, -math.inf)
        for part in reversed(key.split(".")):
            nested = {part: nested}
        overlay.write_text(yaml.safe_dump(nested))
        with pytest.raises(ConfigError) as err:
            kind.load(overlay)
        assert_names(err.value, key)
        for raw in ("1e309", "nan"):  # YAML reads these as text, which a number field reads as a float
            with pytest.raises(ConfigError) as err:
                kind.load(overrides=[f"{key}={raw}"])
            assert_names(err.value, key)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"a: " + b"[" * 5000, "nested deeper than 32 levels"),
        (b"a: " + b"{b: " * 5000, "nested deeper than 32 levels"),
        (b"train:\n  args:\n    x: " + b"[" * 40 + b"1" + b"]" * 40 + b"\n", "nested deeper than 32 levels"),
        (bytes(range(128, 256)), "not a UTF-8 text file"),
    ],
    ids=["5000-deep-list", "5000-deep-map", "40-deep", "binary"],
)
def test_a_config_file_too_deep_or_not_text_is_one_line(tmp_path: Path, content: bytes, problem: str):
    """A 5,000-deep YAML raised RecursionError, a binary one UnicodeDecodeError: tracebacks."""
    import subprocess
    import sys

    from conftest import PROJECT

    bad = tmp_path / "bad.yaml"
    bad.write_bytes(content)
    for argv in (["run", "x.mp4", "--config", str(bad)], ["train", "--config", str(bad)]):
        result = subprocess.run([sys.executable, "-m", "detector", *argv], capture_output=True, text=True, cwd=PROJECT)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert "bad.yaml" in line and problem in line, line


@pytest.mark.parametrize("value", ["[" * 5000, "[" * 40 + "1" + "]" * 40])
def test_a_set_value_nested_too_deep_is_one_line(value: str):
    with pytest.raises(InputError, match=r"^--set train\.args\.x: nested deeper than 32 levels$"):
        TRAINING.load(overrides=[f"train.args.x={value}"])


# --- property: any --set or YAML overlay loads or is refused in one line naming where -------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

PROPERTY = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KNOWN_KEYS = [key for key, _ in numeric_keys(load_config().model_dump(mode="python"))] + [
    "drive.id", "drive.video_start", "detect.classes", "detect.roi.top", "tickets.mode", "tickets.media_url",
    "tickets.attributes", "tickets.timezone", "review.trusted_proxies", "dedup.hold_near.classes", "sampling",
]  # fmt: skip
yaml_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10),
    st.sampled_from([1e309, -1e309, 10**30, -(10**30), "1e309", "nan", ".inf", "-.inf", "0x10", "1_000", "~"]),
)  # fmt: skip
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)
keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=15))


def loads_or_refuses(attempt) -> None:
    try:
        attempt()
    except InputError as e:  # ConfigError included
        assert "\n" not in str(e), str(e)


@PROPERTY
@given(
    key=keys, value=st.one_of(yaml_values.map(lambda v: __import__("yaml").safe_dump(v).strip()), st.text(max_size=20))
)
def test_any_set_override_loads_or_is_refused_in_one_line(key: str, value: str) -> None:
    loads_or_refuses(lambda: load_config(overrides=[f"{key}={value}"]))


@PROPERTY
@given(layers=st.dictionaries(keys, yaml_values, max_size=4))
def test_any_yaml_overlay_loads_or_is_refused_in_one_line(tmp_path_factory, layers: dict) -> None:
    import yaml

    data: dict = {}
    for key, value in layers.items():
        *parents, last = key.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
        node[last] = value
    path = tmp_path_factory.mktemp("cfg") / "overlay.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    loads_or_refuses(lambda: load_config(path))


@pytest.mark.parametrize(
    ("typo", "refused", "meant"),
    [
        ("sampling.spacin_m", "sampling.spacin_m", "sampling.spacing_m"),
        ("detect.conff", "detect.conff", "detect.conf"),
        ("smapling.spacing_m", "smapling", "sampling"),
    ],
)
def test_an_unknown_key_suggests_the_known_one_it_resembles(tmp_path: Path, typo: str, refused: str, meant: str):
    """A misspelt key is refused with the key it most likely meant, from --set and from a YAML file alike."""
    with pytest.raises(ConfigError, match=rf"'{refused}': unknown key, did you mean '{meant}'\?"):
        load_config(overrides=[f"{typo}=1"])
    overlay = tmp_path / "city.yaml"
    section, key = typo.split(".")
    overlay.write_text(f"{section}:\n  {key}: 1\n")
    with pytest.raises(ConfigError, match=rf"city\.yaml: config key '{refused}': unknown key, did you mean '{meant}'"):
        load_config(overlay)
    with pytest.raises(ConfigError, match=r"unknown key \(known here"):  # nothing like it: no guess
        load_config(overrides=["sampling.qqqq=1"])
