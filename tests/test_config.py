from pathlib import Path

import pytest

from detector.config import load_config
from detector.errors import ConfigError, InputError


def test_defaults_load_with_their_types():
    cfg = load_config()
    assert cfg["sampling"]["spacing_m"] == 3.0
    assert cfg["drive"]["video_start"] == "auto"
    assert isinstance(cfg["simulate"]["fps"], int)


def test_partial_overlay_keeps_other_defaults(tmp_path: Path):
    overlay = tmp_path / "city.yaml"
    overlay.write_text("sampling:\n  spacing_m: 5\n")
    cfg = load_config(overlay)
    assert cfg["sampling"]["spacing_m"] == 5.0
    assert cfg["sampling"]["min_speed_mps"] == load_config()["sampling"]["min_speed_mps"]


def test_set_overrides_beat_the_file_and_are_coerced(tmp_path: Path):
    overlay = tmp_path / "city.yaml"
    overlay.write_text("sampling: {spacing_m: 5}\nrun: {progress: true}\n")
    cfg = load_config(overlay, ["sampling.spacing_m=7.5", "run.progress=false", "simulate.camera.pitch_deg=10"])
    assert cfg["sampling"]["spacing_m"] == 7.5
    assert cfg["run"]["progress"] is False
    assert cfg["simulate"]["camera"]["pitch_deg"] == 10
    assert cfg["simulate"]["camera"]["height_m"] == 1.4


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("sampling.spacing=3", "sampling.spacing"),
        ("sampling.spacing_m=far", "sampling.spacing_m"),
        ("sampling.spacing_m=-1", "sampling.spacing_m"),
        ("simulate.fps=29.5", "simulate.fps"),
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
    assert cfg["detect"]["conf"]["fallen_sign"] == 0.55
    assert cfg["detect"]["conf"]["pothole"] == load_config()["detect"]["conf"]["pothole"]
    assert load_config(overrides=["detect.conf=0.3"])["detect"]["conf"] == {"pothole": 0.3, "fallen_sign": 0.3}
    assert load_config(overrides=["tickets.auto_file=true"])["tickets"]["auto_file"] == {
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
