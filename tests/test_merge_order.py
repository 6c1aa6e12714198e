"""Cross-drive merging does not depend on the order drives arrive in: the same drives in any order confirm the same
hazards; hazards that turn out to be one are merged, with a pointer, and the city hears of each hazard once."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from test_geolocate import DEDUP, _drive_past
from test_hub import Hub, add_vehicle, count, push
from test_store import LOCAL, _drive
from test_tickets import api_key, config, query, serve  # noqa: F401 (fixtures: the 106 server, its key)

from detector.batch.jobs import find_jobs
from detector.batch.runner import run_batch
from detector.config import load_config
from detector.geo import LocalFrame
from detector.pipeline.dedup.across_drives import Piece, one_hazards
from detector.pipeline.dedup.within_drive import cluster_drive
from detector.review.i18n import Messages
from detector.review.routes.hazards import _detail
from detector.simulate import simulate_drive
from detector.simulate.oracle import oracle_for
from detector.store import HazardStore
from detector.store.merge import MergeSettings, merge_drive
from detector.store.review import ReviewSettings, merge
from detector.tickets.outbox import sync

# Five potholes along the test road; three drives past them, each with its own GPS error. The first is 6.6 m off:
# to the second (2.2 m off the other way) its nearest stored pothole is often its neighbour's.
POTHOLES = [(-2.1, 7.9, 0), (1.3, 27.4, 0), (-0.9, 42.2, 0), (-0.3, 50.0, 0), (2.9, 58.0, 0)]
GPS_ERRORS = [(-1.8, 6.3), (2.2, -1.6), (0.6, 0.6)]
# Three fallen signs every drive sees in place (no GPS error): they fix each drive's offset to the map at zero.
SIGNS = [(-1.5, 40.0, 1), (-1.5, 60.0, 1), (1.5, 70.0, 1)]

ENGLISH = Messages("en", {})


class GpsError:
    """Stands in for ``_drive_past``'s random generator: the drive's GPS error, as given."""

    def __init__(self, error: tuple[float, float]) -> None:
        self.error = np.array(error)

    def normal(self, *_: object) -> np.ndarray:
        return self.error


def _sightings(name: str, hazards, error=(0.0, 0.0)):
    return _drive_past(LOCAL, hazards, GpsError(error), drive=name)


def _merge_in(store: HazardStore, name: str, sightings):
    return merge_drive(store, _drive(name, cluster_drive(sightings, LOCAL, DEDUP)), MergeSettings(DEDUP, 3.0))


def _confirmed(db: Path, local: LocalFrame = LOCAL) -> list[tuple[float, float, float]]:
    """The confirmed hazards: x, y in ``local`` and uncertainty, south to north."""
    rows = query(db, "SELECT lat, lon, uncertainty_m FROM hazards WHERE status = 'confirmed'")
    xy = [local.to_xy(r["lat"], r["lon"]) for r in rows]
    found = [(float(x), float(y), r["uncertainty_m"]) for (x, y), r in zip(xy, rows, strict=True)]
    return sorted(found, key=lambda h: h[1])


def _same_hazards(found: list[tuple[float, float, float]], expected: list[tuple[float, float, float]]) -> bool:
    """One to one, each within the two positions' joint uncertainty of its counterpart."""
    pairs = [
        min(range(len(expected)), key=lambda k: np.hypot(x - expected[k][0], y - expected[k][1])) for x, y, _ in found
    ]
    return len(found) == len(expected) == len(set(pairs)) and all(
        np.hypot(x - expected[k][0], y - expected[k][1]) <= np.hypot(u, expected[k][2])
        for (x, y, u), k in zip(found, pairs, strict=True)
    )


def test_the_six_orders_of_three_drives_confirm_the_same_hazards(tmp_path: Path):
    drives = {f"d{k}": _sightings(f"d{k}", POTHOLES, e) for k, e in enumerate(GPS_ERRORS)}
    found = {}
    for order in itertools.permutations(drives):
        db = tmp_path / f"{'-'.join(order)}.db"
        with HazardStore(db) as store:
            for name in order:
                _merge_in(store, name, drives[name])
        found[order] = _confirmed(db)
    first = found[next(iter(found))]
    assert len(first) == len(POTHOLES)  # one each: no duplicate, none lost
    for (x, y, u), (tx, ty, _) in zip(first, sorted(POTHOLES, key=lambda p: p[1]), strict=True):
        assert np.hypot(x - tx, y - ty) <= 2 * u  # in place, within its uncertainty
    for order, hazards in found.items():
        assert _same_hazards(hazards, first), order


def _split_pothole(store: HazardStore) -> None:
    """Drive a sees a pothole 20 m up the road, drive b 27 m: 7 m apart, with the signs placing both drives' GPS
    where the map is, two hazards."""
    _merge_in(store, "a", _sightings("a", [(1.0, 20.0, 0), *SIGNS]))
    _merge_in(store, "b", _sightings("b", [(1.0, 27.0, 0), *SIGNS]))


def test_hazards_one_drive_shows_to_be_one_are_merged_and_the_city_hears_once(serve, store_address):  # noqa: F811
    """Drive c, in between, sees the pothole at 23.3 m: with three drives' evidence the two stored hazards lie
    within their joint uncertainty, so they are one. The first already has its 106 request: it keeps its id and
    its request; the second, queued but not sent, is merged into it, its request cancelled."""
    server = serve()
    cfg = config(server.url)
    db = store_address
    with HazardStore(db) as store:
        _merge_in(store, "a", _sightings("a", [(1.0, 20.0, 0), *SIGNS]))
    assert sync(cfg, db)[0].opened == 4  # the pothole and the three signs
    with HazardStore(db) as store:
        assert _merge_in(store, "b", _sightings("b", [(1.0, 27.0, 0), *SIGNS])).new == 1
        potholes = [r["id"] for r in store.query("SELECT id FROM hazards WHERE class = 'pothole' ORDER BY id")]
        assert len(potholes) == 2 and store.query("SELECT state FROM outbox WHERE hazard_id = ?", (potholes[1],))
        report = _merge_in(store, "c", _sightings("c", [(1.0, 23.3, 0), *SIGNS]))
    assert report.joined == 1 and "1 stored hazards merged into others" in report.line()
    first, second = (query(db, "SELECT * FROM hazards WHERE id = ?", (i,))[0] for i in potholes)
    assert (first["status"], first["drive_count"], first["sighting_count"] > 0) == ("confirmed", 3, True)
    assert (second["status"], second["merged_into"], second["sighting_count"]) == ("merged", first["id"], 0)
    assert not query(db, "SELECT * FROM outbox WHERE hazard_id = ?", (second["id"],))  # cancelled, never sent
    (event,) = query(db, "SELECT * FROM events WHERE hazard_id = ? AND action = 'merge'", (second["id"],))
    assert event["actor"] == "pipeline" and json.loads(event["detail"])["request"] == "cancelled"
    assert sync(cfg, db)[0].opened == 0
    assert len(server.rows()) == 4  # one request per hazard, the pothole's once
    with HazardStore(db) as store:  # the review app: "merged into #N", and the one kept shows both histories
        assert _detail(store, second["id"], None, ENGLISH)["hazard"]["merged_into"] == first["id"]
        kept = _detail(store, first["id"], None, ENGLISH)
    assert kept["merged_from"] == [second["id"]]
    assert {(e["hazard_id"], e["action"]) for e in kept["events"]} >= {
        (first["id"], "ticket_opened"),
        (first["id"], "merge"),
        (second["id"], "merge"),
    }


def test_a_merged_hazards_queued_request_moves_to_the_one_it_merged_into(store_address):
    """Neither request sent yet: the hazard that stays keeps its own; the other's is cancelled. Where the one
    that stays has none (a candidate), the merged one's moves to it."""
    db = store_address
    with HazardStore(db) as store:
        _split_pothole(store)
        with store.transaction() as conn:  # the first one a candidate, not yet queued
            conn.execute("UPDATE hazards SET status = 'candidate' WHERE class = 'pothole' AND id = 1")
            conn.execute("DELETE FROM outbox WHERE hazard_id = 1")
        _merge_in(store, "c", _sightings("c", [(1.0, 23.3, 0), *SIGNS]))
    potholes = query(db, "SELECT id, status, merged_into FROM hazards WHERE class = 'pothole' ORDER BY id")
    kept = [r for r in potholes if r["status"] != "merged"]
    assert len(kept) == 1 and kept[0]["status"] == "confirmed"
    assert [r["merged_into"] for r in potholes if r["status"] == "merged"] == [kept[0]["id"]]
    assert [r["state"] for r in query(db, "SELECT state FROM outbox WHERE hazard_id = ?", (kept[0]["id"],))] == [
        "pending"
    ]
    assert len(query(db, "SELECT * FROM outbox o JOIN hazards h ON h.id = o.hazard_id WHERE h.class = 'pothole'")) == 1


def test_a_reviewer_merging_a_hazard_with_an_open_request_links_it_to_the_other(serve, store_address):  # noqa: F811
    """The merged hazard's request is already open at the city: the hazard it merges into takes it (its own,
    queued, is not needed), and nothing more is sent."""
    server = serve()
    cfg = config(server.url)
    db = store_address
    with HazardStore(db) as store:
        _merge_in(store, "a", _sightings("a", [(1.0, 20.0, 0)]))
    assert sync(cfg, db)[0].opened == 1
    with HazardStore(db) as store:
        _merge_in(store, "b", _sightings("b", [(1.0, 40.0, 0)]))  # far enough to stay apart
        source, target = (r["id"] for r in store.query("SELECT id FROM hazards ORDER BY id"))
        (ticket,) = store.query("SELECT service_request_id FROM tickets WHERE hazard_id = ?", (source,))
        outcome = merge(store, source, target, "ana", ReviewSettings(DEDUP, 3.0))
    assert json.loads(outcome.detail)["request"] == "linked"
    (moved,) = query(db, "SELECT * FROM tickets")
    assert (moved["hazard_id"], moved["service_request_id"]) == (target, ticket["service_request_id"])
    assert [r["state"] for r in query(db, "SELECT state FROM outbox")] == ["sent"]
    assert sync(cfg, db)[0].opened == 0 and len(server.rows()) == 1


@pytest.mark.parametrize("status", ["rejected", "repaired"])
def test_hazards_a_reviewer_closed_are_not_merged_by_the_pipeline(store_address, status: str):
    db = store_address
    with HazardStore(db) as store:
        _split_pothole(store)
        with store.transaction() as conn:
            conn.execute("UPDATE hazards SET status = ? WHERE class = 'pothole' AND id = 1", (status,))
        assert _merge_in(store, "c", _sightings("c", [(1.0, 23.3, 0), *SIGNS])).joined == 0
    assert query(db, "SELECT status FROM hazards WHERE id = 1")[0][0] == status


@pytest.fixture(scope="module")
def three_drives(tmp_path_factory) -> Path:
    """Three short drives over the same simulated streets."""
    root = tmp_path_factory.mktemp("drives")
    for seed in (1, 2, 3):
        settings = {"world_seed": 5, "drive_seed": seed, "duration_s": 10, "width": 640, "height": 360}
        simulate_drive(root / f"drive{seed}", settings, progress=False)
    return root


@pytest.mark.slow
def test_two_vans_pushing_the_same_drives_at_once_give_what_a_sequential_batch_gives(three_drives, tmp_path):
    """Van a pushes drives 3 and 1 while van b pushes drive 2 to one hub: the hub merges them in whatever order the
    uploads land, and confirms what ``detector batch`` confirms from the drives one by one."""
    videos = [three_drives / f"drive{seed}" / "drive.mp4" for seed in (1, 2, 3)]
    batch_db = tmp_path / "batch.db"
    cfg = load_config(overrides=["tickets.mode=off", "run.progress=false"])
    summary = run_batch(find_jobs([str(v) for v in videos]), cfg, batch_db, report=lambda line: None,
                        detector=oracle_for)  # fmt: skip
    assert not summary.failures
    central = tmp_path / "central.db"
    tokens = {name: add_vehicle(central, name) for name in ("van-a", "van-b")}
    hub = Hub(central)
    try:
        url = f"http://127.0.0.1:{hub.port}"
        procs = [push(tmp_path / name / "local.db", url, tokens[name], order)
                 for name, order in (("van-a", [videos[2], videos[0]]), ("van-b", [videos[1]]))]  # fmt: skip
        for proc in procs:
            output = proc.communicate(timeout=300)[0]
            assert proc.returncode == 0 and "0 still queued, 0 refused" in output, output
    finally:
        hub.stop()
    assert count(central, "SELECT count(*) FROM drives") == 3
    (origin,) = query(batch_db, "SELECT lat, lon FROM hazards ORDER BY id LIMIT 1")
    local = LocalFrame(origin["lat"], origin["lon"])
    batch_found = _confirmed(batch_db, local)
    assert batch_found and _same_hazards(_confirmed(central, local), batch_found)


def _piece(hazard_id: int, trip: str, x: float, sightings: int = 5) -> Piece:
    return Piece(hazard_id, "pothole", trip, x, 0.0, 3.0, sightings)


def test_what_each_drive_saw_is_grouped_strongest_first_never_two_pieces_of_one_drive():
    # Drive c saw the pothole between where a and b put it, and a faint box 1 m from b's: a, b and c are one;
    # the faint box, of drive c again, stays out.
    pieces = [_piece(1, "a", 0.0), _piece(1, "c", 2.0), _piece(2, "b", 5.0), _piece(2, "c", 6.0, sightings=1)]
    assert one_hazards(pieces, DEDUP) == [[1, 2]]
    assert one_hazards(pieces[::-1], DEDUP) == [[1, 2]]
    # One drive saw two potholes 3 m apart: never one, even where another drive's lies between them.
    apart = [_piece(1, "a", 0.0), _piece(2, "a", 3.0)]
    assert one_hazards(apart, DEDUP) == []
    assert [len(g) for g in one_hazards([*apart, _piece(3, "b", 1.4)], DEDUP)] == [2]
    assert one_hazards([_piece(1, "a", 0.0), _piece(2, "b", 7.0)], DEDUP) == []  # beyond the gate


def test_a_lone_hazard_seen_on_many_drives_takes_no_part_in_the_grouping(monkeypatch):
    # A pothole 40 m away, passed on 300 drives, can be one with no other: the same groups with it as without it,
    # and the grouping never looks at its pieces (a merge must not grow with the square of the drives).
    import detector.pipeline.dedup.across_drives as across

    pieces = [_piece(1, "a", 0.0), _piece(1, "c", 2.0), _piece(2, "b", 5.0), _piece(2, "c", 6.0, sightings=1)]
    lone = [_piece(9, f"trip-{k:03d}", 40.0 + (k % 7) * 0.3) for k in range(300)]
    looked_at: list[int] = []
    real_points = across.points
    monkeypatch.setattr(across, "points", lambda xy: looked_at.append(len(np.atleast_2d(xy))) or real_points(xy))
    assert one_hazards([*pieces, *lone], DEDUP) == one_hazards(pieces, DEDUP) == [[1, 2]]
    assert max(looked_at) == len(pieces)
    # Within reach of another hazard of its class, its pieces are grouped again.
    near = [_piece(8, "z", 43.0), *lone]
    assert one_hazards(near, DEDUP) == [[8, 9]]
