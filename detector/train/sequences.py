"""Real frame sequences: the survey vehicle's consecutive frames of one road, and what the hazard rule confirms there.

DNIT's images are frames a few metres apart along highway segments (``<frame>_<state>_<highway>_<segment>_<pos>``);
runs of consecutive frame numbers in one segment are short drives with labelled potholes. They carry no GPS, so
the pipeline's own localizer cannot place them; instead the road's motion between two frames is modelled from
the lane itself. The annotated lane (``lane_masks/``) is a trapezoid whose edges meet at the vanishing point
``(x_v, y_h)``; a point of a flat road at row ``y`` lies at a depth proportional to ``1 / (y - y_h)``, so driving
forward moves it to the row ``y'`` with ``1 / (y' - y_h) = 1 / (y - y_h) - k`` and scales its offset from the
vanishing point likewise (:func:`advance`). One number per pair of frames, ``k``, is fitted to the labelled boxes
(:func:`fit_advance`).

Labelled boxes linked frame to frame are the true potholes' tracks; detections linked the same way, where they
find no labelled box, are false tracks. As in the pipeline, boxes that touch are one pothole (loose labels put
several boxes on one, and the deduplicator merges sightings within ``dedup.radius_m``), and a frame is one view of
it, its surest box there. :func:`confirmed_tracks` then applies the pipeline's own confirmation rule
(:func:`detector.pipeline.dedup.within_drive.confirms`) to each track's views.

>>> road = RoadGeometry(x_v=500.0, y_h=-100.0)
>>> advance(np.array([[500.0, 100.0], [600.0, 100.0]]), road, k=0.0025).round(1).tolist()  # 200 px below: 400
[[500.0, 300.0], [700.0, 300.0]]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from detector.detections import Detections, box_iou, centres_in
from detector.train.dataset import dnit_segment

K_GRID = np.linspace(0.0, 0.012, 121)  # 1 / px: from standing still to about 8 m between frames on DNIT's camera


@dataclass(frozen=True)
class RoadGeometry:
    """Where a straight road's edges meet in the picture: the vanishing point."""

    x_v: float
    y_h: float


def lane_geometry(mask: np.ndarray) -> RoadGeometry | None:
    """The vanishing point of a lane mask's left and right edges (least-squares lines through them)."""
    rows = [y for y in range(0, mask.shape[0], 8) if (mask[y] > 0).sum() > 4]
    if len(rows) < 4:
        return None
    left = np.array([np.flatnonzero(mask[y] > 0)[0] for y in rows], float)
    right = np.array([np.flatnonzero(mask[y] > 0)[-1] for y in rows], float)
    inner = (left > 0) & (right < mask.shape[1] - 1)  # an edge cut by the frame is not the lane's
    if inner.sum() < 4:
        return None
    y = np.array(rows, float)[inner]
    a1, b1 = np.polyfit(y, left[inner], 1)
    a2, b2 = np.polyfit(y, right[inner], 1)
    if abs(a1 - a2) < 1e-6:
        return None
    y_h = (b2 - b1) / (a1 - a2)
    return RoadGeometry(float(a1 * y_h + b1), float(y_h))


def advance(points: np.ndarray, road: RoadGeometry, k: float) -> np.ndarray:
    """Where road points (N, 2) of one frame are in the next, the vehicle having driven ``k`` (see the module)."""
    dy = np.maximum(points[:, 1] - road.y_h, 1e-3)
    inv = 1.0 / dy - k
    dy2 = np.where(inv > 1e-6, 1.0 / np.maximum(inv, 1e-6), 1e6)  # passed under the camera: far below the frame
    return np.column_stack([road.x_v + (points[:, 0] - road.x_v) * dy2 / dy, road.y_h + dy2])


def advance_boxes(boxes: np.ndarray, road: RoadGeometry, k: float) -> np.ndarray:
    """Boxes (N, 4) carried into the next frame by their corners."""
    if not len(boxes):
        return boxes.reshape(0, 4)
    top = advance(boxes[:, [0, 1]], road, k)
    bottom = advance(boxes[:, [2, 3]], road, k)
    top_right = advance(boxes[:, [2, 1]], road, k)
    bottom_left = advance(boxes[:, [0, 3]], road, k)
    xs = np.column_stack([top[:, 0], bottom[:, 0], top_right[:, 0], bottom_left[:, 0]])
    return np.column_stack([xs.min(1), top[:, 1], xs.max(1), bottom[:, 1]])


def _links(moved: np.ndarray, nxt: np.ndarray, min_iou: float = 0.1) -> list[tuple[int, int]]:
    """One-to-one links from carried boxes to the next frame's: centre inside, or overlapping; closest first."""
    pairs = []
    for i, box in enumerate(moved):
        if not len(nxt):
            break
        iou = box_iou(box, nxt)
        inside = centres_in(box, nxt)[0]
        for j in np.flatnonzero(inside | (iou >= min_iou)):
            pairs.append((-float(iou[j]) - float(inside[j]), i, int(j)))
    taken_i: set[int] = set()
    taken_j: set[int] = set()
    out = []
    for _, i, j in sorted(pairs):
        if i not in taken_i and j not in taken_j:
            out.append((i, j))
            taken_i.add(i)
            taken_j.add(j)
    return out


def fit_advance(a: np.ndarray, b: np.ndarray, road: RoadGeometry) -> tuple[float, int]:
    """The ``k`` that carries most of frame ``a``'s labelled boxes onto frame ``b``'s, and how many it links."""
    best_k, best_n, best_score = 0.0, 0, -1.0
    for k in K_GRID:
        moved = advance_boxes(a, road, k)
        links = _links(moved, b)
        score = sum(float(box_iou(moved[i], b[j : j + 1])[0]) for i, j in links) + len(links)
        if score > best_score:
            best_k, best_n, best_score = float(k), len(links), score
    return best_k, best_n


@dataclass(frozen=True)
class Frame:
    """One frame of a sequence: labelled pothole boxes and the detector's boxes (confidence kept)."""

    path: Path
    truth: np.ndarray  # (N, 4): potholes
    found: Detections  # every class


@dataclass
class PotholeTrack:
    """A pothole followed through a sequence: the frames it is in, and per frame the confidence of its surest
    sighting there (``views``). One frame is one view, however many boxes it put on the pothole: the pipeline
    confirms a hazard from its views (:func:`detector.pipeline.dedup.within_drive.views`)."""

    true: bool
    frames: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)  # where it is in each of those frames
    views: dict[int, float] = field(default_factory=dict)

    @property
    def sightings(self) -> list[float]:
        return [self.views[f] for f in sorted(self.views)]

    @property
    def detected_run(self) -> int:
        """The most consecutive frames it was detected in."""
        best = run = 0
        for f in range(min(self.views, default=0), max(self.views, default=-1) + 1):
            run = run + 1 if f in self.views else 0
            best = max(best, run)
        return best


def group_touching(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes that overlap (or hold each other's centre) joined into one: the union boxes, and the group of each
    input box. Loose labels put several boxes on one pothole, and a detector several boxes on one patch; within
    ``dedup.radius_m`` of each other the pipeline's deduplicator makes them one hazard too.

    >>> union, group = group_touching(np.array([[0, 0, 10, 10], [8, 0, 20, 10], [40, 0, 50, 10]], float))
    >>> union.tolist(), group.tolist()
    ([[0.0, 0.0, 20.0, 10.0], [40.0, 0.0, 50.0, 10.0]], [0, 0, 1])
    """
    n = len(boxes)
    holds = centres_in(boxes, boxes)
    touch = holds | holds.T | np.array([box_iou(box, boxes) > 0 for box in boxes], bool).reshape(n, n)
    group = np.arange(len(boxes))
    for i, j in zip(*np.nonzero(touch), strict=True):
        group[group == group[j]] = group[i]
    _, group = np.unique(group, return_inverse=True)
    union = [[*boxes[group == g, :2].min(0), *boxes[group == g, 2:].max(0)] for g in range(group.max(initial=-1) + 1)]
    return np.array(union, float).reshape(-1, 4), group


def runs(images: list[Path], max_frame_gap: int = 2) -> list[list[Path]]:
    """DNIT images in runs of consecutive frames of one segment (two or more frames), in driving order."""
    keyed = sorted((dnit_segment(p.stem), int(p.stem.split("_")[0]), p) for p in images)
    out: list[list[Path]] = []
    for segment, number, path in keyed:
        last = out[-1][-1] if out else None
        if last and dnit_segment(last.stem) == segment and 0 < number - int(last.stem.split("_")[0]) <= max_frame_gap:
            out[-1].append(path)
        else:
            out.append([path])
    return [r for r in out if len(r) >= 2]


def _carry(
    tracks: list[PotholeTrack], before: tuple[np.ndarray, np.ndarray], boxes: np.ndarray, road: RoadGeometry,
    k: float, true: bool, f: int,
) -> np.ndarray:  # fmt: skip
    """The track of each of this frame's ``boxes``: the one whose box of the last frame (``before``: boxes, track
    ids) the road's motion carries onto it, else a new one."""
    ids = np.full(len(boxes), -1)
    last, last_ids = before
    if len(last) and len(boxes):
        for i, j in _links(advance_boxes(last, road, k), boxes):
            ids[j] = last_ids[i]
    for j, box in enumerate(boxes):
        if ids[j] < 0:
            tracks.append(PotholeTrack(true))
            ids[j] = len(tracks) - 1
        tracks[ids[j]].frames.append(f)
        tracks[ids[j]].boxes.append(box)
    return ids


def _see(track: PotholeTrack, f: int, confidence: float) -> None:
    track.views[f] = max(track.views.get(f, 0.0), confidence)


def follow(frames: list[Frame], road: RoadGeometry, conf: float, class_id: int = 0) -> list[PotholeTrack]:
    """True tracks, the labelled potholes (touching boxes joined) linked frame to frame, each seen in a frame by
    the surest sighting of ``class_id`` at ``conf`` whose centre falls in one of its boxes there; and false tracks,
    the sightings in no labelled box (touching ones joined), linked the same way. Only potholes are labelled: for
    another class every track is false."""
    tracks: list[PotholeTrack] = []
    empty = (np.zeros((0, 4)), np.zeros(0, int))
    true_before, false_before = empty, empty
    k = float(np.median(K_GRID))
    for f, frame in enumerate(frames):
        if f > 0 and len(frames[f - 1].truth) and len(frame.truth):  # the road's motion, from the labelled potholes
            fitted, linked = fit_advance(frames[f - 1].truth, frame.truth, road)
            k = fitted if linked else k
        truth = frame.truth if class_id == 0 else np.zeros((0, 4))
        union, group = group_touching(truth)
        ids = _carry(tracks, true_before, union, road, k, True, f)
        found = frame.found[(frame.found.confidence >= conf) & (frame.found.class_id == class_id)]
        inside = centres_in(found.xyxy, truth)
        # the first labelled box holding each detection's centre, or -1
        hit = np.where(inside.any(1), inside.argmax(1), -1) if len(truth) else np.full(len(found), -1)
        for d in np.flatnonzero(hit >= 0):
            _see(tracks[ids[group[hit[d]]]], f, float(found.confidence[d]))
        false = found[hit < 0]
        false_union, false_group = group_touching(false.xyxy)
        fids = _carry(tracks, false_before, false_union, road, k, False, f)
        for d, g in enumerate(false_group):
            _see(tracks[fids[g]], f, float(false.confidence[d]))
        true_before, false_before = (union, ids), (false_union, fids)
    return tracks


@dataclass(frozen=True)
class SequenceResult:
    """What the rule confirms over many sequences at one per-frame threshold."""

    conf: float
    frames: int
    long_tracks: int  # true potholes labelled in at least ``min_frames`` consecutive frames
    long_confirmed: int
    seen_tracks: int  # true potholes detected at ``conf`` in at least ``min_frames`` consecutive frames
    seen_confirmed: int
    true_tracks: int
    true_confirmed: int
    false_confirmed: int  # false tracks the rule confirms


def confirmed_tracks(
    sequences: list[tuple[list[Frame], RoadGeometry]], conf: float, confirms: Callable[[list[float]], bool],
    class_id: int = 0, min_frames: int = 3,
) -> SequenceResult:  # fmt: skip
    """Follow every sequence at ``conf`` and count the tracks ``confirms`` (a hazard's views -> bool) accepts."""
    frames = long_tracks = long_ok = seen_tracks = seen_ok = true_tracks = true_ok = false_ok = 0
    for seq, road in sequences:
        frames += len(seq)
        for t in follow(seq, road, conf, class_id):
            ok = bool(t.views) and confirms(t.sightings)
            if t.true:
                true_tracks += 1
                true_ok += ok
                if len(t.frames) >= min_frames:
                    long_tracks += 1
                    long_ok += ok
                if t.detected_run >= min_frames:
                    seen_tracks += 1
                    seen_ok += ok
            else:
                false_ok += ok
    return SequenceResult(conf, frames, long_tracks, long_ok, seen_tracks, seen_ok, true_tracks, true_ok, false_ok)


def load_sequences(
    images: list[Path], lanes: Path, detect: Callable[[np.ndarray], Detections], labels: Callable[[Path], np.ndarray],
) -> list[tuple[list[Frame], RoadGeometry]]:  # fmt: skip
    """The runs among ``images`` with their lane geometry (from the first frame's lane mask in ``lanes``), labelled
    pothole boxes (``labels``: image -> (N, 4) pixels) and the detections ``detect`` makes."""
    out = []
    for run in runs(images):
        mask = cv2.imread(str(lanes / f"{run[0].stem}.png"), cv2.IMREAD_GRAYSCALE)
        road = lane_geometry(mask) if mask is not None else None
        if road is None:
            continue
        frames = [Frame(path, labels(path), detect(cv2.imread(str(path)))) for path in run]
        out.append((frames, road))
    return out
