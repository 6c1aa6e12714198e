"""Files of a simulated drive: the video, the GPS log, the ground truth, the camera and the true track."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import av
import cv2
import gpxpy.gpx
import numpy as np
import yaml

from detector.geo import LocalFrame
from detector.simulate.motion import DriveMotion, GpsFixes
from detector.simulate.render import SimulatedCamera
from detector.simulate.world import World, sign_geometry

MAX_KBPS_720P30 = 1800  # caps the bit rate so that 60 s of 1280x720 at 30 fps stays under 15 MB


def utc_text(when: datetime) -> str:
    """``2026-06-01T07:30:00.033Z``: ISO 8601 UTC with milliseconds."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class VideoWriter:
    """H.264 (libx264, yuv420p) MP4 with a keyframe every second and the UTC ``creation_time``
    of its first frame in the container metadata."""

    def __init__(self, path: Path, camera: SimulatedCamera, fps: int, crf: int, creation_time: datetime) -> None:
        self._out = av.open(str(path), "w")
        self._out.metadata["creation_time"] = creation_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        stream = self._out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = camera.width, camera.height, "yuv420p"
        stream.gop_size = fps
        stream.codec_context.time_base = Fraction(1, fps)
        cap = max(200, round(MAX_KBPS_720P30 * camera.width * camera.height * fps / (1280 * 720 * 30)))
        stream.options = {
            "crf": str(crf),
            "preset": "medium",
            "x264-params": f"keyint={fps}:min-keyint={fps}:scenecut=0:vbv-maxrate={cap}:vbv-bufsize={2 * cap}",
        }
        self._stream = stream
        self._count = 0

    def write(self, bgr: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
        frame.pts = self._count
        self._count += 1
        for packet in self._stream.encode(frame):
            self._out.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._out.mux(packet)
        self._out.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_gpx(path: Path, fixes: GpsFixes, frame: LocalFrame, start_utc: datetime, name: str) -> None:
    """GPX 1.0 (which has per-point ``<speed>`` in m/s and ``<course>`` in degrees)."""
    lat, lon = frame.to_latlon(fixes.x, fixes.y)
    gpx = gpxpy.gpx.GPX()
    gpx.creator = "road-hazard-detector simulate"
    track = gpxpy.gpx.GPXTrack(name=name)
    segment = gpxpy.gpx.GPXTrackSegment()
    for k, t in enumerate(fixes.time_s):
        point = gpxpy.gpx.GPXTrackPoint(
            latitude=round(float(lat[k]), 7),
            longitude=round(float(lon[k]), 7),
            time=start_utc + timedelta(seconds=float(t)),
            speed=round(float(fixes.speed[k]), 2),
        )
        point.course = round(float(fixes.course[k]), 1)
        segment.points.append(point)
    track.segments.append(segment)
    gpx.tracks.append(track)
    path.write_text(gpx.to_xml(version="1.0"), encoding="utf-8")


def truth_features(world: World, frame: LocalFrame) -> list[dict]:
    """One GeoJSON Point feature per hazard (potholes and fallen signs; standing signs are not hazards).

    ``route_s_m`` is the hazard's distance along the route, to compare with a drive's span.
    """
    rows = []
    for p in world.potholes:
        rows.append(((p.x, p.y), {"class": "pothole", "id": p.id, "width_m": p.width_m, "on": p.on}, p.route_s))
    for s in world.signs:
        if s.hazard:
            centre = sign_geometry(s).centre
            props = {
                "class": "fallen_sign",
                "id": s.id,
                "width_m": round(s.art.width_m, 2),
                "pose": s.pose,
                "on": s.on,
                "sign": s.art.kind,
            }
            rows.append(((centre[0], centre[1]), props, s.route_s))
    features = []
    for (x, y), props, route_s in sorted(rows, key=lambda r: r[2]):
        lat, lon = frame.to_latlon(x, y)
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [round(float(lon), 8), round(float(lat), 8)]},
                "properties": {**props, "route_s_m": round(float(route_s), 1)},
            }
        )
    return features


def write_truth(path: Path, world: World, frame: LocalFrame) -> dict[str, int]:
    """Write ``truth.geojson``; returns the number of hazards per class."""
    features = truth_features(world, frame)
    doc = {"type": "FeatureCollection", "world_seed": world.seed, "features": features}
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    counts = {"pothole": 0, "fallen_sign": 0}
    for f in features:
        counts[f["properties"]["class"]] += 1
    return counts


def sign_features(world: World, frame: LocalFrame) -> list[dict]:
    """One GeoJSON Point feature per sign plate, standing or not (at the plate's centre), and per sign taken away
    since an earlier drive (``pose: removed``, where it stood). ``plate``: its corners as ``[lon, lat, z]`` (z metres
    over the road; top-left, top-right, bottom-right, bottom-left seen from the front), what the oracle projects;
    ``centre_z_m``: the plate centre's height over the road; ``tilt_deg``: the pole's lean from vertical."""
    rows = []
    for s in (*world.signs, *world.removed_signs):
        removed = s in world.removed_signs
        plate = sign_geometry(s).plate
        centre = plate.mean(axis=0)
        lat, lon = frame.to_latlon(plate[:, 0], plate[:, 1])
        props = {
            "id": s.id,
            "pose": "removed" if removed else s.pose,
            "standing": s.pose == "upright" and not removed,
            "damaged": s.damaged,
            "sign": s.art.kind,
            "width_m": round(s.art.width_m, 2),
            "centre_z_m": round(float(centre[2]), 2),
            "tilt_deg": round(s.tilt_deg, 1),
            "route_s_m": round(s.route_s, 1),
        }
        if not removed:
            props["plate"] = [[round(float(o), 8), round(float(a), 8), round(float(z), 3)]
                              for o, a, z in zip(lon, lat, plate[:, 2], strict=True)]  # fmt: skip
        rows.append((centre[0], centre[1], props))
    features = []
    for x, y, props in sorted(rows, key=lambda r: r[2]["route_s_m"]):
        lat, lon = frame.to_latlon(x, y)
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [round(float(lon), 8), round(float(lat), 8)]},
                "properties": props,
            }
        )
    return features


def write_signs(path: Path, world: World, frame: LocalFrame) -> int:
    """Write ``signs.geojson`` (:func:`sign_features`); returns the number of signs standing."""
    features = sign_features(world, frame)
    doc = {"type": "FeatureCollection", "world_seed": world.seed, "features": features}
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return sum(f["properties"]["standing"] for f in features)


def write_camera(path: Path, camera: SimulatedCamera, fps: int) -> None:
    """The camera model used for rendering: pinhole, no distortion, at the GPS antenna."""
    k = camera.matrix()
    doc = {
        "model": "pinhole",
        "width": camera.width,
        "height": camera.height,
        "fps": fps,
        "hfov_deg": camera.hfov_deg,
        "vfov_deg": round(camera.vfov_deg, 4),
        "fx": round(float(k[0, 0]), 4),
        "fy": round(float(k[1, 1]), 4),
        "cx": float(k[0, 2]),
        "cy": float(k[1, 2]),
        "height_m": camera.height_m,
        "pitch_deg": camera.pitch_deg,
        "roll_deg": camera.roll_deg,
        "antenna_offset_m": [0.0, 0.0, 0.0],
        "distortion": None,
        "conventions": "pitch down is positive; roll turns the camera clockwise seen from behind; "
        "pixel centres at integer coordinates",
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def write_trajectory(path: Path, drive: DriveMotion, frame: LocalFrame, fps: int, frames: int) -> None:
    """The true (noise-free) track at the video frame rate: ``time,lat,lon,speed,heading``."""
    t = np.arange(frames) / fps
    x, y, heading, speed = drive.state(t)
    lat, lon = frame.to_latlon(x, y)
    lines = ["time,lat,lon,speed,heading"]
    for k in range(frames):
        when = utc_text(drive.start_utc + timedelta(seconds=float(t[k])))
        lines.append(f"{when},{lat[k]:.8f},{lon[k]:.8f},{speed[k]:.3f},{heading[k]:.2f}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
