"""A real PostgreSQL server for the tests and the benchmarks (Debian's package, no pytest here).

PostgreSQL refuses to run as root, so when we are root the server runs as the ``postgres``
user (``runuser``) on a data dir it owns under a fresh temp dir. It listens on a unix socket in
that dir and on 127.0.0.1 with a free port; ``dsn()`` names a database by TCP with a password,
which is the shape a real ``store_url`` has. ``stop()`` stops the server and removes the dir;
``pause()``/``resume()`` stop and restart the same cluster (the store going away and coming
back).
"""
from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
PG_USER = "postgres"


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL's bin dir, or None."""
    for d in PG_BIN_DIRS:
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    return None


def missing_reason() -> str | None:
    """Why a real PostgreSQL cannot run here (None when it can)."""
    if pg_bin() is None:
        return "PostgreSQL server binaries not installed (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            return "running as root and no 'postgres' user to run PostgreSQL as"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg not installed (pip install 'hive-lab[postgres]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """One throwaway cluster; ``start()`` it, ``create_database()``, ``dsn()``, ``stop()``."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="hive-pg-")))
    port: int = field(default_factory=_free_port)
    password: str = field(default_factory=lambda: secrets.token_hex(12))
    user: str = "hive"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    def _as_pg(self, *argv: str) -> list[str]:
        if os.geteuid() != 0:
            return list(argv)
        return ["runuser", "-u", PG_USER, "--", *argv]

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._as_pg(*argv), capture_output=True, text=True, check=check,
                              timeout=120, cwd="/")

    def start(self) -> "PostgresServer":
        bindir = pg_bin()
        if bindir is None:
            raise RuntimeError(missing_reason() or "no PostgreSQL")
        self.bindir = bindir
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            pw = pwd.getpwnam(PG_USER)
            for p in (self.root, self.socket_dir):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            os.chown(pwfile, pwd.getpwnam(PG_USER).pw_uid, -1)
        os.chmod(pwfile, 0o600)
        self._run(str(bindir / "initdb"), "-D", str(self.data), "-U", self.user, "-A", "scram-sha-256",
                  "--pwfile", str(pwfile), "-E", "UTF8", "--no-instructions")
        pwfile.unlink()
        with open(self.data / "postgresql.conf", "a") as conf:
            # Throwaway data: durability off is fine and keeps the 2-core CI quick.
            conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.socket_dir}'\nfsync = off\n"
                       "synchronous_commit = off\nfull_page_writes = off\nmax_connections = 60\n"
                       "shared_buffers = 32MB\n")
        self.resume()
        return self

    def resume(self) -> None:
        """Start (again) the cluster and wait until it accepts connections."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
                  "-w", "-t", "60", "start")

    def pause(self) -> None:
        """Stop the server now (fast shutdown: clients are cut off), keeping the data."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def stop(self) -> None:
        """Stop the server and remove everything it had."""
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                      "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        """A fresh, empty database; returns its DSN."""
        import psycopg

        name = name or "t_" + secrets.token_hex(6)
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_ready(server: PostgresServer, timeout: float = 30.0) -> None:
    """Wait until the server answers a query (after ``resume()``)."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(server.dsn(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
