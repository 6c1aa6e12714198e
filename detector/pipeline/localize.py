"""Place detections on the map: ground contact point → range and offset → latitude and longitude.

The bottom centre of a box is where a hazard meets the road (for a plate too wide to stand there, a
leaning sign's, a range from its width instead; a sign plate of ``localize.plate_classes``, on its pole or not, is
always ranged by its width: :func:`plate_points`). Through the camera model it
becomes a (forward, right) offset from the GPS antenna on a flat road, which the vehicle's
heading rotates into east/north metres in the trajectory's local frame (an azimuthal
equidistant projection around the drive, see :mod:`detector.geo`).
"""

from __future__ import annotations

import math

import numpy as np

from detector.camera import CameraModel
from detector.config.pipeline import LocalizeConfig
from detector.detections import Detections
from detector.geo import LocalFrame
from detector.records import SampledFrame, Sighting

PLATE_WIDTH_SPREAD = 0.3  # 1-sigma relative spread of sign plate widths (about 0.6-1.2 m): a placement by size


def position_sigma(range_m: np.ndarray, lateral_m: np.ndarray, camera: CameraModel, s: LocalizeConfig) -> np.ndarray:
    """1-sigma position error of a ground point: GPS, heading error across, pitch error along the range.

    A pitch error δ moves a ground point at range r by about r²/h·δ (h: camera height), which
    is why far detections are placed so much more loosely than near ones.
    """
    dist = np.hypot(range_m, lateral_m)
    across = dist * math.radians(s.heading_sigma_deg)
    along = range_m**2 / camera.height_m * math.radians(s.pitch_sigma_deg)
    sigma = np.sqrt(s.gps_sigma_m**2 + across**2 + along**2)
    return np.where(range_m > s.max_range_m, sigma * s.far_uncertainty_factor, sigma)


def plate_points(
    cam: CameraModel, xyxy: np.ndarray, plate_width_m: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Where sign plates stand if they are ``plate_width_m`` wide: along the ray through each box's centre, at the
    depth where the box (``xyxy``, pixels of ``cam``'s frame) spans that width. Returns forward, right, height over
    the road (metres, vehicle frame) and the undistorted box width in pixels.

    >>> cam = CameraModel(width=1280, height=720, hfov_deg=90.0, height_m=1.4, pitch_deg=0.0)
    >>> f, r, up, px = plate_points(cam, np.array([[1000.0, 300.0, 1064.0, 340.0]]), 0.8)
    >>> round(float(f[0]), 2), round(float(r[0]), 2), round(float(up[0]), 2)
    (8.0, 4.91, 1.89)
    """
    cu, cv = (xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2
    left, _ = cam.normalized(xyxy[:, 0], cv)
    right, _ = cam.normalized(xyxy[:, 2], cv)
    ideal_px = np.abs(right - left) * cam.focal
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(ideal_px > 0, plate_width_m * cam.focal / ideal_px, np.nan)
    ray = cam.rays(cu, cv)  # forward, right, down per unit depth along the optical axis
    return (
        cam.offset_forward_m + depth * ray[:, 0],
        cam.offset_right_m + depth * ray[:, 1],
        cam.height_m - depth * ray[:, 2],
        ideal_px,
    )


def localize(
    frame: SampledFrame,
    detections: Detections,
    classes: list[str],
    camera: CameraModel,
    local: LocalFrame,
    settings: LocalizeConfig,
) -> list[Sighting]:
    """Sightings for the detections of one frame; boxes that do not touch the road are dropped.

    A box whose bottom edge is at or above the horizon has no ground point, and a frame with no
    heading (a vehicle that has not yet moved) cannot orient its detections: neither yields a
    sighting, so no hazard ever lands at a nonsense position.
    """
    if not len(detections) or not math.isfinite(frame.heading):
        return []
    cam = camera.scaled_to(frame.image.shape[1], frame.image.shape[0])
    contact = detections.bottom_center()
    forward, right = cam.pixel_to_ground(contact[:, 0], contact[:, 1])
    contact_range = forward
    # A flat hazard's box spans it on the road from near edge (bottom) to far edge (top): its
    # centre is midway between the two ground points, half its depth beyond the contact point.
    flat_class = np.isin([classes[int(c)] for c in detections.class_id], settings.flat_classes)
    far_fwd, far_right = cam.pixel_to_ground(contact[:, 0], detections.xyxy[:, 1])
    flat = flat_class & np.isfinite(far_fwd) & (far_fwd > forward)
    forward = np.where(flat, (forward + far_fwd) / 2, forward)
    right = np.where(flat, (right + far_right) / 2, right)
    box_px = detections.xyxy[:, 2] - detections.xyxy[:, 0]
    ideal_px = box_px
    if cam.distorted:  # a wide lens squeezes pixels towards the edges: measure the box's sides undistorted
        left, _ = cam.normalized(detections.xyxy[:, 0], contact[:, 1])
        right_side, _ = cam.normalized(detections.xyxy[:, 2], contact[:, 1])
        ideal_px = np.abs(right_side - left) * cam.focal
    width = ideal_px * cam.metres_per_pixel(contact[:, 0], contact[:, 1])
    # A leaning plate hangs above the road: the ray through its box's lower edge meets the ground metres beyond
    # it, where the box would be far wider than any plate. Such a sighting is pulled back along that ray to
    # where the box is a typical plate's width, and placed more loosely (plates differ in size). A box too
    # narrow to range by (a detector draws a far plate a few pixels too wide, so it would land metres short,
    # sliding along with the vehicle) is not placed: nearer frames will show the plate larger. Nor is a box whose
    # lower edge is level with the camera (it meets the road beyond max_contact_range_m): a plate on its pole.
    with np.errstate(invalid="ignore"):
        hanging = ~flat_class & (width > settings.max_plate_width_m)
    unmeasurable = hanging & (box_px * camera.width / cam.width < settings.min_plate_px)
    unmeasurable |= ~flat_class & (contact_range > settings.max_contact_range_m)
    shrink = np.divide(settings.plate_width_m, width, out=np.ones_like(width), where=hanging)
    forward = cam.offset_forward_m + (forward - cam.offset_forward_m) * shrink
    right = cam.offset_right_m + (right - cam.offset_right_m) * shrink
    width = np.where(hanging, settings.plate_width_m, width)
    sigma = position_sigma(forward, right, cam, settings)
    sigma = np.where(hanging, np.hypot(sigma, PLATE_WIDTH_SPREAD * forward), sigma)
    plate = np.isin([classes[int(c)] for c in detections.class_id], settings.plate_classes)
    if plate.any():  # a sign plate: ranged by its width alone (its box's lower edge may be metres above the road)
        plate_fwd, plate_right, _, _ = plate_points(cam, detections.xyxy, settings.plate_width_m)
        forward, right = np.where(plate, plate_fwd, forward), np.where(plate, plate_right, right)
        width = np.where(plate, settings.plate_width_m, width)
        small = box_px * camera.width / cam.width < settings.plate_min_px
        unmeasurable = np.where(plate, small, unmeasurable)
        plate_sigma = np.hypot(position_sigma(forward, right, cam, settings), PLATE_WIDTH_SPREAD * forward)
        sigma = np.where(plate, plate_sigma, sigma)
    ok = np.isfinite(forward) & (forward > 0) & ~unmeasurable
    if not ok.any():
        return []
    h = math.radians(frame.heading)
    x0, y0 = local.to_xy(frame.lat, frame.lon)
    east = x0 + forward * math.sin(h) + right * math.cos(h)
    north = y0 + forward * math.cos(h) - right * math.sin(h)
    lat, lon = local.to_latlon(east, north)
    lat, lon = np.atleast_1d(lat), np.atleast_1d(lon)
    return [
        Sighting(
            drive_id=frame.drive_id,
            frame_index=frame.frame_index,
            utc=frame.utc,
            odometer_m=frame.distance_m,
            class_name=classes[int(detections.class_id[i])],
            confidence=float(detections.confidence[i]),
            lat=float(lat[i]),
            lon=float(lon[i]),
            range_m=float(forward[i]),
            lateral_m=float(right[i]),
            uncertainty_m=float(sigma[i]),
            width_m=float(width[i]),
            bbox=tuple(float(c) for c in detections.xyxy[i]),
            vehicle_lat=frame.lat,
            vehicle_lon=frame.lon,
            heading=frame.heading,
            far=bool(forward[i] > settings.max_range_m),
        )
        for i in np.flatnonzero(ok)
    ]
