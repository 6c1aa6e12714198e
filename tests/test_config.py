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
