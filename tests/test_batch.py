"""``detector batch``: real worker processes, a real Dask LocalCluster, real SQLite; simulated drives.

The detector is the simulator's oracle (``run_batch(..., detector=oracle_for)``): what is under test is the
batch machinery (skipping, failures, ordering, merging), not the model.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT

from detector.batch.jobs import find_jobs
from detector.batch.runner import run_batch
from detector.cli import main
from detector.config import load_config
from detector.run import run_drive
from detector.simulate import simulate_drive
from detector.simulate.oracle import oracle_for
from detector.store import HazardStore

pytestmark = pytest.mark.slow
SETTINGS = ["--set", "tickets.mode=off", "-q"]


def oracle_batch(paths: list[str], db: Path, index: Path | None = None, **how) -> str:
    """``detector batch`` over simulated drives with the oracle as detector: its summary lines (failures named)."""
    cfg = load_config(overrides=["tickets.mode=off", "run.progress=false"])
    summary = run_batch(find_jobs(paths, index), cfg, db, report=lambda line: None, detector=oracle_for, **how)
    return "\n".join(summary.lines())


@pytest.fixture(scope="module")
def drives(tmp_path_factory) -> Path:
    """Two short drives over the same simulated streets, and a corrupt video with a good track."""
    root = tmp_path_factory.mktemp("drives")
    for seed in (1, 2):
        settings = {"world_seed": 5, "drive_seed": seed, "duration_s": 10, "width": 640, "height": 360}
        simulate_drive(root / f"drive{seed}", settings)
    (root / "broken").mkdir()
    (root / "broken" / "drive.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    shutil.copy(root / "drive1" / "drive.gpx", root / "broken" / "drive.gpx")
    return root


def hazards(db: Path) -> list[tuple]:
    with HazardStore(db) as store:
        rows = store.query(
            "SELECT class, round(lat, 7), round(lon, 7), status, sighting_count, drive_count FROM hazards ORDER BY id"
        )
    return [tuple(r) for r in rows]


def sequential(drives: Path, db: Path, out: Path) -> list[tuple]:
    """What ``detector run`` gives, drive after drive in path order."""
    cfg = load_config(overrides=["tickets.mode=off", "run.progress=false"])
    for video in sorted(drives.glob("drive*/drive.mp4")):
        run_drive(video, None, cfg, out / video.parent.name, db, oracle_for(video, cfg))
    return hazards(db)


def test_dask_cluster_matches_sequential_runs_and_resumes(drives, tmp_path):
    from distributed import LocalCluster

    expected = sequential(drives, tmp_path / "seq.db", tmp_path)
    assert expected, "the oracle should find hazards on these drives"
    db = tmp_path / "batch.db"
    with LocalCluster(
        host="127.0.0.1", n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        local_directory=str(tmp_path / "dask"),
    ) as cluster:  # fmt: skip
        out = oracle_batch([str(drives)], db, scheduler=cluster.scheduler_address)
        assert "3 drives: 2 processed, 0 already in the store, 1 failed" in out  # some drives failed, others merged
        broken = [line for line in out.splitlines() if line.startswith("failed:")]
        assert len(broken) == 1 and "broken" in broken[0] and "drive.mp4: cannot open video" in broken[0]
        assert hazards(db) == expected  # same store as sequential runs, whatever order the workers finished in

        out = oracle_batch([str(drives)], db, scheduler=cluster.scheduler_address)
        assert "3 drives: 0 processed, 2 already in the store, 1 failed" in out
        assert hazards(db) == expected
    # evidence frames came back from the cluster and sit beside the store
    with HazardStore(db) as store:
        paths = [r[0] for r in store.query("SELECT evidence_path FROM sightings WHERE evidence_path IS NOT NULL")]
        assert paths and all((store.evidence_dir / p).is_file() for p in paths)


def test_local_workers_and_index_file(drives, tmp_path):
    expected = sequential(drives, tmp_path / "seq.db", tmp_path)
    index = tmp_path / "index.csv"
    lines = ["video,gps,gps_offset_s"]
    for name in ("drive2", "drive1"):  # listed out of order: merged in path order all the same
        lines.append(f"{drives / name / 'drive.mp4'},{drives / name / 'drive.gpx'},0")
    index.write_text("\n".join(lines) + "\n")
    db = tmp_path / "local.db"
    out = oracle_batch([], db, index, workers=2)
    assert "2 drives: 2 processed, 0 already in the store, 0 failed" in out
    assert hazards(db) == expected


def test_every_drive_failing_and_user_mistakes(drives, tmp_path, capsys):
    db = tmp_path / "h.db"
    assert main(["batch", str(drives / "broken"), "--db", str(db), *SETTINGS]) == 2
    assert main(["batch", str(tmp_path / "nowhere"), "--db", str(db), *SETTINGS]) == 2
    err = capsys.readouterr().err
    assert "nowhere: no such file or folder" in err and "Traceback" not in err
    bad = tmp_path / "bad.csv"
    bad.write_text("path\nx.mp4\n")
    assert main(["batch", "--index", str(bad), "--db", str(db), *SETTINGS]) == 2
    assert "bad.csv: index file needs a header with a 'video' column" in capsys.readouterr().err


def batch_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "detector", "batch", *args, "-q"], capture_output=True, text=True,
                          cwd=PROJECT, timeout=300)  # fmt: skip


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (bytes(range(128, 256)), "not a UTF-8 text file"),
        (b"video,gps\nv\x00.mp4,\n", "holds a NUL byte"),
        (b"video,gps,gps_offset_s\nv.mp4,,nan\n", "line 2: gps_offset_s 'nan' is not a finite number"),
        (b"video,gps,gps_offset_s\nv.mp4,,1e400\n", "line 2: gps_offset_s '1e400' is not a finite number"),
        (b"video,gps,gps_offset_s\nv.mp4,,-inf\n", "line 2: gps_offset_s '-inf' is not a finite number"),
        (b"video,gps,gps_offset_s\nv.mp4,,1e10\n", "line 2: gps_offset_s '1e10' is not a finite number"),
    ],
    ids=["binary", "nul", "nan", "1e400", "-inf", "1e10"],
)
def test_an_index_that_is_no_text_or_names_no_finite_offset_is_one_line(tmp_path: Path, content: bytes, needle: str):
    index = tmp_path / "index.csv"
    index.write_bytes(content)
    result = batch_cli("--index", str(index), "--db", str(tmp_path / "h.db"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "index.csv" in line and needle in line, line


def test_a_drive_another_run_merged_while_the_batch_worked_is_skipped(drives, tmp_path, monkeypatch):
    """The batch looked (the drive absent), then a ``run`` of it merged first: the batch counts it as skipped
    where its merge died on the store's UNIQUE content_hash."""
    import detector.batch.runner as runner

    db = tmp_path / "h.db"
    drive1 = drives / "drive1" / "drive.mp4"
    cfg = load_config(overrides=["tickets.mode=off", "run.progress=false"])
    run_drive(drive1, None, cfg, tmp_path / "run", db, oracle_for(drive1, cfg))
    before = hazards(db)
    monkeypatch.setattr(runner, "drive_processed", lambda store, digest: False)  # looked before the run merged
    out = oracle_batch([str(drive1)], db)
    assert "1 drives: 0 processed, 1 already in the store, 0 failed" in out, out
    assert hazards(db) == before
