"""``detector calibrate``: a camera profile for a real vehicle, from a board video and an ordinary drive."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.command_registry import AddCommon, Handlers
from detector.config import Config


@dataclass(frozen=True)
class Calibration:
    """What ``detector calibrate`` found, for its summary."""

    profile: Any  # CameraModel
    intrinsics_line: str
    mount_line: str
    mask_fraction: float


def _offsets(text: str | None) -> tuple[float, float]:
    from detector.errors import InputError

    if not text:
        return 0.0, 0.0
    try:
        forward, right = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError(None, f"--antenna-offset {text!r}: expected FORWARD,RIGHT in metres, e.g. 1.2,-0.3") from None
    return forward, right


def _intrinsics(args: argparse.Namespace, progress: bool):
    """A lens-only camera model from the board views or from a profile given."""
    from detector.calibration.board import Board, calibrate_intrinsics
    from detector.camera import CameraModel, load_camera

    if args.intrinsics:
        camera = load_camera(args.intrinsics)
        return camera, f"lens from {args.intrinsics}: focal {camera.focal:.1f} px, {camera.lens}"
    found = calibrate_intrinsics(args.board, Board.parse(args.board_size, args.square_mm), args.lens, progress)
    camera = CameraModel(
        width=found.width, height=found.height, focal_px=found.focal_px, principal_px=found.principal_px,
        lens=found.lens, distortion=found.distortion,
    )  # fmt: skip
    line = (
        f"lens: {found.lens} model, focal {found.focal_px:.1f} px ({camera.width}x{camera.height}), principal point "
        f"({found.principal_px[0]:.1f}, {found.principal_px[1]:.1f}); reprojection error {found.rms_px:.2f} px over "
        f"{found.views} of {found.tried} views"
    )
    return camera, line


def _lens_from_drive(drive, exclude: np.ndarray | None):
    """A lens-only camera model from the drive itself: the vanishing points of its road and of upright edges."""
    from detector.calibration.lens import estimate_lens
    from detector.camera import CameraModel

    found = estimate_lens(drive, exclude)
    camera = CameraModel(
        width=drive.video.width, height=drive.video.height, focal_px=round(found.focal_px, 2),
        distortion=tuple(round(k, 5) for k in found.distortion),
    )  # fmt: skip
    k1, k2 = found.distortion[:2]
    line = (
        f"lens from the drive (no board): focal {found.focal_px:.1f} px (+/- {found.focal_error:.1f}; spread per "
        f"stretch {found.focal_spread:.1f}), horizontal field of view {_hfov(camera):.1f} deg, radial distortion "
        f"k1 {k1:.3f}, k2 {k2:.3f}; from the vanishing points of the road and of upright edges in "
        f"{found.stretches} straight stretches"
    )
    return camera, line


def _hfov(camera) -> float:
    """The horizontal field of view (degrees) of a pinhole camera's undistorted picture."""
    return math.degrees(2 * math.atan(camera.width / 2 / camera.focal))


def _fit_size(camera, width: int, height: int, source: Path):
    """The lens model for the drive video's size (a board video of the same camera at another resolution)."""
    from detector.errors import InputError

    if (camera.width, camera.height) == (width, height):
        return camera
    if abs(camera.width / camera.height - width / height) > 0.01:
        raise InputError(
            source,
            f"is {width}x{height} but the lens was calibrated at {camera.width}x{camera.height} (another aspect: "
            f"not the same camera mode)",
        )
    scaled = camera.scaled_to(width, height)
    return replace(scaled, principal_px=(scaled.cx, scaled.cy))


def calibrate(args: argparse.Namespace, cfg: Config) -> Calibration:
    from detector.calibration.check import check_picture
    from detector.calibration.mount import MountSettings, estimate_mount
    from detector.camera import save_camera
    from detector.pipeline.sampler import sample_drive
    from detector.pipeline.sources.drive import open_drive
    from detector.pipeline.static_mask import MaskLearner

    progress = bool(cfg.run.progress)
    lens, intrinsics_line = _intrinsics(args, progress) if args.board or args.intrinsics else (None, "")
    drive = open_drive(args.drive, args.gps, cfg)
    if lens is not None:
        lens = _fit_size(lens, drive.video.width, drive.video.height, args.drive)
    settings = cfg.mask
    learner = MaskLearner(settings.model_copy(update={"relearn_every": 10**9}), lens.mask if lens else ())
    middle = None
    sampling = cfg.sampling.model_copy(update={"spacing_m": settings.spacing_m, "focus_m": 0.0, "prefetch_frames": 0})
    for frame in sample_drive(drive, sampling, progress=progress):
        learner.add(frame.image, frame.distance_m)
        if middle is None or frame.distance_m < 0.5 * drive.trajectory.distance[-1]:
            middle = frame.image
    mask = learner.final()
    mask_pixels = mask.pixels if mask is not None else None
    if lens is None:
        lens, intrinsics_line = _lens_from_drive(drive, mask_pixels)
    mount = estimate_mount(drive, lens, MountSettings(), exclude=mask_pixels)
    forward, right = _offsets(args.antenna_offset)
    profile = replace(
        lens,
        name=args.name or Path(args.out).stem,
        pitch_deg=round(mount.pitch_deg, 3),
        roll_deg=round(mount.roll_deg, 3),
        yaw_deg=round(mount.yaw_deg, 3),
        height_m=float(args.height_m),
        offset_forward_m=forward,
        offset_right_m=right,
        mask=_mask_regions(mask_pixels) if args.store_mask and mask_pixels is not None else lens.mask,
    )
    horizon = profile.horizon_row()
    err = 1.0 / np.sqrt(mount.pairs)
    mount_line = (
        f"mount: pitch {mount.pitch_deg:.2f} deg (+/- {mount.pitch_spread * err:.2f}), roll {mount.roll_deg:.2f} "
        f"(+/- {mount.roll_spread * err:.2f}), yaw {mount.yaw_deg:.2f} (+/- {mount.yaw_spread * err:.2f}) from "
        f"{mount.pairs} straight stretches (spread per stretch {mount.pitch_spread:.2f} / {mount.roll_spread:.2f} / "
        f"{mount.yaw_spread:.2f}); horizon at row {horizon:.0f} ({horizon / profile.height:.1%} of the height); "
        f"height {profile.height_m:g} m and antenna offset ({forward:g}, {right:g}) m as given"
    )
    note = f"detector calibrate: {intrinsics_line}\n{mount_line}"
    if args.check and middle is not None:
        picture = check_picture(middle, profile, mask_pixels)
        Path(args.check).parent.mkdir(parents=True, exist_ok=True)
        from detector.images import write_image

        write_image(Path(args.check), picture, [cv2.IMWRITE_JPEG_QUALITY, 90])
    save_camera(profile, args.out, note)
    return Calibration(profile, intrinsics_line, mount_line, mask.fraction if mask is not None else 0.0)


def _mask_regions(mask: np.ndarray) -> tuple[tuple[float, float, float, float], ...]:
    """The bounding boxes of a mask's parts, as profile regions (left, top, right, bottom fractions)."""
    h, w = mask.shape
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return tuple(
        (round(x / w, 4), round(y / h, 4), round((x + bw) / w, 4), round((y + bh) / h, 4))
        for x, y, bw, bh, _ in stats[1:]
    )


def _cmd_calibrate(args: argparse.Namespace, cfg: Config) -> int:
    result = calibrate(args, cfg)
    print(result.intrinsics_line)
    print(result.mount_line)
    print(f"static mask: {result.mask_fraction:.1%} of the frame (stamp, logo, bonnet), learnt from the drive")
    print(f"profile written: {args.out}" + (f"; check picture: {args.check}" if args.check else ""))
    print(f"use it with: detector run VIDEO --set drive.camera={args.out}")
    return 0


def register(sub: argparse._SubParsersAction, handlers: Handlers, common: AddCommon) -> None:
    """Add ``calibrate`` to the ``detector`` parser."""
    cal = sub.add_parser(
        "calibrate",
        help="write a camera profile for a vehicle: lens from a checkerboard or the drive, mount angles from a drive",
        description="Measure a vehicle camera: focal length and lens distortion from views of a printed "
        "checkerboard (--board, a video or photos; or --intrinsics from an earlier profile; with neither, from the "
        "drive itself: the vanishing points of its road and of upright edges), pitch, roll and yaw "
        "of the mount from an ordinary drive (--drive with its GPS track), and the pixels that never move (stamp, "
        "bonnet). Height and antenna offset are measured by hand. The profile is written only when complete.",
    )
    lens = cal.add_mutually_exclusive_group()
    lens.add_argument("--board", type=Path, nargs="+", metavar="PATH", help="board video(s), photos or folders")
    lens.add_argument("--intrinsics", type=Path, metavar="PROFILE", help="take the lens from this profile instead")
    cal.add_argument("--board-size", default="9x6", help="inner corners COLUMNSxROWS (default 9x6)")
    cal.add_argument("--square-mm", type=float, default=25.0, help="side of one printed square, mm (default 25)")
    cal.add_argument("--lens", choices=["auto", "pinhole", "fisheye"], default="auto", help="lens model (default auto)")
    cal.add_argument("--drive", type=Path, required=True, help="an ordinary drive video with some straight road")
    cal.add_argument("--gps", type=Path, help="its GPS track (default: beside the video)")
    cal.add_argument("--height-m", type=float, required=True, help="lens height above the road, metres")
    cal.add_argument("--antenna-offset", metavar="FORWARD,RIGHT", help="camera position from the GPS antenna, metres")
    cal.add_argument("--out", type=Path, required=True, help="the camera profile to write (YAML)")
    cal.add_argument("--check", type=Path, help="write the check picture here (JPEG)")
    cal.add_argument("--name", help="the profile's name (default: the file's stem)")
    cal.add_argument("--store-mask", action="store_true", help="keep the learnt static regions in the profile")
    common(cal)
    handlers["calibrate"] = (_cmd_calibrate, {})
