"""The control plane assembled, behind one facade: :class:`Hive`.

The server layer (REST handlers, the WebSocket stream, hook ingestion) calls only methods of
this class, with plain arguments, and gets plain JSON-able data back or a domain exception
(:mod:`.errors`). Nothing here imports tornado, so it is driven and tested without a server,
and another implementation of the same methods (a node on another host, a test double) can
stand behind the same handlers.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncGenerator, Awaitable, Callable, Mapping

from .._version import __version__
from . import events as ev
from . import gitwatch, installers, spool
from .agents import AgentProfile
from .bus import Broadcaster
from .datadir import DataDir, atomic_write, write_secret
from .decisions import Deciders
from .errors import BadRequest, Forbidden, HiveError
from .feed import FeedItem, event_feed
from .gitmonitor import GitMonitor
from .recorder import Recorder
from .sessions import SessionManager, SpawnRequest
from .signals import Signals
from .status import Tracker
from .sharedstore import node_id
from .store import Store
from .tmux import Tmux
from .usagemonitor import UsageMonitor
from ..orchestrate.recovery import RecoveryConfig
from ..orchestrate.budgetkeeper import BudgetKeeper
from ..orchestrate.budgets import BudgetConfig
from ..orchestrate.fleetusage import FleetUsage
from ..notify.notifier import Notifier, NotifyConfig
from ..fleet.api import HOST_REACHABLE, HOST_UNREACHABLE, FleetMethods
from ..fleet.federation import Federation
from ..fleet.hosts import HostsFile, parse_hosts
from ..orchestrate.runtime import Orchestrator, OrchestratorConfig
from ..orchestrate.merging import MergeConfig, MergeQueue
from ..orchestrate.pipelining import PipelineDriver
from ..usage.parse import Pricing
from ..wire import API_PREFIX, HOOKS_PATH

log = logging.getLogger("hive_lab")

USAGE_GROUPS = ("session", "day", "model", "block")


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
    max_agents: int | None = None  # the whole fleet's cap on live sessions (orchestration)
    task_interval: float = 1.0  # seconds between orchestration ticks
    check_timeout: float = 600.0
    max_rounds: int = 3
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)  # failure policies
    budgets: dict[str, Any] = field(default_factory=dict)  # c.HiveLab.budgets (budgets.py)
    budget_grace: float = 20.0  # seconds a paused agent may still work before it is interrupted
    notify: NotifyConfig = field(default_factory=NotifyConfig, repr=False)  # may hold secrets
    # c.HiveLab.store_url: "postgresql://..." puts the tasks in a store shared by several
    # control servers (core/sharedstore.py); "" keeps them in the node's SQLite.
    store_url: str = field(default="", repr=False)  # may hold a password
    merge_auto: bool = False  # merge queue: merge without a person's approval
    merge_conflict: str = "needs_you"  # or "resolver": a task scoped to the conflicting files
    merge_resolver_agent: str | None = None  # the resolver task's profile (None: any)
    # the fleet (hive_lab/fleet): other nodes this control room federates
    hosts: list[Any] = field(default_factory=list)  # c.HiveLab.hosts records
    hosts_file: Path | None = None  # the file `hive-lab hosts add|rm` edits
    host_name: str = "local"  # this server's own name among the hosts
    host_labels: tuple[str, ...] = ()
    fleet_interval: float = 1.0  # seconds between health polls of the nodes
    fleet_timeout: float = 3.0  # a node silent this long is unreachable


class Hive(FleetMethods):
    """Everything the REST API and the stream need, behind plain methods."""

    def __init__(self, config: HiveConfig) -> None:
        self.config = config
        self.paths = DataDir(Path(config.data_dir))
        self.data_dir = self.paths.root
        self.signals = Signals()
        self.store = Store(self.paths.db)
        self.bus = Broadcaster()
        self.tracker = Tracker()
        self.recorder = Recorder(self.store, self.bus, self.tracker, self.signals)
        self.tmux = Tmux(config.tmux_socket, self.paths.tmux_conf)
        self.tmux.write_config()
        self.deciders = Deciders()  # policies answering blocking hooks (orchestration)
        self.sessions = SessionManager(
            self.tmux, self.store, self.recorder, self.tracker, config.profiles, self.paths,
            config.default_cwd, self.signals, git=gitwatch, worktree_root=config.worktree_root,
            hook_script=installers.compile_client(self.data_dir), deciders=self.deciders)
        self.git = GitMonitor(self.sessions, self.recorder, self.signals)
        self.usage = UsageMonitor(self.sessions, self.recorder, self.store,
                                  Pricing.load(overrides=config.pricing_overrides or None),
                                  self.signals)
        self.tasks = Orchestrator(
            self.paths.db, self.store, self.sessions, self.recorder, self.git, self.signals,
            self.deciders, OrchestratorConfig(max_agents=config.max_agents,
                                              max_rounds=config.max_rounds,
                                              check_timeout=config.check_timeout,
                                              recovery=config.recovery,
                                              store_url=config.store_url,
                                              owner=node_id(self.paths.root)
                                              if config.store_url else ""))
        self.budgets = BudgetKeeper(self.paths.db, self.sessions, self.usage, self.recorder,
                                    self.signals, self.deciders, self.tasks,
                                    BudgetConfig.parse(config.budgets), config.budget_grace)
        self.notify = Notifier(self.paths.db, self.signals, self.recorder, self.tracker,
                               config.notify)
        if config.store_url:  # tasks and scope requests live in the shared store
            self.notify.task_conn = self.tasks.conn
        # On a shared store, fleet and profile budgets count every control server's spend.
        self.fleet_usage = FleetUsage(self.tasks, self.budgets, self.usage, self.signals) \
            if config.store_url else None
        self.merges = MergeQueue(self.paths.db, self.recorder, self.sessions, self.git,
                                 self.tasks, self.paths.root / "merges",
                                 MergeConfig(auto=config.merge_auto,
                                             conflict=config.merge_conflict,
                                             resolver_agent=config.merge_resolver_agent,
                                             check_timeout=config.check_timeout))
        self.fleet = Federation(
            parse_hosts(config.hosts, reserved=[config.host_name]),
            HostsFile(config.hosts_file) if config.hosts_file else None, config.host_name,
            config.fleet_timeout, on_state=self._host_state)
        # Review pipelines; the merge queue (hive.merges) takes their ready branches when
        # it exists.
        self.pipelines = PipelineDriver(self.paths.db, self.tasks, self.store, self.recorder,
                                        self.usage, lambda: getattr(self, "merges", None),
                                        config.check_timeout)
        self._loops: list[asyncio.Task[Any]] = []
        self.started = time.time()

    # -- life cycle ------------------------------------------------------------------------
    async def start(self, server_url: str, base_url: str) -> None:
        """Adopt live sessions, drain spools, publish our address, start the loops."""
        self.sessions.adopt()
        self.notify.start()  # its baseline: states found now are not notified
        await self.drain_spool()
        self._write_server_file(server_url, base_url)
        self._loops = [
            asyncio.ensure_future(self._every(self.config.poll_interval, self._tick)),
            asyncio.ensure_future(self._every(self.config.spool_interval, self.drain_spool)),
            asyncio.ensure_future(self._every(self.config.usage_interval, self.usage.poll)),
            asyncio.ensure_future(self._every(self.config.task_interval, self.tasks.tick)),
            asyncio.ensure_future(self._every(self.config.task_interval, self.budgets.tick)),
            asyncio.ensure_future(self._every(self.config.task_interval, self.pipelines.tick)),
            asyncio.ensure_future(self._every(1.0, self.notify.tick)),
            asyncio.ensure_future(self._every(self.config.task_interval, self.merges.tick)),
            asyncio.ensure_future(self._every(self.config.fleet_interval, self.fleet.poll)),
        ]
        if self.fleet_usage is not None:
            self._loops.append(asyncio.ensure_future(
                self._every(self.config.task_interval, self.fleet_usage.sync)))
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
        self.pipelines.close()
        self.tasks.close()
        self.merges.close()
        self.budgets.close()
        self.notify.close()
        await self.fleet.close()
        self.bus.close()
        try:
            self.paths.server_file.unlink()
        except FileNotFoundError:
            pass
        self.store.close()

    def _write_server_file(self, server_url: str, base_url: str) -> None:
        info = {"url": server_url, "base_url": base_url,
                "hooks_url": f"{server_url.rstrip('/')}/{API_PREFIX}/{HOOKS_PATH}",
                "pid": os.getpid()}
        atomic_write(self.paths.server_file, json.dumps(info))

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
        with contextlib.closing(spool.iter_batches(self.paths.spool)) as batches:  # type: ignore[type-var]
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

    # -- status and vocabulary ----------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {"version": __version__, "tmux": self.tmux.version(),
                "socket": self.tmux.socket_name, "sessions": len(self.sessions.sessions),
                "last_event_id": self.store.last_event_id(), "subscribers": len(self.bus),
                "data_dir": str(self.data_dir), "store": self.tasks.store_health()}

    def profiles(self) -> list[dict[str, Any]]:
        return [p.to_json() for p in self.config.profiles.values()]

    # -- sessions ------------------------------------------------------------------------------
    def list_sessions(self, host: str | None = None) -> list[dict[str, Any]]:
        """This server's sessions; with hosts configured (or ``host`` given) the fleet's,
        each marked ``host``."""
        if host is None and not self.fleet.configured():
            return self._local_sessions()
        return self.fleet_sessions(host)

    def _local_sessions(self) -> list[dict[str, Any]]:
        return [self._with_budget(s) for s in self.sessions.describe_all()]

    def _host_state(self, host: str, state: str, payload: dict[str, Any]) -> None:
        """A node went unreachable or came back: an event in our own stream says so."""
        name = HOST_REACHABLE if state == "ok" else HOST_UNREACHABLE
        self.recorder.record_now([ev.internal(host, name, payload,
                                              f"host {host}: {state}")])

    def session(self, name: str) -> dict[str, Any]:
        return self._with_budget(self.sessions.describe(self.sessions.get(name)))

    def _with_budget(self, data: dict[str, Any]) -> dict[str, Any]:
        """``paused``: ``{"reason": "budget", ...}`` while a budget holds the session, else null."""
        data["paused"] = self.budgets.paused_json(data["name"])
        return data

    async def spawn(self, body: Any) -> dict[str, Any]:
        """Start an agent from a ``POST sessions`` body; ``host``/``labels`` place it."""
        return await self.spawn_anywhere(body)

    async def _local_spawn(self, body: Any) -> dict[str, Any]:
        """Start an agent here (the body validated at the core's edge)."""
        session = await self.sessions.spawn(SpawnRequest.parse(body))
        return self.sessions.describe(session)

    async def kill(self, name: str, cleanup: str | None = None,
                   force: bool = False) -> dict[str, Any]:
        return await self.sessions.kill(name, cleanup=cleanup, force=force)

    async def send_input(self, name: str, text: Any, enter: Any = True) -> None:
        await self.sessions.send_input(name, text, enter)

    def send_keys(self, name: str, keys: Any) -> list[str]:
        return self.sessions.send_keys(name, keys)

    def screen(self, name: str, lines: int | None = None, ansi: bool = False) -> str:
        """The pane's text; ``ansi`` keeps its colours as SGR escapes (the live terminal)."""
        return self.sessions.screen(name, lines, ansi=ansi)

    def approve(self, name: str) -> dict[str, Any]:
        """Answer an open permission dialog with yes; refused (NotWaiting) if none is open."""
        return self.sessions.approve(name)

    def deny(self, name: str) -> dict[str, Any]:
        return self.sessions.deny(name)

    # -- git -------------------------------------------------------------------------------
    def git_states(self) -> dict[str, Any]:
        states = self.git.states
        return {name: (states[name].to_json() if name in states else None)
                for name in self.sessions.sessions}

    async def session_git(self, name: str) -> dict[str, Any] | None:
        state = await self.git.state(name)
        return state.to_json() if state else None

    async def diff(self, name: str, max_bytes: int) -> dict[str, Any]:
        result = await self.git.diff(name, max_bytes)
        if result is None:
            raise BadRequest(f"session {name!r} has no worktree")
        return result

    async def conflicts(self) -> dict[str, Any]:
        return (await self.git.conflicts()).to_json()

    async def orphans(self) -> list[dict[str, Any]]:
        return [o.to_json() for o in await asyncio.to_thread(self.git.orphans)]

    async def clean_orphans(self, names: Any, force: Any) -> list[dict[str, Any]]:
        if names is not None and (not isinstance(names, list)
                                  or not all(isinstance(n, str) for n in names)):
            raise BadRequest("sessions must be a list of names")
        if not isinstance(force, bool):
            raise BadRequest("force must be true or false")
        return await self.git.clean_orphans(names, force)

    # -- usage -----------------------------------------------------------------------------
    def usage_report(self, by: str, session: str | None = None, since: float | None = None,
                     until: float | None = None) -> dict[str, Any]:
        if by not in USAGE_GROUPS:
            raise BadRequest("by must be session, day, model or block")
        return self.usage.report(by, session=session, since=since, until=until)

    def usage_rows(self, session: str | None = None, since: float | None = None,
                   until: float | None = None) -> list[dict[str, Any]]:
        return self.usage.rows_json(session=session, since=since, until=until)

    # -- events ----------------------------------------------------------------------------
    def events(self, args: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [e.to_json() for e in self.store.events(**args)]

    def transitions(self, session: str | None, after: int, limit: int) -> list[dict[str, Any]]:
        rows = self.store.transitions(session=session, after=after, limit=limit)
        for row in rows:
            row["since"] = ev.iso(row["since"])
        return rows

    def feed(self, after: int, filters: Mapping[str, str], queue_size: int,
             heartbeat: float) -> AsyncGenerator[FeedItem, None]:
        """Replay after ``after``, then live, with no gap and no duplicate (see :mod:`.feed`)."""
        return event_feed(self.store, self.bus, after, dict(filters), queue_size, heartbeat)

    async def ingest_hook(self, body: bytes, headers: Mapping[str, str | None]) -> dict[str, Any]:
        """One hook call, authenticated by its per-session (or per-install) secret."""
        from ..wire import (HEADER_AGENT, HEADER_FIRED, HEADER_INSTALL, HEADER_KEY,
                            HEADER_SECRET, HEADER_SESSION)

        return await self.sessions.ingest(
            body, headers.get(HEADER_SESSION), headers.get(HEADER_INSTALL),
            headers.get(HEADER_AGENT), headers.get(HEADER_KEY), headers.get(HEADER_FIRED),
            secret=headers.get(HEADER_SECRET))

    def request_scope(self, body: bytes, headers: Mapping[str, str | None]) -> dict[str, Any]:
        """An agent's scope request, on the hook channel's credential (the session's secret),
        answered at once: the pending request, or the HiveError that refuses it."""
        from ..wire import HEADER_SECRET, HEADER_SESSION

        session = headers.get(HEADER_SESSION)
        if not session:
            raise Forbidden("a scope request comes from a session: X-Hive-Session is missing")
        self.sessions.authenticate_hook(session, None, headers.get(HEADER_SECRET))
        return self.tasks.request_scope(session, ev.parse_payload(body))

    # -- tasks (orchestration) ----------------------------------------------------------------
    def add_task(self, body: Any) -> dict[str, Any]:
        return self.tasks.add(body)

    def list_tasks(self, state: str | None = None, repo: str | None = None,
                   session: str | None = None, host: str | None = None) -> list[dict[str, Any]]:
        if host is None and not self.fleet.configured():
            return self._local_tasks(state=state, repo=repo, session=session)
        return self.fleet_tasks(host, state=state, repo=repo, session=session)

    def _local_tasks(self, **filters: Any) -> list[dict[str, Any]]:
        return self.tasks.list_tasks(**filters)

    def task(self, task_id: str) -> dict[str, Any]:
        return self.tasks.get(task_id)

    async def patch_task(self, task_id: str, body: Any) -> dict[str, Any]:
        result = await self.tasks.patch(task_id, body)
        if isinstance(body, dict) and "budget" in body:
            await self.budgets.tick()  # a raised budget resumes at once, not a tick later
            result = self.tasks.get(task_id)
        return result

    # -- budgets -------------------------------------------------------------------------------
    # -- review pipelines ---------------------------------------------------------------------
    def add_pipeline(self, body: Any) -> dict[str, Any]:
        return self.pipelines.add(body)

    def list_pipelines(self, state: str | None = None) -> list[dict[str, Any]]:
        return self.pipelines.list(state)

    def pipeline(self, pipeline_id: str) -> dict[str, Any]:
        return self.pipelines.get(pipeline_id)

    async def cancel_pipeline(self, pipeline_id: str) -> dict[str, Any]:
        return await self.pipelines.cancel(pipeline_id)

    async def retry_pipeline(self, pipeline_id: str) -> dict[str, Any]:
        return await self.pipelines.retry(pipeline_id)

    def budget_report(self) -> dict[str, Any]:
        """Every limit in force: used, fraction, level, unknown-cost flag, forecast."""
        return self.budgets.report()

    async def put_budgets(self, body: Any) -> dict[str, Any]:
        """Set the fleet's and profiles' limits live (kept across restarts)."""
        return await self.budgets.update(body)

    def delete_task(self, task_id: str) -> dict[str, Any]:
        return self.tasks.delete(task_id)

    async def retry_task(self, task_id: str) -> dict[str, Any]:
        return await self.tasks.retry(task_id)

    def scope_requests(self, task_id: str | None = None,
                       state: str | None = None) -> list[dict[str, Any]]:
        return self.tasks.scope_requests(task_id, state)

    async def decide_scope_request(self, request_id: Any, approve: Any,
                                   note: Any = "") -> dict[str, Any]:
        return await self.tasks.decide_scope(request_id, approve, note)

    def accept_violations(self, task_id: str, paths: Any) -> dict[str, Any]:
        return self.tasks.accept_violations(task_id, paths)

    # -- the merge queue -------------------------------------------------------------------
    def offer_merge(self, body: Any) -> dict[str, Any]:
        """``POST merges``: any local branch offered for merging into its base.

        On the loop thread, like ``add_task``: a few ``git rev-parse`` calls, and the queue's
        connection is used by one thread only."""
        if not isinstance(body, dict):
            raise BadRequest('body must be {"repo", "branch", "base", "checks": [[argv]]}')
        unknown = sorted(str(k)[:40] for k in body if k not in ("repo", "branch", "base",
                                                                 "checks", "source"))
        if unknown:
            raise BadRequest(f"unknown merge field(s): {unknown}")
        repo: Any = body.get("repo")
        branch: Any = body.get("branch")
        item = self.merges.offer(repo, branch, body.get("base"), body.get("checks"),
                                 body.get("source", "api"))
        return item.to_json()

    def list_merges(self, state: str | None = None, repo: str | None = None) -> list[dict[str, Any]]:
        return [m.to_json() for m in self.merges.list(state=state, repo=repo)]

    def merge(self, item_id: int) -> dict[str, Any]:
        return self.merges.get(item_id).to_json()

    def merge_action(self, item_id: int, action: str) -> dict[str, Any]:
        """approve, reject, cancel or retry one queued branch."""
        verbs = {"approve": self.merges.approve, "reject": self.merges.reject,
                 "cancel": self.merges.cancel, "retry": self.merges.retry}
        if action not in verbs:
            raise BadRequest("action must be approve, reject, cancel or retry")
        return verbs[action](item_id).to_json()

    # -- notifications ----------------------------------------------------------------------
    def notifications(self, unread: bool = False, limit: int = 100) -> list[dict[str, Any]]:
        return self.notify.recent(unread=unread, limit=limit)

    def read_notification(self, notification_id: Any) -> dict[str, Any]:
        return self.notify.mark_read(notification_id)

    def notify_channels(self) -> dict[str, Any]:
        return self.notify.describe_channels()

    # -- hooks for agents started by hand ---------------------------------------------------
    def install_hooks(self, directory: Any, agent: Any, remove: Any = False) -> dict[str, Any]:
        """Install (or remove) our hooks in ``directory`` for an agent started outside Hive Lab.

        Its events arrive with an install id and secret; the session is keyed by the agent's
        own session id.
        """
        if agent not in ("claude", "gemini"):
            raise BadRequest("agent must be 'claude' or 'gemini' (Codex takes its hooks on its command line: see README)")
        if not isinstance(remove, bool):
            raise BadRequest("remove must be true or false")
        if not isinstance(directory, str) or not Path(directory).is_absolute():
            raise BadRequest("dir must be an absolute path")
        path = Path(directory).resolve()
        if not path.is_dir():
            raise BadRequest(f"{path} is not an existing directory")
        if remove:
            installers.uninstall(agent, path)
            return {"dir": str(path), "agent": agent, "removed": True}
        install_id = "i" + os.urandom(8).hex()
        secret_file = self.paths.install_secret(install_id)
        write_secret(secret_file, exclusive=True)
        try:
            settings = installers.install(agent, path, install_id, script=self.sessions.hook_script)
        except BaseException:
            secret_file.unlink()  # nothing half-made
            raise
        return {"dir": str(path), "agent": agent, "install": install_id, "settings": str(settings)}
