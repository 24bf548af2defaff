"""Ending an agent's whole process tree.

``tmux kill-session`` only hangs up the pane's terminal: a child that called ``setsid`` or
``nohup`` survives it. Every agent is spawned with a unique ``HIVE_LAB_SPAWN`` marker in its
environment, which every descendant inherits (through setsid and double forks alike), so the
tree is found both by parentage and by that marker.
"""
from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import psutil

SPAWN_VAR = "HIVE_LAB_SPAWN"


def marked_pids(spawn_id: str) -> set[int]:
    """Pids whose environment carries ``HIVE_LAB_SPAWN=<spawn_id>`` (Linux /proc)."""
    needle = f"{SPAWN_VAR}={spawn_id}".encode()
    found: set[int] = set()
    proc = Path("/proc")
    if not proc.is_dir() or not spawn_id:
        return found
    me = os.getpid()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.add(int(entry.name))
    return found


def tree_pids(root_pid: int | None, spawn_id: str | None) -> set[int]:
    """The root, its descendants, and every process that carries the spawn marker."""
    pids: set[int] = set()
    if root_pid and root_pid > 1:
        try:
            root = psutil.Process(root_pid)
            pids.add(root_pid)
            pids.update(child.pid for child in root.children(recursive=True))
        except psutil.Error:
            pass
    if spawn_id:
        pids |= marked_pids(spawn_id)
    pids.discard(os.getpid())
    pids.discard(1)
    return pids


def signal_all(pids: set[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def alive(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE:
                left.add(pid)
        except psutil.Error:
            pass
    return left


async def end_tree(pids: set[int], grace: float = 2.0) -> set[int]:
    """SIGTERM ``pids``, wait up to ``grace`` seconds, SIGKILL survivors. Returns survivors."""
    signal_all(pids, signal.SIGTERM)
    deadline = asyncio.get_running_loop().time() + grace
    left = alive(pids)
    while left and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
        left = alive(left)
    if left:
        signal_all(left, signal.SIGKILL)
        await asyncio.sleep(0.05)
        left = alive(left)
    return left


def zombie_exit(pid: int) -> tuple[int | None, int | None]:
    """``(exit status, signal)`` of a child that exited but is not reaped yet (Linux >= 3.5).

    tmux can show a pane dead before it reaps the process (seen: 15 s under load); the
    zombie still carries its wait status in ``/proc/<pid>/stat`` (field 52, ``exit_code``).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None, None
    fields = stat.rsplit(")", 1)[-1].split()  # after "pid (comm)": field 3 is fields[0]
    if not fields or fields[0] != "Z" or len(fields) < 50:
        return None, None
    code = int(fields[-1])
    if code & 0x7F:
        return None, code & 0x7F
    return (code >> 8) & 0xFF, None
