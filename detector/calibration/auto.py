"""``drive.camera: auto``: the camera of a drive that came with no profile.

Resolved once, at a command's entry (:class:`~detector.pipeline.analysis.DriveSetup`), in this order:

1. the vehicle's profile kept beside its drives (``profile.yaml`` in the video's folder, which ``detector calibrate
   --out`` can write and the simulator writes for its drives): a camera already seen;
2. else the estimate an earlier drive of the same folder (one vehicle's drives, as for ``profile.yaml``) measured,
   remembered beside it in ``profile.estimated.yaml`` (:data:`REMEMBERED`), for a video of the same size: the camera
   does not change between drives, and measuring costs some 7 s of CPU on a 1080p drive;
3. else measured from the drive's first few hundred metres (``drive.camera_estimate_m``), as ``detector calibrate
   --drive`` does without a board (:mod:`~detector.calibration.lens`, :mod:`~detector.calibration.mount`), on a
   few straight stretches at a reduced width, and the lens's height from how fast the road flows against the
   metres the GPS says were driven; remembered beside the drive for its vehicle's later drives (where the folder
   can be written);
4. else (too short, no straight road, no GPS motion, a plain scene) the default profile, with one line saying that
   positions will be rough until the camera is calibrated, and the command that does it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from detector.camera import (
    AUTO,
    BESIDE_PROFILE,
    DEFAULT_PROFILE,
    CameraModel,
    load_camera,
    profile_beside,
    save_camera,
)
from detector.errors import InputError, shown
from detector.pipeline.sources.drive import Drive

if TYPE_CHECKING:
    from detector.calibration.mount import MountEstimate

log = logging.getLogger(__name__)

WORK_WIDTH = 960  # the stretches are measured on frames this wide: the estimate's cost does not grow with 4K
STRETCHES = 24  # straight stretches measured, the first ones of the drive (each: two frames about a metre apart)
EVERY_S = 0.8  # one stretch per this many seconds of straight driving (about 20 s of video in all)
PLAUSIBLE_HFOV_DEG = (40.0, 170.0)  # a measured camera outside these is refused: the default profile, and the warning
PLAUSIBLE_PITCH_DEG = (-5.0, 30.0)
PLAUSIBLE_ROLL_DEG = 10.0
PLAUSIBLE_HEIGHT_M = (0.5, 4.0)
FLOW_POINTS = 1000  # points tracked per stretch (the tracking costs most after the decoding)
PAIRS_AHEAD = 2  # frame pairs decoded ahead of the tracking (two grey frames each: 4 MB at 1080p)
REMEMBERED = "profile.estimated.yaml"  # a measured camera, kept beside its drive for the vehicle's next drives


@dataclass(frozen=True)
class CameraEstimate:
    """A camera measured from a drive, with what it was measured from."""

    camera: CameraModel  # at the video's size
    focal_error_px: float
    mount: MountEstimate
    metres: float  # of the drive's start the stretches came from
    stretches: int
    seconds: float  # spent measuring

    def line(self) -> str:
        """The estimate with its uncertainties, in one line."""
        m, cam = self.mount, self.camera
        err = 1.0 / math.sqrt(max(m.pairs, 1))
        hfov = math.degrees(2 * math.atan(cam.width / 2 / cam.focal))
        k1, k2 = (cam.distortion or (0.0, 0.0))[:2]
        height = (
            f"height {m.height_m:.2f} m (+/- {m.height_error:.2f}, from the road's flow against the GPS)"
            if m.height_m is not None
            else f"height {cam.height_m:g} m (the default profile's: measure it)"
        )
        return (
            f"focal {cam.focal:.0f} px (+/- {self.focal_error_px:.0f}; field of view {hfov:.0f} deg), distortion "
            f"k1 {k1:.3f} k2 {k2:.3f}, pitch {m.pitch_deg:.2f} deg (+/- {m.pitch_spread * err:.2f}), roll "
            f"{m.roll_deg:.2f} (+/- {m.roll_spread * err:.2f}), yaw {m.yaw_deg:.2f} (+/- {m.yaw_spread * err:.2f}), "
            f"{height}; from {self.stretches} straight stretches in the first {self.metres:.0f} m, "
            f"{self.seconds:.1f} s"
        )


@dataclass(frozen=True)
class CameraChoice:
    """The camera a command uses, and the line it prints about it."""

    camera: CameraModel
    line: str
    rough: bool = False  # no profile and none measured: positions are rough


def estimate_camera(drive: Drive, fallback: CameraModel, within_m: float) -> CameraEstimate:
    """The camera measured from ``drive``'s first ``within_m`` metres; ``fallback`` gives the height where the
    road's flow does not. An :class:`InputError` naming the video says why where the drive gives too little."""
    from detector.calibration.lens import lens_from_stretches  # SciPy's optimisers: imported only to measure
    from detector.calibration.mount import driven_between, frame_pairs, mount_from_stretches, stretch_of
    from detector.pipeline.sampler import prefetched

    started = time.perf_counter()
    times = _first_straight_times(drive, within_m)
    width = min(WORK_WIDTH, drive.video.width)
    height = round(drive.video.height * width / drive.video.width)
    # The next pairs are decoded in a thread while this one's points are tracked: the two take turns otherwise.
    pairs = prefetched(frame_pairs(drive, times), PAIRS_AHEAD)
    stream = [stretch_of(pair, None, driven_between(drive, pair), width, FLOW_POINTS) for pair in pairs]
    stream = [s for s in stream if len(s.p0) >= 30]
    lens = lens_from_stretches(stream, width, height, drive.video.path)
    measured = CameraModel(width=width, height=height, focal_px=lens.focal_px, distortion=lens.distortion)
    mount = mount_from_stretches(stream, measured, drive.video.path, len(times))
    scale = drive.video.width / width
    camera = replace(
        measured.scaled_to(drive.video.width, drive.video.height),
        name=f"estimated from {shown(drive.video.path.stem)}",  # a name any store and output takes
        focal_px=round(lens.focal_px * scale, 2),
        distortion=tuple(round(k, 5) for k in lens.distortion),
        pitch_deg=round(mount.pitch_deg, 3),
        roll_deg=round(mount.roll_deg, 3),
        yaw_deg=round(mount.yaw_deg, 3),
        height_m=round(mount.height_m, 3) if mount.height_m is not None else fallback.height_m,
    )
    problem = implausible(camera)
    if problem:
        raise InputError(drive.video.path, f"what its start gave is no dashcam's: {problem}")
    reached = drive.trajectory.at(drive.utc(np.array([times[-1][1]]))).distance[0] - drive.trajectory.distance[0]
    return CameraEstimate(camera, lens.focal_error * scale, mount, float(reached), len(stream),
                          time.perf_counter() - started)  # fmt: skip


def implausible(camera: CameraModel) -> str | None:
    """Why a measured camera cannot be a vehicle's (a scene that fooled the measurement), or None."""
    hfov = math.degrees(2 * math.atan(camera.width / 2 / camera.focal))
    lo, hi = PLAUSIBLE_HFOV_DEG
    if not lo <= hfov <= hi:
        return f"a {hfov:.0f} degree field of view (a dashcam's is {lo:g} to {hi:g})"
    lo, hi = PLAUSIBLE_PITCH_DEG
    if not lo <= camera.pitch_deg <= hi:
        return f"pitched {camera.pitch_deg:.1f} degrees down (a dashcam looks {lo:g} to {hi:g})"
    if abs(camera.roll_deg) > PLAUSIBLE_ROLL_DEG:
        return f"rolled {camera.roll_deg:.1f} degrees (at most {PLAUSIBLE_ROLL_DEG:g})"
    lo, hi = PLAUSIBLE_HEIGHT_M
    if not lo <= camera.height_m <= hi:
        return f"{camera.height_m:.2f} m above the road (a dashcam is {lo:g} to {hi:g} m up)"
    return None


def _first_straight_times(drive: Drive, within_m: float) -> list[tuple[float, float]]:
    """The first :data:`STRETCHES` straight time pairs within ``within_m`` metres of the drive's start."""
    from detector.calibration.mount import MIN_PAIRS, MountSettings, straight_times

    times = straight_times(drive, MountSettings(every_s=EVERY_S, max_pairs=10**9))
    if times:
        starts = drive.trajectory.at(drive.utc(np.array([t for t, _ in times]))).distance - drive.trajectory.distance[0]
        times = [pair for pair, metres in zip(times, starts, strict=True) if metres <= within_m][:STRETCHES]
    if len(times) < MIN_PAIRS:
        raise InputError(
            drive.video.path,
            f"{len(times)} straight stretches at speed in its first {within_m:g} m (need {MIN_PAIRS}): too short, "
            f"too stationary or too winding",
        )
    return times


def choose_camera(setting: str, within_m: float, drive: Drive | None, video: Path | None = None) -> CameraChoice:
    """The camera for ``drive.camera`` = ``setting``: the profile named, or with ``auto`` (see the module's notes)
    the one beside the drive, else the estimate remembered beside it, else measured from ``drive`` (``None``:
    nothing to measure, e.g. a live camera; ``video`` then names the source in the hints) and remembered, else the
    default one with a warning."""
    if setting != AUTO:
        camera = load_camera(setting)
        return CameraChoice(camera, f"camera: {camera.name or 'profile'} from {shown(setting)}")
    video = drive.video.path if drive is not None else video
    beside = profile_beside(setting, video)
    if beside is not None:
        camera = load_camera(beside)
        return CameraChoice(camera, f"camera: {camera.name or 'profile'} from {shown(beside)}, kept beside the drive")
    fallback = load_camera(DEFAULT_PROFILE)
    if drive is None:
        return _rough(fallback, "no recorded drive to measure it from", video)
    remembered = recall_estimate(drive)
    if remembered is not None:
        path, camera = remembered
        return CameraChoice(
            camera,
            f"camera: no profile; {camera.name} (an earlier drive of this vehicle), remembered in {shown(path)} "
            f"(delete it to measure this drive's). Keep it: "
            f"{_calibrate_hint(drive.video.path, f'{camera.height_m:g}')} (with the height measured by hand)",
        )
    try:
        found = estimate_camera(drive, fallback, within_m)
    except InputError as e:
        return _rough(fallback, e.problem, video)
    kept = remember_estimate(found, drive.video.path)
    return CameraChoice(
        found.camera,
        f"camera: no profile; estimated from this drive: {found.line()}"
        + (f"; remembered for this vehicle's next drives in {shown(kept)}" if kept else "")
        + f". Keep it: {_calibrate_hint(drive.video.path, f'{found.camera.height_m:g}')} (with the height measured "
        f"by hand)",
    )


def recall_estimate(drive: Drive) -> tuple[Path, CameraModel] | None:
    """The estimate an earlier drive in ``drive``'s folder remembered (:data:`REMEMBERED`), with its path, where it
    was measured on a video of this drive's size; else None (an unreadable file is measured again, and replaced)."""
    path = drive.video.path.parent / REMEMBERED
    if not path.is_file():
        return None
    try:
        camera = load_camera(path)
    except InputError as e:
        log.warning("%s; the camera is measured again", e)
        return None
    if (camera.width, camera.height) != (drive.video.width, drive.video.height):
        return None  # another camera, or the same one set to another size: measured again
    return path, camera


def remember_estimate(found: CameraEstimate, video: Path) -> Path | None:
    """Keep ``found`` beside ``video`` (:data:`REMEMBERED`) for the vehicle's next drives; None where the folder
    cannot be written (read-only media): the next drive is measured too."""
    comment = (
        f"The camera measured by drive.camera: auto from the first {found.metres:.0f} m of {shown(video.name)} "
        f"({found.stretches} straight stretches).\n"
        "The next drives in this folder use it; delete this file to measure again. A profile.yaml here wins:\n"
        "detector calibrate --drive ... --height-m ... --out profile.yaml writes one (the height measured by hand)."
    )
    try:
        return save_camera(found.camera, video.parent / REMEMBERED, comment)
    except InputError as e:
        log.info("the camera estimate is not remembered: %s", e)
        return None


def _calibrate_hint(video: Path | None, height: str) -> str:
    """The command that writes the vehicle's profile beside its drives, where ``auto`` finds it from then on."""
    drive = shown(video) if video is not None else "DRIVE.mp4"
    out = shown(Path(video).parent / BESIDE_PROFILE) if video is not None else BESIDE_PROFILE
    return f"`detector calibrate --drive {drive} --height-m {height} --out {out}`"


def _rough(fallback: CameraModel, reason: str, video: Path | None) -> CameraChoice:
    return CameraChoice(
        fallback,
        f"camera: no profile, and none could be measured ({reason}): positions will be rough until the camera is "
        f"calibrated: {_calibrate_hint(video, 'HEIGHT')} on a drive with a few hundred metres of straight road "
        f"(the default profile {fallback.name or DEFAULT_PROFILE} is used meanwhile)",
        rough=True,
    )
