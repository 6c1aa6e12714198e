"""End-to-end accuracy on simulated drives: found, duplicated and misplaced hazards.

    .venv/bin/python benchmarks/bench_dedup.py [--drives 3] [--duration 60] [--gps-noise-m 3] [--world-seed 5 6 7]
                                               [--detector oracle shadowed model] [--conf 0.5 0.35] [--set KEY=VALUE]
                                               [--per-hazard] [--hold-covers 3.0] [--real-camera] [--orders]

Renders (once, cached in benchmarks/.cache/) several drives over the same simulated streets with
noisy GPS, runs each through ``detector run``'s pipeline into one fresh store per world, and compares the
confirmed hazards with ``truth.geojson``. Two detectors:

* ``oracle``: boxes projected from the truth through the TRUE camera pose: isolates the
  localizer and deduplicator (GPS noise is the only error left);
* ``model``: the shipped detector (``detect.model``), at each ``--conf`` for every class (default: ``detect.conf``,
  per class).

* ``fooled`` (with ``--real-camera``): the oracle, plus in every frame a box of each class on each blob of what
  rides along with the camera (the stamp's lines, the logo, the bonnet: the drive's ``static.png``), as a model
  taken in by them would report. The static mask must keep every one of them from becoming a hazard.
* ``shadowed``: the oracle, plus in every frame a box of each class where the vehicle's own shadow falls in a low
  sun (the road 2-3 m ahead; its pixels change with the road, so no mask learns it): what rides along with the
  vehicle, which the deduplicator must leave out (``dedup.ride_along_*``). Found and false are scored as for the
  oracle.

``--real-camera`` renders the drives as a real dashcam records them (issue 26): a 110-degree lens with barrel
distortion, a mount pitched 9 degrees and rolled 1.2, a bonnet and a burned-in date/time/speed stamp (a style per
world), and localizes them through each drive's true ``profile.yaml``.

Targets (issue 4): >= 95% of true hazards confirmed, <= 3% duplicates, median position error
<= 2.5 m and 90th percentile <= 5 m. Only hazards the camera saw count as findable: in view at 3-30 m
in at least two sampled frames of some drive, and in two of them drawn large enough to be labelled in the
training frames (``trainable``: ``configs/train.yaml`` ``simulator.min_box_px``, ``min_visible``, ``min_fill``).
A pothole 25 m ahead is drawn a few pixels tall; a route that only ever passes it far off does not make it a
miss of the detector's. The table says how many hazards were in view and how many of them were visible.

``--orders`` (issue 44) merges each world's drives in every order, each drive analysed once per detector (its
sightings cached beside its render, ``analysis_<detector>_<key>.pkl``, keyed by the render, the settings and the
code up to the localizer) and clustered again by the deduplicator as it is: per order, the confirmed count, found,
duplicates, false hazards and position errors, and their spread. Targets: the same confirmed count in every
order, <= 3% duplicates in each.

``--hold-covers RADIUS_M`` gives each world's manhole covers as a city would map them (a GeoPackage in
EPSG:2039) to ``dedup.hold_near``: hazards found near one are held for review instead of confirmed. The table
then says how many were held, and in brackets how many of those were true hazards (the rule's cost).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import itertools
import pickle
import tempfile
from pathlib import Path

import numpy as np

import detector
from detector.camera import configured_profile, load_camera
from detector.config import PIPELINE, TRAINING, Config, load_config, simulator_settings
from detector.config.training import SimulatorFramesConfig
from detector.export import HazardFilter, hazard_rows
from detector.geo import LocalFrame
from detector.pipeline.analysis import DriveAnalysis, analyze_drive, commit_analysis, drive_hash
from detector.pipeline.dedup.within_drive import cluster_drive, views
from detector.pipeline.frame_step import model_detector
from detector.pipeline.sources.drive import open_drive
from detector.run import run_drive
from detector.simulate import cached_drive, drive_world
from detector.simulate.citymap import write_covers
from detector.simulate.labels import read_labels
from detector.simulate.oracle import FixedPixelFiring, Oracle, load_truth
from detector.store import HazardStore
from detector.train.simframes import trainable

CACHE = Path(__file__).resolve().parent / ".cache" / "dedup"
MATCH_M = 5.0
REAL_CAMERA = {  # the simulated real dashcam of --real-camera (the stamp's style is the world's seed)
    "camera": {"height_m": 1.4, "pitch_deg": 9.0, "roll_deg": 1.2, "hfov_deg": 110.0},
    "distortion": [-0.25, 0.07, 0.0, 0.0],
    "bonnet": 0.1,
}


def simulate(world: int, drive: int, duration: float, noise: float, real_camera: bool = False) -> Path:
    out = CACHE / f"w{world}_d{drive}_{duration:g}s_n{noise:g}{'_real' if real_camera else ''}"
    real = {**REAL_CAMERA, "overlay": world} if real_camera else {}
    return cached_drive(out, world_seed=world, drive_seed=drive, duration_s=duration, gps_noise_m=noise, **real)


def covers_layer(world: int, duration: float) -> Path:
    """The world's manhole covers as a city would map them (see :mod:`detector.simulate.citymap`)."""
    origin = simulator_settings().origin
    path = CACHE / f"w{world}_{duration:g}s_covers.gpkg"
    write_covers(path, drive_world(world, duration), LocalFrame(origin.lat, origin.lon))
    return path


def evaluate(store: HazardStore, truth: list[dict], findable: np.ndarray, local: LocalFrame) -> dict:
    rows = store.query("SELECT id, class, lat, lon, sighting_count FROM hazards WHERE status = 'confirmed'")
    hx, hy = local.to_xy([r["lat"] for r in rows], [r["lon"] for r in rows])
    tx, ty = local.to_xy([t["lat"] for t in truth], [t["lon"] for t in truth])
    held = [r for r in hazard_rows(store, HazardFilter(status=("candidate",))) if r["held_reason"]]
    held_true = sum(
        any(t["class"] == r["class"] and np.hypot(x - tx[i], y - ty[i]) <= MATCH_M for i, t in enumerate(truth))
        for r, x, y in zip(held, *local.to_xy([r["lat"] for r in held], [r["lon"] for r in held]), strict=True)
    )
    # Matched against every true hazard: one found at a hazard that was not findable is no false alarm.
    pairs = sorted(
        (float(np.hypot(hx[j] - tx[i], hy[j] - ty[i])), i, j)
        for i in range(len(truth)) for j in range(len(rows))
        if rows[j]["class"] == truth[i]["class"] and np.hypot(hx[j] - tx[i], hy[j] - ty[i]) <= MATCH_M
    )  # fmt: skip
    used_t, used_h, errors = set(), set(), []
    for d, i, j in pairs:
        if i not in used_t and j not in used_h:
            used_t.add(i)
            used_h.add(j)
            if findable[i]:
                errors.append(d)
    used_t &= set(np.flatnonzero(findable).tolist())
    near_truth = {j for _, _, j in pairs}
    duplicates = len(near_truth - used_h)
    n = int(findable.sum())
    seen = store.query("SELECT class, lat, lon FROM sightings")
    sx, sy = local.to_xy([r["lat"] for r in seen], [r["lon"] for r in seen])
    per_hazard = [
        (f"w{truth[i]['world']} {truth[i]['id']}", truth[i]["class"], truth[i]["lies"], i in used_t,
         sum(1 for k, r in enumerate(seen) if r["class"] == truth[i]["class"]
             and np.hypot(sx[k] - tx[i], sy[k] - ty[i]) <= MATCH_M))
        for i in np.flatnonzero(findable)
    ]  # fmt: skip
    return {
        "per_hazard": per_hazard,
        "findable": n,
        "confirmed": len(rows),
        "found": len(used_t),
        "duplicates": duplicates,
        "false_alarms": len(set(range(len(rows))) - near_truth),
        "held": len(held),
        "held_true": held_true,
        "false_hazards": [
            f"{_nearest(rows[j], hx[j], hy[j], truth, tx, ty)}; views {_views(store, rows[j]['id'])}"
            for j in sorted(set(range(len(rows))) - near_truth)
        ],
        "errors": errors,
    }


def _views(store: HazardStore, hazard_id: int) -> str:
    """A hazard's views (per frame, its surest sighting's confidence), as the evidence rule counts them."""
    rows = store.query("SELECT drive_id, utc, confidence FROM sightings WHERE hazard_id = ?", (hazard_id,))
    seen = views(((r["drive_id"], r["utc"]) for r in rows), (r["confidence"] for r in rows))
    return " ".join(f"{c:.2f}" for c in sorted(seen, reverse=True))


def _nearest(row, x: float, y: float, truth: list[dict], tx: np.ndarray, ty: np.ndarray) -> str:
    """A false hazard described by the true hazards nearest to it (any class, its class), for tracing."""
    d = np.hypot(tx - x, ty - y)
    near = [int(d.argmin())]
    same = [k for k in np.argsort(d) if truth[k]["class"] == row["class"]][:1]
    near += [k for k in same if k != near[0]]
    where = "; ".join(f"{d[k]:.1f} m from {truth[k]['id']} ({truth[k]['class']}, {truth[k]['lies']})" for k in near)
    return f"w{truth[near[0]]['world']} #{row['id']} {row['class']} ({row['sighting_count']} sightings): {where}"


def pooled(worlds: list[dict]) -> dict:
    """One detector's results over several worlds: counts summed, position errors pooled."""
    counts = ("findable", "confirmed", "found", "duplicates", "false_alarms", "held", "held_true")
    total = {k: sum(w[k] for w in worlds) for k in counts}
    errors = [e for w in worlds for e in w["errors"]]
    n = max(total["findable"], 1)
    return {
        **total,
        "found_share": total["found"] / n,
        "duplicate_share": total["duplicates"] / n,
        "median_m": float(np.median(errors)) if errors else float("nan"),
        "p90_m": float(np.percentile(errors, 90)) if errors else float("nan"),
        "per_hazard": [h for w in worlds for h in w["per_hazard"]],
        "false_hazards": [h for w in worlds for h in w["false_hazards"]],
    }


def visible_views(folder: Path, run_dir: Path, truth: list[dict], labelled: SimulatorFramesConfig) -> np.ndarray:
    """Per hazard, the sampled frames of a run (its ``samples.csv``) that show it as a training label would."""
    shown = read_labels(folder / "labels.csv")
    index = {t["id"]: k for k, t in enumerate(truth)}
    views = np.zeros(len(truth), int)
    with (run_dir / "samples.csv").open(newline="") as f:
        sampled = [int(row["frame_index"]) for row in csv.DictReader(f)]
    for frame in sampled:
        for box in shown.get(frame, []):
            if box.id in index and trainable(box, labelled):
                views[index[box.id]] += 1
    return views


def detector_for(mode: str, folder: Path, truth: list[dict], local: LocalFrame, cfg: Config):
    """The frame detector of ``mode`` for one drive (None: the configured model), and the oracle behind it."""
    if mode not in ("oracle", "fooled", "shadowed"):
        return None, None
    oracle = Oracle(folder, truth, load_camera(configured_profile(cfg.drive.camera, folder / "drive.mp4")), local)
    if mode == "fooled":
        return FixedPixelFiring.on_static(oracle, folder / "static.png"), oracle
    if mode == "shadowed":
        return FixedPixelFiring.on_shadow(oracle), oracle
    return oracle, oracle


def run(mode: str, drives: list[Path], truth: list[dict], local: LocalFrame, cfg: Config, findable=None):
    """Process the drives into a fresh store; score against ``findable`` (default: what the oracle saw, among
    those drawn large enough to see) and return it with the oracle's in-view set."""
    labelled = TRAINING.load().simulator
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "hazards.db"
        in_view, visible = np.zeros(len(truth), int), np.zeros(len(truth), int)
        for i, folder in enumerate(drives):
            detect, oracle = detector_for(mode, folder, truth, local, cfg)
            run_dir = Path(tmp) / f"run{i}"
            report = run_drive(folder / "drive.mp4", folder / "drive.gpx", cfg, run_dir, db, detect)
            masked = f", static mask {report.masked_fraction:.1%}" if report.masked_fraction else ""
            print(f"  [{mode}] drive {i + 1}: {report.stats.frames_sampled} frames{masked}, {report.merge.line()}")
            # The oracle's views decide what was findable; the model is judged on the same set.
            if mode == "oracle":
                in_view = np.maximum(in_view, oracle.views)
                visible = np.maximum(visible, visible_views(folder, run_dir, truth, labelled))
        if findable is None:
            findable = (in_view >= 2) & (visible >= 2)
        with HazardStore(db) as store:
            return evaluate(store, truth, findable, local), findable, in_view >= 2


@dataclasses.dataclass
class Analysed:
    """One drive analysed once (sampled, detected, localized; no evidence frames), to merge in any order: its
    sightings, the drive's local frame (to cluster them again with the deduplicator as it is now), and for the
    oracle, per true hazard, the frames it was in view and drawn large enough to see."""

    analysis: DriveAnalysis
    local: LocalFrame
    in_view: np.ndarray
    visible: np.ndarray


def analysis_key(mode: str, folder: Path, cfg: Config) -> str:
    """What a drive's sightings depend on: the detector, the render, the settings, and the code up to the
    localizer (not the deduplicator or the store, which the orders exercise)."""
    digest = hashlib.sha256(f"{mode}\n{cfg.model_dump_json()}\n".encode())
    digest.update((folder / "render.key").read_bytes())
    root = Path(detector.__file__).parent
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).parts[0] not in ("dedup", "store", "tickets", "hub", "review", "export.py"):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def analysed(mode: str, folder: Path, truth: list[dict], local: LocalFrame, cfg: Config) -> Analysed:
    """A drive through ``mode``'s detector, once: cached beside the render (``analysis_<mode>_<key>.pkl``)."""
    path = folder / f"analysis_{mode}_{analysis_key(mode, folder, cfg)}.pkl"
    if path.is_file():
        return Analysed(**pickle.loads(path.read_bytes()))
    drive = open_drive(folder / "drive.mp4", folder / "drive.gpx", cfg)
    detect, oracle = detector_for(mode, folder, truth, local, cfg)
    in_view, visible = np.zeros(len(truth), int), np.zeros(len(truth), int)
    with tempfile.TemporaryDirectory() as tmp:
        analysis = analyze_drive(drive, cfg, detect or model_detector(cfg), None, drive_hash(drive), Path(tmp))
        if oracle is not None:
            in_view, visible = oracle.views, visible_views(folder, Path(tmp), truth, TRAINING.load().simulator)
    analysis = dataclasses.replace(analysis, evidence={}, evidence_jpeg={})
    result = Analysed(analysis, drive.trajectory.frame, in_view, visible)
    path.write_bytes(pickle.dumps(vars(result)))  # its fields: the script runs as __main__ or as a module
    return result


def replay(drives: list[Analysed], order: tuple[int, ...], truth: list[dict], findable, local, cfg: Config) -> dict:
    """Merge analysed drives into a fresh store in ``order`` (each clustered again as the code now does); score."""
    with tempfile.TemporaryDirectory() as tmp, HazardStore(Path(tmp) / "hazards.db") as store:
        for i in order:
            a = drives[i].analysis
            commit_analysis(
                store, dataclasses.replace(a, hazards=cluster_drive(a.sightings, drives[i].local, cfg.dedup)), cfg
            )
        return evaluate(store, truth, findable, local)


def spread(values) -> str:
    low, high = min(values), max(values)
    return f"{low:g}" if low == high else f"{low:g}-{high:g}"


def orders_table(world: int, mode: str, by_order: dict[tuple[int, ...], dict]) -> dict:
    """Print one world's results for every order of its drives; return the spread."""
    print(f"\nworld {world}, {mode}: every order of its {len(next(iter(by_order)))} drives")
    print(f"{'order':10} {'confirmed':>9} {'found':>7} {'dupes':>7} {'false':>6} {'median m':>9} {'p90 m':>7}")
    rows = []
    for order, r in by_order.items():
        n = max(r["findable"], 1)
        median = float(np.median(r["errors"])) if r["errors"] else float("nan")
        p90 = float(np.percentile(r["errors"], 90)) if r["errors"] else float("nan")
        rows.append((r["confirmed"], r["found"], r["duplicates"] / n, r["false_alarms"], median, p90))
        name = " ".join(str(i + 1) for i in order)
        print(f"{name:10} {r['confirmed']:9d} {r['found']:>3}/{r['findable']:<3} {r['duplicates'] / n:7.1%} "
              f"{r['false_alarms']:6d} {median:9.2f} {p90:7.2f}")  # fmt: skip
    confirmed, found, dupes, false, median, p90 = zip(*rows, strict=True)
    print(f"{'spread':10} {spread(confirmed):>9} {spread(found):>7} {max(dupes):7.1%} {spread(false):>6} "
          f"{min(median):.2f}-{max(median):.2f} {min(p90):.2f}-{max(p90):.2f}")  # fmt: skip
    return {"same_count": len(set(confirmed)) == 1, "max_duplicates": max(dupes)}


def permutations_mode(args, cfg: Config, modes: list[str]) -> None:
    """``--orders``: each world's drives analysed once per detector, merged in every order."""
    summary: dict[str, list[dict]] = {mode: [] for mode in modes}
    for world in args.world_seed:
        folders = [simulate(world, d, args.duration, args.gps_noise_m) for d in range(1, args.drives + 1)]
        truth = [{**t, "world": world} for t in load_truth(folders[0] / "truth.geojson")]
        local = LocalFrame(float(np.median([t["lat"] for t in truth])), float(np.median([t["lon"] for t in truth])))
        oracle = [analysed("oracle", f, truth, local, cfg) for f in folders]
        findable = (np.max([d.in_view for d in oracle], 0) >= 2) & (np.max([d.visible for d in oracle], 0) >= 2)
        for mode in modes:
            mode_cfg = cfg
            if "@" in mode:
                mode_cfg = PIPELINE.updated(
                    cfg, {"detect.conf": {c: float(mode.split("@")[1]) for c in cfg.detect.conf}}
                )
            drives = (
                oracle
                if mode == "oracle"
                else [analysed(mode.split("@")[0], f, truth, local, mode_cfg) for f in folders]
            )
            by_order = {
                order: replay(drives, order, truth, findable, local, mode_cfg)
                for order in itertools.permutations(range(len(drives)))
            }
            summary[mode].append({"world": world, **orders_table(world, mode, by_order)})
    print()
    for mode, worlds in summary.items():
        differ = ", ".join(str(w["world"]) for w in worlds if not w["same_count"])
        print(f"{mode}: the same confirmed count in every order: {'no, world ' + differ if differ else 'yes'}; "
              f"worst duplicate rate of any order {max(w['max_duplicates'] for w in worlds):.1%}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drives", type=int, default=3)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--gps-noise-m", type=float, default=3.0)
    parser.add_argument("--world-seed", type=int, nargs="+", default=[5, 6, 7], help="worlds, each its own store")
    parser.add_argument("--detector", nargs="+", default=["oracle", "model"],
                        choices=["oracle", "fooled", "shadowed", "model"],
                        help="the oracle always runs: it decides which hazards were findable")  # fmt: skip
    parser.add_argument("--conf", type=float, nargs="+", help="model thresholds to compare (default: detect.conf)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    parser.add_argument("--per-hazard", action="store_true", help="also list each findable hazard: found, sightings")
    parser.add_argument("--hold-covers", type=float, metavar="RADIUS_M",
                        help="give each world's manhole covers as a GIS layer (dedup.hold_near): hazards found "
                             "within RADIUS_M of one are held for review, not confirmed")  # fmt: skip
    parser.add_argument("--real-camera", action="store_true",
                        help="drives as a real dashcam records them: distortion, odd mount, bonnet, stamp")  # fmt: skip
    parser.add_argument("--orders", action="store_true",
                        help="merge each world's drives in every order (each drive analysed once, cached): the "
                             "spread of confirmed counts, duplicates and position errors across orders")  # fmt: skip
    args = parser.parse_args()
    if args.orders and (args.real_camera or args.hold_covers or {"fooled", "shadowed"} & set(args.detector)):
        parser.error("--orders takes the oracle and the model on the plain drives")
    if "fooled" in args.detector and not args.real_camera:
        parser.error("--detector fooled needs --real-camera (the drives' stamp and bonnet)")
    # Found means confirmed, or held for a reviewer only because the city files that class by hand (tickets.auto_file):
    # what the detector and the hazard rule find, whatever the filing policy.
    cfg = load_config(overrides=["run.progress=false", "tickets.auto_file=true", *args.set])
    model_modes = [f"model@{c:g}" for c in args.conf] if args.conf else ["model"]  # "model": detect.conf per class
    fixed = [mode for mode in ("fooled", "shadowed") if mode in args.detector]
    modes = ["oracle"] + fixed + (model_modes if "model" in args.detector else [])
    if args.orders:
        permutations_mode(args, cfg, modes)
        return
    by_world: dict[str, list[dict]] = {mode: [] for mode in modes}
    hazards, in_view_count, hidden = 0, 0, []
    for world in args.world_seed:
        folders = [
            simulate(world, d, args.duration, args.gps_noise_m, args.real_camera) for d in range(1, args.drives + 1)
        ]
        truth = [{**t, "world": world} for t in load_truth(folders[0] / "truth.geojson")]
        local = LocalFrame(float(np.median([t["lat"] for t in truth])), float(np.median([t["lon"] for t in truth])))
        world_cfg = cfg
        if args.real_camera:  # every drive of a world has the same camera: localize through its true profile
            world_cfg = PIPELINE.updated(cfg, {"drive.camera": str(folders[0] / "profile.yaml")})
        if args.hold_covers:
            covers = covers_layer(world, args.duration)
            layer = {"layer": str(covers), "radius_m": args.hold_covers, "classes": ["pothole"]}
            world_cfg = PIPELINE.updated(world_cfg, {"dedup.hold_near": layer})
        result, findable, in_view = run("oracle", folders, truth, local, world_cfg)
        by_world["oracle"].append(result)
        for mode in fixed:
            by_world[mode].append(run(mode, folders, truth, local, world_cfg, findable)[0])
        for mode in modes[1 + len(fixed) :]:
            conf = {c: float(mode.split("@")[1]) for c in cfg.detect.conf} if "@" in mode else cfg.detect.conf
            model_cfg = PIPELINE.updated(world_cfg, {"detect.conf": conf})
            by_world[mode].append(run("model", folders, truth, local, model_cfg, findable)[0])
        hazards += len(truth)
        in_view_count += int(in_view.sum())
        hidden += [f"w{world} {truth[k]['id']}" for k in np.flatnonzero(in_view & ~findable)]
    results = {mode: pooled(worlds) for mode, worlds in by_world.items()}
    worlds = ("worlds " if len(args.world_seed) > 1 else "world ") + ", ".join(map(str, args.world_seed))
    setup = f"{args.drives} drives x {args.duration:g} s over each of {worlds}, GPS noise {args.gps_noise_m:g} m"
    print(
        f"\n{setup}; {results['oracle']['findable']} of {hazards} hazards findable: {in_view_count} in view, "
        f"of which never drawn large enough to see: {', '.join(hidden) or 'none'}"
    )
    held = f" {'held (true)':>12}" if args.hold_covers else ""
    header = f"{'detector':10} {'confirmed':>9} {'found':>11} {'dupes':>7} {'false':>6} {'median m':>9} {'p90 m':>7}"
    print(header + held)
    for mode, r in results.items():
        found = f"{r['found']}/{r['findable']} {r['found_share']:.0%}"
        held = f" {r['held']:>7} ({r['held_true']})" if args.hold_covers else ""
        print(f"{mode:10} {r['confirmed']:9d} {found:>11} {r['duplicate_share']:7.1%} {r['false_alarms']:6d} "
              f"{r['median_m']:9.2f} {r['p90_m']:7.2f}{held}")  # fmt: skip
    if args.per_hazard:
        print(f"\n{'hazard':8} {'class':12} {'lies':13}" + "".join(f" {mode:>12}" for mode in results))
        for k, (hid, cls, pose, *_) in enumerate(results["oracle"]["per_hazard"]):
            cells = "".join(f" {('found' if r['per_hazard'][k][3] else 'missed'):>6}{r['per_hazard'][k][4]:>4}s"
                            for r in results.values())  # fmt: skip
            print(f"{hid:8} {cls:12} {pose:13}{cells}")
        for mode, r in results.items():
            for line in r["false_hazards"]:
                print(f"false, {mode}: {line}")


if __name__ == "__main__":
    main()
