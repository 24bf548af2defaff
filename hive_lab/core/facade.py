"""The control plane assembled: store, recorder, status tracker, tmux, sessions, loops.

The HTTP layer holds one :class:`Hive` and calls its methods; everything here is plain Python
(asyncio, no tornado), so it can be driven and tested without a server.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from .. import __version__
from . import events as ev
from .agents import AgentProfile
from .bus import Broadcaster
from . import gitwatch, installers, spool
from .errors import BadRequest, HiveError
from .gitmonitor import GitMonitor
from ..usage.parse import Pricing
from .usagemonitor import UsageMonitor
from .recorder import Recorder
from .sessions import SessionManager
from .status import Tracker
from .store import Store
from .tmux import Tmux

log = logging.getLogger("hive_lab")


@dataclass
class HiveConfig:
    """Settings the control plane needs (filled from the ``HiveLab`` traitlets)."""

    data_dir: Path
    tmux_socket: str = "hive"
    profiles: dict[str, AgentProfile] = field(default_factory=dict)
    default_cwd: Path = field(default_factory=Path.cwd)
    worktree_root: Path | None = None
    poll_interval: float = 1.0
    spool_interval: float = 5.0
    usage_interval: float = 2.0
    pricing_overrides: dict[str, Any] = field(default_factory=dict)


class Hive:
    """Everything the REST API and the stream need, behind plain methods."""

    def __init__(self, config: HiveConfig) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.store = Store(self.data_dir / "hive.db")
        self.bus = Broadcaster()
        self.tracker = Tracker()
        self.recorder = Recorder(self.store, self.bus, self.tracker)
        self.tmux = Tmux(config.tmux_socket, self.data_dir / "tmux.conf")
        self.tmux.write_config()
        self.sessions = SessionManager(self.tmux, self.store, self.recorder, self.tracker,
                                       config.profiles, self.data_dir, config.default_cwd,
                                       config.worktree_root)
        self.spool_dir = self.data_dir / "spool"
        self.sessions.hook_script = installers.compile_client(self.data_dir)
        self.sessions.git = gitwatch
        self.git = GitMonitor(self.sessions, self.recorder)
        self.usage = UsageMonitor(self.sessions, self.recorder, self.store,
                                  Pricing.load(overrides=config.pricing_overrides or None))
        self._loops: list[asyncio.Task[Any]] = []
        self.started = time.time()

    # -- life cycle ------------------------------------------------------------------------
    async def start(self, server_url: str, base_url: str) -> None:
        """Adopt live sessions, drain spools, publish our address, start the loops."""
        self.sessions.adopt()
        await self.drain_spool()
        self._write_server_file(server_url, base_url)
        self._loops = [
            asyncio.ensure_future(self._every(self.config.poll_interval, self._tick)),
            asyncio.ensure_future(self._every(self.config.spool_interval, self.drain_spool)),
            asyncio.ensure_future(self._every(self.config.usage_interval, self.usage.poll)),
        ]
        self.git.mark_all()

    async def stop(self) -> None:
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._loops = []
        await self.sessions.close()
        self.bus.close()
        try:
            (self.data_dir / "server.json").unlink()
        except FileNotFoundError:
            pass
        self.store.close()

    def _write_server_file(self, server_url: str, base_url: str) -> None:
        info = {"url": server_url, "base_url": base_url,
                "hooks_url": server_url.rstrip("/") + "/" + "hive_lab/api/hooks",
                "pid": os.getpid()}
        tmp = self.data_dir / "server.json.tmp"
        tmp.write_text(json.dumps(info))
        os.replace(tmp, self.data_dir / "server.json")

    async def _every(self, seconds: float, step: Callable[[], Awaitable[Any] | Any]) -> None:
        while True:
            try:
                result = step()
                if asyncio.iscoroutine(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background step %s failed", getattr(step, "__name__", step))
            await asyncio.sleep(seconds)

    async def _tick(self) -> None:
        self.sessions.tick()

    async def drain_spool(self) -> int:
        """Ingest events the hook client spooled while we were away. Replays are harmless.

        A spool file is acknowledged (deleted) only after all its records are stored; a
        record the server refuses for good (bad JSON...) is logged and skipped, not retried.
        """
        # closing(): releases the drain lock at once, even if storing fails mid-way
        with contextlib.closing(spool.iter_batches(self.spool_dir)) as batches:
            return await self._drain_batches(batches)

    async def _drain_batches(self, batches: Any) -> int:
        stored = 0
        for batch in batches:
            # All records of a file go into one group commit, in file order.
            results = await asyncio.gather(
                *(self.sessions.ingest(r.body, r.session, r.install, r.agent, r.key, r.fired,
                                       trusted=True) for r in batch.records),
                return_exceptions=True)
            for record, result in zip(batch.records, results):
                if isinstance(result, HiveError):
                    log.warning("spooled event %s (%s line %d) refused: %s", record.key,
                                record.source, record.line_no, result.detail)
                elif isinstance(result, BaseException):
                    raise result  # the store failed: keep the file for the next drain
                else:
                    stored += 1
            batch.ack()
        return stored

    # -- queries ---------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {"version": __version__, "tmux": self.tmux.version(),
                "socket": self.tmux.socket_name, "sessions": len(self.sessions.sessions),
                "last_event_id": self.store.last_event_id(), "subscribers": len(self.bus),
                "data_dir": str(self.data_dir)}

    def events(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        return [e.to_json() for e in self.store.events(**args)]

    def transitions(self, session: str | None, after: int, limit: int) -> list[dict[str, Any]]:
        rows = self.store.transitions(session=session, after=after, limit=limit)
        for row in rows:
            row["since"] = ev.iso(row["since"])
        return rows

    def profiles(self) -> list[dict[str, Any]]:
        return [p.to_json() for p in self.config.profiles.values()]

    # -- hooks for agents started by hand ---------------------------------------------------
    def install_hooks(self, directory: Any, agent: Any, remove: bool = False) -> dict[str, Any]:
        """Install (or remove) our hooks in ``directory`` for an agent started outside Hive Lab.

        Its events arrive with an install id and secret; the session is keyed by the agent's
        own session id.
        """
        if agent not in ("claude", "gemini"):
            raise BadRequest("agent must be 'claude' or 'gemini' (Codex: pass -c notify, see README)")
        if not isinstance(directory, str) or not Path(directory).is_absolute():
            raise BadRequest("dir must be an absolute path")
        path = Path(directory).resolve()
        if not path.is_dir():
            raise BadRequest(f"{path} is not an existing directory")
        if remove:
            installers.uninstall(agent, path)
            return {"dir": str(path), "agent": agent, "removed": True}
        install_id = "i" + os.urandom(8).hex()
        installs = self.data_dir / "installs"
        installs.mkdir(parents=True, exist_ok=True, mode=0o700)
        secret_file = installs / f"{install_id}.secret"
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
        try:
            settings = installers.install(agent, path, install_id, script=self.sessions.hook_script)
        except BaseException:
            secret_file.unlink()  # nothing half-made
            raise
        return {"dir": str(path), "agent": agent, "install": install_id, "settings": str(settings)}


def parse_int(value: str | None, name: str, default: int, lo: int, hi: int) -> int:
    """Query-string integers, validated at the edge."""
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None
    if not lo <= number <= hi:
        raise BadRequest(f"{name} must be between {lo} and {hi}")
    return number
