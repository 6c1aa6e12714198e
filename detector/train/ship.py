"""``detector ship``: a trained candidate against the shipped model on every validation set; shipped only if better
on the real sets.

Each model is scored on every validation set of a built dataset (:mod:`detector.train.operating`), its per-class
thresholds are chosen by the written rule, and the two are compared where it matters, at their own thresholds:

* **pothole**: recall on the dashcam and survey-vehicle sets (a detection's centre in a labelled box). The
  candidate must find more on the two together and lose no more than :data:`TOLERANCE` on either;
* **fallen_sign**: the rule's false-alarm cap holds by construction (a threshold is found, or the candidate
  fails); recall on the sign composites may fall by no more than :data:`TOLERANCE`, and AP50 there stays at least
  :data:`SIGN_AP_FLOOR` (or the shipped model's, if that is lower).

A candidate that passes replaces ``models/hazards.pt`` and ``models/hazards.onnx``, and its thresholds replace
``detect.conf`` in ``configs/default.yaml``. ``--dry-run`` compares only.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from detector.config import PIPELINE, Config
from detector.errors import InputError
from detector.train.operating import ThresholdRule, choose_thresholds, operating_point, score_set

REAL = ("rdd2022-india", "dnit", "chitholian", "chitholian-test")
VEHICLE = ("rdd2022-india", "dnit")
STAMPED = ("overlay",)
TOLERANCE = 0.02
SIGN_AP_FLOOR = 0.85


@dataclass(frozen=True)
class ModelScore:
    """One model's chosen thresholds and the figures the decision reads, at those thresholds."""

    model: Path
    thresholds: dict[str, float | None]
    pothole_recall: dict[str, float]  # set -> recall at the pothole threshold
    pothole_precision: dict[str, float]
    false_signs_per_100: dict[str, float]  # "real" (pooled) and "stamped", whole frame
    sign_recall: float  # composites, at the sign threshold
    sign_ap50: float | None  # composites (Ultralytics), when measured


def score_model(model: Path, dataset: Path, cfg: Config, ap50: bool = True) -> ModelScore:
    """Score ``model`` (a ``.pt`` with its ``.onnx`` beside it) on the validation sets of ``dataset``."""
    from detector.pipeline.inference import detect_section, load_detector

    onnx = model.with_suffix(".onnx")
    if not onnx.is_file():
        raise InputError(onnx, "the candidate's ONNX export is missing (detector train writes it beside best.pt)")
    detect = detect_section(PIPELINE.updated(cfg, {"detect.model": str(onnx), "detect.backend": "onnx"}))
    whole = load_detector(detect, use_roi=False, conf=0.05)
    road = load_detector(detect, conf=0.05)
    val_yamls = json.loads((dataset / "manifest.json").read_text())["val_yamls"]
    names = [n for n in (*REAL, *STAMPED, "composite") if n in val_yamls]
    sets = {n: score_set(Path(val_yamls[n]), whole, road, desc=f"{model.parent.parent.name or model.stem}: {n}")
            for n in names}  # fmt: skip
    classes = list(detect.classes)
    chosen = choose_thresholds(sets, classes, list(REAL), list(STAMPED), ThresholdRule())
    pothole, sign = classes.index("pothole"), classes.index("fallen_sign")
    t_pot, t_sign = chosen["pothole"], chosen["fallen_sign"]
    recall, precision, false = {}, {}, {}
    if t_pot is not None:
        for name in VEHICLE:
            point = operating_point(sets[name], pothole, t_pot)
            recall[name], precision[name] = point.recall, point.precision
    if t_sign is not None:
        real = [im for n in REAL if n in sets for im in sets[n]]
        false["real"] = operating_point(real, sign, t_sign).false_per_100_whole
        if "overlay" in sets:
            false["stamped"] = operating_point(sets["overlay"], sign, t_sign).false_per_100_whole
    sign_recall = operating_point(sets["composite"], sign, t_sign).recall if t_sign is not None else 0.0
    ap = None
    if ap50 and "composite" in val_yamls:
        from detector.train.evaluate import evaluate

        ap = evaluate(model, Path(val_yamls["composite"]))["classes"].get("fallen_sign", {}).get("mAP50")
    return ModelScore(model, chosen, recall, precision, false, sign_recall, ap)


def verdict(candidate: ModelScore, shipped: ModelScore) -> tuple[bool, list[str]]:
    """Is ``candidate`` better on the real sets? With the reasons, one line each."""
    reasons = []
    if None in candidate.thresholds.values():
        missing = [c for c, t in candidate.thresholds.items() if t is None]
        return False, [f"no threshold meets the rule for {', '.join(missing)}"]
    ok = True
    gained = sum(candidate.pothole_recall.values()) - sum(shipped.pothole_recall.get(n, 0.0) for n in VEHICLE)
    for name in VEHICLE:
        c, s = candidate.pothole_recall.get(name, 0.0), shipped.pothole_recall.get(name, 0.0)
        if c < s - TOLERANCE:
            ok = False
            reasons.append(f"pothole recall on {name} falls from {s:.2f} to {c:.2f}")
    if gained <= 0:
        ok = False
        reasons.append(f"finds no more potholes on the vehicle sets ({gained:+.2f} recall together)")
    if candidate.sign_recall < shipped.sign_recall - TOLERANCE:
        ok = False
        reasons.append(f"fallen_sign recall on composites falls from {shipped.sign_recall:.2f} to "
                       f"{candidate.sign_recall:.2f}")  # fmt: skip
    if candidate.sign_ap50 is not None:
        floor = min(SIGN_AP_FLOOR, shipped.sign_ap50 or SIGN_AP_FLOOR)
        if candidate.sign_ap50 < floor:
            ok = False
            reasons.append(f"fallen_sign AP50 on composites {candidate.sign_ap50:.3f} is under {floor:.3f}")
    if ok:
        reasons.append(f"finds {gained:+.2f} more of the vehicle sets' potholes (recall, together) at its thresholds")
    return ok, reasons


def table(scores: list[ModelScore]) -> str:
    """The comparison, one column per model."""
    rows = [("thresholds", lambda s: ", ".join(f"{c} {t}" for c, t in s.thresholds.items()))]
    for name in VEHICLE:
        rows.append(
            (f"pothole R / P, {name}", lambda s, n=name: _pair(s.pothole_recall.get(n), s.pothole_precision.get(n)))
        )
    rows.append(
        (
            "false signs /100, real / stamped",
            lambda s: _pair(s.false_signs_per_100.get("real"), s.false_signs_per_100.get("stamped"), 1),
        )
    )
    rows.append(("fallen_sign R / AP50, composites", lambda s: _pair(s.sign_recall, s.sign_ap50, 3)))
    head = f"{'':34}" + "".join(f" {s.model!s:>34}" for s in scores)
    return "\n".join([head] + [f"{label:34}" + "".join(f" {get(s):>34}" for s in scores) for label, get in rows])


def _pair(a: float | None, b: float | None, digits: int = 2) -> str:
    def cell(v: float | None) -> str:
        return "-" if v is None else f"{v:.{digits}f}"

    return f"{cell(a)} / {cell(b)}"


def write_thresholds(config: Path, thresholds: dict[str, float | None]) -> None:
    """Put ``thresholds`` into the ``detect.conf`` line of ``config``, keeping every comment and other line."""
    text = config.read_text(encoding="utf-8")
    mapping = "{" + ", ".join(f"{c}: {t:g}" for c, t in thresholds.items() if t is not None) + "}"
    new, count = re.subn(r"(?m)^(  conf: )\{[^}]*\}", lambda m: m.group(1) + mapping, text, count=1)
    if count != 1:
        raise InputError(config, "no 'conf: {...}' line under detect to write the thresholds into")
    config.write_text(new, encoding="utf-8")


def compute_record(candidate: Path) -> Path | None:
    """The compute record of the run that trained ``candidate`` (``<run>/weights/best.pt`` -> ``<run>/compute.json``),
    when it kept one."""
    path = candidate.resolve().parents[1] / "compute.json"
    return path if path.is_file() else None


def compute_summary(record: Path) -> str:
    """One line: what the run's training cost, all sittings together."""
    totals = json.loads(record.read_text())["totals"]
    return (
        f"{totals['epochs']} epochs, {totals['images']:,} training images seen, {totals['wall_s'] / 3600:.2f} h wall, "
        f"{totals['cpu_s'] / 3600:.2f} CPU-hours in {totals['sittings']} sitting(s)"
    )


def ship(candidate: Path, models: Path, config: Path, thresholds: dict[str, float | None]) -> list[Path]:
    """Copy the candidate's ``.pt`` and ``.onnx`` over ``models/hazards.*`` (and its run's compute record to
    ``models/hazards.compute.json``, or remove the shipped one's, which no longer applies) and write its thresholds."""
    written = []
    for suffix in (".pt", ".onnx"):
        target = models / f"hazards{suffix}"
        shutil.copyfile(candidate.with_suffix(suffix), target)
        written.append(target)
    record, target = compute_record(candidate), models / "hazards.compute.json"
    if record is not None:
        shutil.copyfile(record, target)
        written.append(target)
    else:
        target.unlink(missing_ok=True)
    write_thresholds(config, thresholds)
    return written
