"""Synthetic patrol drives with ground truth: ``detector simulate``.

:func:`simulate_drive` renders a dashcam video of a procedural street world (potholes, fallen
signs, standing signs as distractors) with a matching noisy GPS log, and writes the truth the
pipeline is measured against. The world depends only on ``world_seed``; the drive (speed, stops,
lighting, GPS error) on ``drive_seed``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from detector.camera import save_camera
from detector.config import simulator_settings
from detector.config.tools import SimulateConfig
from detector.geo import LocalFrame
from detector.images import write_image
from detector.simulate.citymap import write_covers, write_streets
from detector.simulate.generate import build_world
from detector.simulate.hazard_placement import change_signs
from detector.simulate.labels import labels_current, write_labels
from detector.simulate.motion import gps_fixes, plan_drive
from detector.simulate.output import (
    VideoWriter,
    write_camera,
    write_gpx,
    write_signs,
    write_trajectory,
    write_truth,
)
from detector.simulate.real_camera import CameraLook, RealCamera
from detector.simulate.render import CameraPose, FrameRenderer, SimulatedCamera
from detector.simulate.world import World

__all__ = ["SimulationSummary", "cached_drive", "simulate_drive"]

REAL_CAMERA_KEYS = ("lens", "distortion", "bonnet", "overlay")
MAX_SPEED_MPS = 14.5  # the fastest the simulated driver goes; sizes the route for the duration
# What a rendered video depends on: a cached render made by other code is made again.
RENDER_SOURCES = (
    *("world.py", "generate.py", "streets.py", "hazard_placement.py", "roadside.py"),
    *("artwork.py", "motion.py", "ground.py", "render.py", "output.py"),
)
REAL_CAMERA_SOURCES = ("real_camera.py", "overlay.py")  # ...and, for a drive with a real camera's look, these
RENDER_KEY = "render.key"


@dataclass(frozen=True)
class SimulationSummary:
    """What :func:`simulate_drive` wrote. ``video`` is None when rendering was skipped.

    ``route_span_m`` is the stretch of the route driven (start and end distance along it), to
    match against the ``route_s_m`` of the truth features.
    """

    out_dir: Path
    video: Path | None
    gpx: Path
    truth: Path
    camera: Path
    trajectory: Path
    labels: Path
    covers: Path
    streets: Path
    frames: int
    duration_s: float
    distance_m: float
    stops: int
    hazards: dict[str, int] = field(default_factory=dict)
    route_span_m: tuple[float, float] = (0.0, 0.0)
    start_utc: str = ""
    signs: Path | None = None  # signs.geojson

    def __str__(self) -> str:
        hazards = ", ".join(f"{n} {name}" for name, n in self.hazards.items())
        return (
            f"simulated {self.duration_s:g} s drive ({self.frames} frames) from {self.start_utc}: "
            f"{self.distance_m:.0f} m driven with {self.stops} stop(s); world hazards: {hazards}\n"
            f"wrote {', '.join(p.name for p in self.paths())} to {self.out_dir}"
        )

    def paths(self) -> list[Path]:
        return [
            p
            for p in (
                self.video,
                self.gpx,
                self.truth,
                self.camera,
                self.trajectory,
                self.labels,
                self.covers,
                self.streets,
                self.signs,
            )
            if p is not None
        ]


@dataclass(frozen=True)
class _Settings:
    world_seed: int
    drive_seed: int
    duration_s: float
    fps: int
    gps_noise_m: float
    gps_rate_hz: float
    start: datetime
    origin: tuple[float, float]
    camera: SimulatedCamera
    crf: int
    real: RealCamera
    knock_signs: int = 0
    remove_signs: int = 0
    damage_signs: int = 0


def _settings(settings: dict[str, Any] | SimulateConfig) -> _Settings:
    """The simulator's defaults overlaid with ``settings``, checked; raises :class:`ConfigError` naming the key."""
    cfg = settings if isinstance(settings, SimulateConfig) else simulator_settings(settings)
    cam = cfg.camera
    return _Settings(
        world_seed=cfg.world_seed,
        drive_seed=cfg.drive_seed,
        duration_s=cfg.duration_s,
        fps=cfg.fps,
        gps_noise_m=cfg.gps_noise_m,
        gps_rate_hz=cfg.gps_rate_hz,
        start=cfg.start_utc,
        origin=(cfg.origin.lat, cfg.origin.lon),
        camera=SimulatedCamera(cfg.width, cfg.height, cam.hfov_deg, cam.height_m, cam.pitch_deg, cam.roll_deg),
        crf=cfg.crf,
        real=RealCamera(cfg.lens, tuple(cfg.distortion), cfg.bonnet, cfg.overlay),
        knock_signs=cfg.knock_signs,
        remove_signs=cfg.remove_signs,
        damage_signs=cfg.damage_signs,
    )


def drive_world(world_seed: int, duration_s: float) -> World:
    """The world a drive of ``duration_s`` over ``world_seed`` is simulated in (its route long enough)."""
    return build_world(world_seed, min_length_m=60.0 + MAX_SPEED_MPS * duration_s + 150.0)


def simulate_drive(
    out_dir: Path, settings: dict[str, Any] | SimulateConfig, progress: bool = True, *, render: bool = True
) -> SimulationSummary:
    """Simulate one drive into ``out_dir``: ``drive.mp4``, ``drive.gpx``, ``truth.geojson``,
    ``camera.yaml``, ``trajectory.csv``, ``labels.csv`` (the hazards' boxes in each frame) and
    ``covers.gpkg`` (the world's manhole covers, for ``dedup.hold_near.layer``) and ``streets.gpkg`` (its named
    street centrelines, for ``streets.layer``); ``signs.geojson`` (every sign plate, standing or not, and the signs
    taken away: :func:`~detector.simulate.output.write_signs`); ``profile.yaml`` (the true camera profile, lens
    included) and, with a bonnet or a stamp, ``static.png`` (white where they ever draw: what a static mask should
    cover). ``render=False`` skips the video (everything else is written the same), which is fast enough
    for tests of the GPS and the truth."""
    s = _settings(settings)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = LocalFrame(*s.origin)
    frames = max(1, round(s.duration_s * s.fps))
    world = change_signs(drive_world(s.world_seed, s.duration_s), s.knock_signs, s.remove_signs, s.damage_signs)
    drive = plan_drive(world, s.drive_seed, s.duration_s, s.start)
    paths = {name: out_dir / name for name in ("drive.mp4", "drive.gpx", "truth.geojson", "camera.yaml")}
    paths["trajectory.csv"] = out_dir / "trajectory.csv"
    paths["labels.csv"] = out_dir / "labels.csv"
    paths["covers.gpkg"] = out_dir / "covers.gpkg"
    paths["streets.gpkg"] = out_dir / "streets.gpkg"
    paths["signs.geojson"] = out_dir / "signs.geojson"
    fixes = gps_fixes(drive, s.drive_seed, s.gps_noise_m, s.gps_rate_hz)
    write_gpx(paths["drive.gpx"], fixes, frame, drive.start_utc, f"world {s.world_seed} drive {s.drive_seed}")
    hazards = write_truth(paths["truth.geojson"], world, frame)
    write_signs(paths["signs.geojson"], world, frame)
    write_camera(paths["camera.yaml"], s.camera, s.fps)
    look = CameraLook(s.camera, s.real, drive.start_utc)
    save_camera(look.model, out_dir / "profile.yaml", "the simulated drive's own camera, lens included")
    write_trajectory(paths["trajectory.csv"], drive, frame, s.fps, frames)
    write_labels(paths["labels.csv"], world, drive, s.fps, frames, look)
    write_covers(paths["covers.gpkg"], world, frame)
    write_streets(paths["streets.gpkg"], world, frame)
    if s.real.bonnet > 0 or s.real.overlay is not None:  # the truth of what a static mask should find
        seconds = np.arange(max(1, int(np.ceil(s.duration_s))), dtype=float)
        fixed = look.fixed_pixels(s.duration_s, drive.state(seconds)[3])
        write_image(out_dir / "static.png", fixed.astype(np.uint8) * 255)
    if render:
        _render_video(paths["drive.mp4"], world, drive, s, frames, look, progress)
    return SimulationSummary(
        out_dir=out_dir,
        video=paths["drive.mp4"] if render else None,
        gpx=paths["drive.gpx"],
        truth=paths["truth.geojson"],
        camera=paths["camera.yaml"],
        trajectory=paths["trajectory.csv"],
        labels=paths["labels.csv"],
        covers=paths["covers.gpkg"],
        streets=paths["streets.gpkg"],
        signs=paths["signs.geojson"],
        frames=frames,
        duration_s=s.duration_s,
        distance_m=round(drive.distance_m, 1),
        stops=len(drive.stops),
        hazards=hazards,
        route_span_m=tuple(round(v, 1) for v in drive.route_span),
        start_utc=drive.start_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def render_key(simulate: SimulateConfig) -> str:
    """A fingerprint of what a render depends on: the ``simulate`` settings and the simulator's code.

    A cached drive whose key differs was rendered from another world or renderer: its video would not
    match the truth and labels written now, so it is rendered again.
    """
    values, defaults = simulate.model_dump(mode="json"), simulator_settings().model_dump(mode="json")
    real = {k: values[k] for k in REAL_CAMERA_KEYS if values[k] != defaults[k]}
    plain = {k: v for k, v in values.items() if k not in REAL_CAMERA_KEYS}
    digest = hashlib.sha256(json.dumps({**plain, **real}, sort_keys=True, default=str).encode())
    for name in (*RENDER_SOURCES, *(REAL_CAMERA_SOURCES if real else ())):
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()[:16]


def cached_drive(out_dir: Path, progress: bool = True, **settings: Any) -> Path:
    """Render a drive into ``out_dir`` once (``settings`` override the simulator's defaults) and reuse it after.

    The render goes to ``<out_dir>.partial`` first, so an interrupted one is never taken for a finished drive.
    A render made by other simulator code or settings (see :func:`render_key`) is made again.

    >>> cached_drive(Path("benchmarks/.cache/w5_d1"), world_seed=5, drive_seed=1, duration_s=60)  # doctest: +SKIP
    """
    out_dir = Path(out_dir)
    simulate = simulator_settings(settings)
    key = render_key(simulate)
    stamp = out_dir / RENDER_KEY
    rendered = (out_dir / "drive.mp4").is_file() and stamp.is_file() and stamp.read_text().strip() == key
    if rendered and labels_current(out_dir / "labels.csv"):
        return out_dir
    if rendered:  # labels.csv is older than its latest columns: label again, the video stays
        simulate_drive(out_dir, simulate, progress=False, render=False)
        return out_dir
    partial = out_dir.with_name(out_dir.name + ".partial")
    simulate_drive(partial, simulate, progress=progress)
    (partial / RENDER_KEY).write_text(key + "\n", encoding="utf-8")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    partial.rename(out_dir)
    return out_dir


def _render_video(path: Path, world, drive, s: _Settings, frames: int, look: CameraLook, progress: bool) -> None:
    renderer = FrameRenderer(world, look.render_camera, drive.lighting, seed=s.drive_seed)
    t = np.arange(frames) / s.fps
    x, y, heading, speed = drive.state(t)
    yaw, exposure = drive.yaw_rate(t), drive.exposure(t)
    real = s.real.adds_anything
    with VideoWriter(path, s.camera, s.fps, s.crf, drive.start_utc) as video:
        for i in tqdm(range(frames), desc="simulate", unit="frame", disable=not progress):
            pose = CameraPose(float(x[i]), float(y[i]), float(heading[i]))
            image = renderer.render(pose, float(speed[i]), float(yaw[i]), float(exposure[i]))
            video.write(look.apply(image, float(t[i]), float(speed[i])) if real else image)
