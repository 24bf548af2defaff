"""The data dir: where each file lives, and the two ways we write files there.

Every path under ``<data_dir>`` is named here once (docs/CONTRACTS.md shows the tree), and
every write is atomic (a temp file in the same directory, then ``rename``), so a crash leaves
the old file or the new one, never half of one. Secrets are created 0600 and never logged.
"""
from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .names import validate_name


def atomic_write(path: Path, data: str | bytes, mode: int = 0o644) -> Path:
    """Replace ``path`` with ``data`` in one rename; the temp file never outlives a failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def write_secret(path: Path, exclusive: bool = False) -> str:
    """A fresh random secret in a 0600 file (dir 0700); ``exclusive`` refuses to overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret = secrets.token_urlsafe(32)
    if exclusive:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secret)
    else:
        atomic_write(path, secret, mode=0o600)
    return secret


def read_secret(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


@dataclass(frozen=True)
class DataDir:
    """The layout of ``<data_dir>``; creating it makes the root private (0700)."""

    root: Path

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    @property
    def db(self) -> Path:
        return self.root / "hive.db"

    @property
    def server_file(self) -> Path:
        return self.root / "server.json"

    @property
    def tmux_conf(self) -> Path:
        return self.root / "tmux.conf"

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def worktrees(self) -> Path:
        return self.root / "worktrees"

    @property
    def installs(self) -> Path:
        return self.root / "installs"

    def aider_log(self, session: str, spawn_id: str) -> Path:
        """Aider's analytics log (its usage accounting) for one spawn, kept after the session
        goes (the tokens were spent). The name ending picks its parser (usage/aider.py)."""
        name = f"{validate_name(session, 'session name')}-{validate_name(spawn_id, 'spawn id')}"
        return self.root / "usage-logs" / f"{name}.aider-analytics.jsonl"

    def session_dir(self, name: str) -> Path:
        return self.root / "sessions" / validate_name(name, "session name")

    def session_secret(self, name: str) -> Path:
        return self.session_dir(name) / "secret"

    def session_meta(self, name: str) -> Path:
        return self.session_dir(name) / "meta.json"

    def install_secret(self, install_id: str) -> Path:
        return self.installs / f"{validate_name(install_id, 'install id')}.secret"
