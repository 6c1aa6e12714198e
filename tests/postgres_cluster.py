"""A throwaway PostgreSQL + PostGIS cluster for the tests: initdb into a private folder, loopback only, stopped at
the end of the session. Tests that need it skip (with the reason) where the binaries or PostGIS are absent.

As root (CI containers), initdb refuses to run: the cluster then runs as the ``postgres`` OS user, who owns its
folder. The superuser's password reaches clients through ``PGPASSWORD`` (never a URL, never argv).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SUPERUSER = "detector"
TEMPLATE = "store_template"  # a database with PostGIS created once; each test's database is a copy of it


def pg_bin() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    """A running cluster: ``url(database)`` is a store address with no password in it."""

    port: int
    password: str
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str = "t") -> str:
        """A fresh database (a copy of the PostGIS template); its address."""
        import psycopg

        name = f"{prefix}_{next(self._numbers)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}" TEMPLATE {TEMPLATE}')
        return self.url(name)


class ClusterUnavailable(Exception):
    """Why no cluster could start here (a test skips with it)."""


def _as_owner(owner: str | None, argv: list[str]) -> list[str]:
    return ["runuser", "-u", owner, "--", *argv] if owner else argv


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """Start a cluster, yield it, stop it and delete its folder (even when a test failed)."""
    binaries = pg_bin()
    if binaries is None:
        raise ClusterUnavailable("PostgreSQL binaries (initdb) not found: apt-get install postgresql")
    try:
        import psycopg
    except ImportError:
        raise ClusterUnavailable("psycopg is not installed: pip install -e '.[postgres]'") from None
    owner = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise ClusterUnavailable("running as root and no 'postgres' OS user to run the cluster as") from None
        owner = "postgres"
    root = Path(tempfile.mkdtemp(prefix="detector-pg-"))
    data, sockets, log = root / "data", root / "sockets", root / "server.log"
    sockets.mkdir()
    password = secrets.token_urlsafe(16)
    (root / "pwfile").write_text(password + "\n")
    if owner:
        shutil.chown(root, owner)
        for path in (sockets, root / "pwfile"):
            shutil.chown(path, owner)
    port = free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    run = lambda argv: subprocess.run(_as_owner(owner, argv), env=env, capture_output=True, text=True)  # noqa: E731
    initdb = run([str(binaries / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=scram-sha-256",
                  f"--pwfile={root / 'pwfile'}", "-E", "UTF8", "--no-sync"])  # fmt: skip
    if initdb.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise ClusterUnavailable(f"initdb failed: {initdb.stderr.strip()[-300:]}")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off -c synchronous_commit=off"
    started = run([str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start"])
    if started.returncode != 0:
        text = log.read_text(errors="replace")[-300:] if log.exists() else started.stderr
        shutil.rmtree(root, ignore_errors=True)
        raise ClusterUnavailable(f"the cluster did not start: {text.strip()}")
    saved = os.environ.get("PGPASSWORD")
    os.environ["PGPASSWORD"] = password  # subprocesses (the CLI, hub workers) inherit it
    try:
        cluster = Cluster(port, password)
        with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        try:
            with psycopg.connect(cluster.url(TEMPLATE), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION postgis")
        except psycopg.Error as e:
            raise ClusterUnavailable(f"PostGIS missing ({e}): apt-get install postgresql-15-postgis-3") from None
        yield cluster
    finally:
        if saved is None:
            os.environ.pop("PGPASSWORD", None)
        else:
            os.environ["PGPASSWORD"] = saved
        run([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)
