"""Reading the hook spool: events the hook client could not deliver to the server.

The hook client (``hive_lab.hook``) appends one JSON line per undelivered event to
``<data_dir>/spool/<session-or-install>.jsonl``, under ``flock`` and re-checking the inode
after locking. The server drains those files at start-up and periodically:

1. take ``spool/.drain.lock`` (one drainer at a time; a second one returns at once),
2. rename each ``*.jsonl`` to a unique ``*.draining`` name (new events go to a fresh file),
3. lock the renamed file, which waits out a writer still in the middle of its ``write()``;
   any writer that locks it afterwards sees the inode moved and writes to the new file,
4. read the complete lines; corrupt ones are kept in ``*.bad`` (never silently dropped),
5. hand the records to the caller, and delete the file only when the caller ``ack()``s.

A crash anywhere before the ack leaves the ``*.draining`` file, which the next drain picks
up again: records are replayed rather than lost, and their dedup keys make a replay harmless.
"""
from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..hook import PROTOCOL_VERSION, SPOOL_DIRNAME, SPOOL_SUFFIX, _lock, valid_name

log = logging.getLogger(__name__)

DRAINING_SUFFIX = ".draining"
BAD_SUFFIX = ".bad"
DRAIN_LOCK_NAME = ".drain.lock"
WRITER_WAIT = 2.0  # seconds to wait for a writer to finish its single write()

_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class SpoolRecord:
    """One spooled hook call, as the hook client would have POSTed it."""

    session: str | None  # our session name (X-Hive-Session), or None for an install
    install: str | None  # install id (X-Hive-Install) of hand-installed hooks
    agent: str  # profile name (X-Hive-Agent); may be ""
    key: str  # dedup key (X-Hive-Key)
    fired: float  # epoch seconds when the agent fired the hook (X-Hive-Fired)
    body: bytes  # the raw payload bytes, exactly as the agent gave them
    source: str = ""  # spool file it came from (for logs)
    line_no: int = 0  # 1-based line in that file

    def to_json(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "install": self.install,
            "agent": self.agent,
            "key": self.key,
            "fired": self.fired,
            "body": self.body.decode("utf-8", "replace"),
            "source": self.source,
            "line_no": self.line_no,
        }


@dataclass(frozen=True)
class BadLine:
    """A spool line that could not be read back; kept in the ``*.bad`` file."""

    line_no: int
    reason: str
    raw: bytes


@dataclass
class SpoolBatch:
    """The records of one claimed spool file. Store them, then call :meth:`ack`."""

    path: Path  # the claimed ``*.draining`` file
    records: list[SpoolRecord]
    bad: list[BadLine] = field(default_factory=list)
    bad_path: Path | None = None  # where the bad lines were kept
    acked: bool = False

    def ack(self) -> None:
        """The records are stored: forget the file. Until then a crash replays it."""
        self.path.unlink(missing_ok=True)
        self.acked = True


@dataclass
class DrainReport:
    """What one :func:`drain` did, for the log and for tests."""

    files: int = 0  # files whose records were stored
    records: int = 0
    bad_lines: int = 0  # kept in *.bad files
    skipped: list[str] = field(default_factory=list)  # files whose writer never let go
    busy: bool = False  # another drain was running; nothing was done

    def to_json(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "records": self.records,
            "bad_lines": self.bad_lines,
            "skipped": list(self.skipped),
            "busy": self.busy,
        }


def spool_dir_of(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / SPOOL_DIRNAME


def pending(spool_dir: str | os.PathLike[str]) -> list[Path]:
    """Spool files waiting for a drain (``*.jsonl`` and leftover ``*.draining``)."""
    root = Path(spool_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.endswith((SPOOL_SUFFIX, DRAINING_SUFFIX)))


def parse_line(raw: bytes, source: str = "", line_no: int = 0) -> SpoolRecord:
    """One spool line -> record; ``ValueError`` says why a line is unusable."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    if obj.get("v") != PROTOCOL_VERSION:
        raise ValueError(f"unknown spool version {obj.get('v')!r}")
    session, install = obj.get("session"), obj.get("install")
    for name, value in (("session", session), ("install", install)):
        if value is not None and not (isinstance(value, str) and valid_name(value)):
            raise ValueError(f"bad {name} {value!r}")
    if (session is None) == (install is None):
        raise ValueError("exactly one of session/install must be set")
    agent = obj.get("agent")
    if not isinstance(agent, str) or (agent and not valid_name(agent)):
        raise ValueError(f"bad agent {agent!r}")
    key = obj.get("key")
    if not (isinstance(key, str) and len(key) == 32 and _HEX.issuperset(key)):
        raise ValueError(f"bad key {key!r}")
    fired = obj.get("fired")
    if isinstance(fired, bool) or not isinstance(fired, (int, float)) or not math.isfinite(fired):
        raise ValueError(f"bad fired {fired!r}")
    body = obj.get("body")
    if not isinstance(body, str):
        raise ValueError("body is not a string")
    try:
        payload = body.encode("utf-8", "surrogateescape")  # the writer's exact inverse
    except UnicodeEncodeError:
        raise ValueError("body holds characters the writer cannot produce") from None
    return SpoolRecord(session, install, agent, key, float(fired), payload, source, line_no)


def read_lines(data: bytes, source: str = "") -> tuple[list[SpoolRecord], list[BadLine]]:
    """Split a claimed file: complete, valid lines become records, the rest bad lines.

    A last line without its newline can never be completed (writers undo short writes and
    never write to a claimed file), so it is bad too.
    """
    records: list[SpoolRecord] = []
    bad: list[BadLine] = []
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the data ends with a newline
    for no, raw in enumerate(lines, 1):
        if not raw.strip():
            continue  # the writer's separator after someone's partial line
        try:
            records.append(parse_line(raw, source, no))
        except ValueError as exc:
            bad.append(BadLine(no, str(exc), raw))
    if tail:
        bad.append(BadLine(len(lines) + 1, "incomplete last line", tail))
    return records, bad


def _lock_with_timeout(fd: int, timeout: float) -> bool:
    return _lock(fd, time.monotonic() + timeout)  # the writer's own lock loop


def _claim(path: Path) -> Path | None:
    """Rename a ``*.jsonl`` to a unique ``*.draining`` name (sortable by claim time)."""
    stem = path.name[: -len(SPOOL_SUFFIX)]
    target = path.with_name(f"{stem}.{time.time_ns():020d}-{os.getpid()}-{os.urandom(4).hex()}{DRAINING_SUFFIX}")
    try:
        os.rename(path, target)
    except FileNotFoundError:
        return None
    return target


def _read_claimed(path: Path, writer_wait: float) -> bytes | None:
    """Content of a claimed file once no writer is mid-write; None if one never let go."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    try:
        if not _lock_with_timeout(fd, writer_wait):
            return None
        # Once we hold the lock no writer can add to this inode: each one re-checks the path
        # after locking and finds the file renamed. So the content is final; let go early.
        fcntl.flock(fd, fcntl.LOCK_UN)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _keep_bad(path: Path, bad: list[BadLine]) -> Path:
    """Write the bad lines next to the claimed file, atomically: a replay rewrites, never doubles."""
    target = path.with_name(path.name[: -len(DRAINING_SUFFIX)] + BAD_SUFFIX)
    tmp = target.with_name(target.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        for item in bad:
            os.write(fd, item.raw + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    return target


def iter_batches(spool_dir: str | os.PathLike[str], *, writer_wait: float = WRITER_WAIT) -> Iterator[SpoolBatch]:
    """Claim spool files one by one and yield each one's records; the caller acks each batch.

    Leftover ``*.draining`` files of a crashed drain come first (oldest claim first), then
    the ``*.jsonl`` files. Files without valid records are removed right away (their bad
    lines kept). A batch that is not acked stays on disk for the next drain. If another
    drain holds the drain lock, nothing is yielded.
    """
    return _batches(Path(spool_dir), writer_wait, DrainReport())


def _batches(root: Path, writer_wait: float, report: DrainReport) -> Iterator[SpoolBatch]:
    if not root.is_dir():
        return
    lock_fd = os.open(root / DRAIN_LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            report.busy = True
            return
        leftovers = sorted(p for p in root.iterdir() if p.name.endswith(DRAINING_SUFFIX))
        fresh = sorted(p for p in root.iterdir() if p.name.endswith(SPOOL_SUFFIX))
        claimed = leftovers + [c for c in map(_claim, fresh) if c is not None]
        for path in claimed:
            data = _read_claimed(path, writer_wait)
            if data is None:
                if path.exists():
                    report.skipped.append(path.name)
                    log.warning("hook spool %s: a writer holds its lock; retrying next drain", path.name)
                continue
            records, bad = read_lines(data, path.name)
            report.bad_lines += len(bad)
            bad_path = None
            if bad:
                bad_path = _keep_bad(path, bad)
                log.warning(
                    "hook spool %s: %d unreadable line(s) kept in %s (first: line %d, %s)",
                    path.name, len(bad), bad_path.name, bad[0].line_no, bad[0].reason,
                )
            batch = SpoolBatch(path, records, bad, bad_path)
            if not records:
                batch.ack()
                continue
            yield batch
    finally:
        os.close(lock_fd)  # releases the drain lock


def drain(
    spool_dir: str | os.PathLike[str],
    store: Callable[[list[SpoolRecord]], object],
    *,
    writer_wait: float = WRITER_WAIT,
) -> DrainReport:
    """Drain every spool file through ``store(records)``; ack a file once ``store`` returned.

    ``store`` must persist the records (deduplicating by ``key``) before returning. If it
    raises, the exception propagates and that file (and any not yet reached) stays for the
    next drain. Blocking file I/O: from asyncio, run it in an executor.
    """
    report = DrainReport()
    for batch in _batches(Path(spool_dir), writer_wait, report):
        store(batch.records)
        batch.ack()
        report.files += 1
        report.records += len(batch.records)
    return report


def bad_files(spool_dir: str | os.PathLike[str]) -> list[Path]:
    """``*.bad`` files holding lines no drain could read (for a human to look at)."""
    root = Path(spool_dir)
    return sorted(root.glob("*" + BAD_SUFFIX)) if root.is_dir() else []


__all__ = [
    "BAD_SUFFIX",
    "DRAINING_SUFFIX",
    "BadLine",
    "DrainReport",
    "SpoolBatch",
    "SpoolRecord",
    "bad_files",
    "drain",
    "iter_batches",
    "parse_line",
    "pending",
    "read_lines",
    "spool_dir_of",
]
