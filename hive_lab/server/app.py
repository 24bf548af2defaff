"""The ``HiveLab`` Jupyter server extension: configuration and wiring, nothing else."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Dict, Float, Int, List, Unicode, default, validate

from .._version import __version__
from ..core.agents import load_profiles
from ..core.facade import Hive, HiveConfig
from ..orchestrate.recovery import RecoveryConfig
from ..notify.notifier import NotifyConfig
from ..wire import NAME_RE, NOTIFY_KINDS


class HiveLab(ExtensionApp):
    """Control room for AI coding agents: tmux sessions, hook events, git and usage."""

    name = "hive_lab"
    version = __version__
    load_other_extensions = True

    tmux_socket = Unicode("hive", config=True,
                          help="Name of Hive Lab's private tmux socket (tmux -L).")
    data_dir = Unicode(config=True, help="Where Hive Lab keeps its database, secrets and spools.")
    worktree_root = Unicode("", config=True,
                            help="Root for agent worktrees (default: <data_dir>/worktrees).")
    profiles = Dict(config=True, help=(
        "Agent profiles added to or overriding the built-in ones "
        "(claude, codex, gemini, aider, shell): {name: {command, hooks, env, cues}}."))
    poll_interval = Float(1.0, config=True, help="Seconds between status polls of tmux.")
    spool_interval = Float(5.0, config=True, help="Seconds between drains of the hook spool.")
    usage_interval = Float(2.0, config=True,
                           help="Seconds between reads of live transcripts (token usage).")
    pricing = Dict(config=True, help=(
        "Overrides of the shipped pricing table (hive_lab/pricing.json), same shape: "
        "{'models': {'my-model': {'input': 3, 'output': 15}}}."))
    max_agents = Int(None, allow_none=True, config=True,
                     help="Cap on live agent sessions for the whole fleet (tasks wait beyond it).")
    task_interval = Float(1.0, config=True, help="Seconds between orchestration ticks.")
    store_url = Unicode("", config=True, help=(
        "Where tasks, attempts, claims and scope requests live: '' (the default) keeps them "
        "in this node's SQLite; 'postgresql://user:pass@host/db' shares one task board with "
        "every control server on that store (needs hive-lab[postgres])."))
    check_timeout = Float(600.0, config=True,
                          help="Seconds a task's check may run before it counts as failed.")
    max_rounds = Int(3, config=True,
                     help="Check rounds per attempt: a failing check's output goes back to the "
                          "agent this many times before the task fails.")

    # -- recovery from failures (orchestrate/recovery.py) --------------------------------------
    restart_backoff_base = Float(10.0, config=True, help=(
        "Seconds before a crashed task agent is restarted; doubled per failed attempt."))
    restart_backoff_cap = Float(300.0, config=True, help="Longest restart backoff, in seconds.")
    fleet_restarts_per_hour = Int(30, config=True, help=(
        "Restarts of task agents allowed per hour for the whole fleet (no restart storms)."))
    stall_minutes = Float(10.0, config=True, help=(
        "A working task agent with no hook event and no screen change for this long is "
        "flagged stalled (0: never)."))
    loop_repeats = Int(5, config=True, help=(
        "The same tool call with the same input this many times in a row flags a loop."))
    resume_stagger = Float(15.0, config=True, help=(
        "Seconds between two rate-limited sessions told to continue after the reset."))
    rate_limit_probe = Float(60.0, config=True, help=(
        "No reset time known for a parked provider: first probe after this many seconds, "
        "doubling (capped at 15 min)."))
    budgets = Dict(config=True, help=(
        "Budgets: {'task': {dollars, tokens, minutes}, 'session': {...}, "
        "'profile': {name: {window: day|5h|none, dollars, ...}}, 'fleet': [{window, ...}], "
        "'warn_at': 0.8, 'ceiling': 1.5}. Days are UTC; 5h is the rolling billing block."))
    budget_grace = Float(20.0, config=True,
                         help="Seconds a paused agent may keep working before it is interrupted.")
    notify_urls = List(Unicode(), config=True, help=(
        "Where notifications go besides the event stream: any URL apprise understands "
        "(slack://..., ntfy://..., json://host/path, mailto://...). May hold secrets: they are "
        "never logged nor returned by the API (shown redacted)."))
    notify_command = List(Unicode(), config=True, help=(
        "A command run for every notification (argv list), the notification as JSON on stdin."))
    notify_escalate_after = Float(10.0, config=True, help=(
        "Minutes after which a notification still unanswered (the state has not changed) is "
        "sent once more, marked 'still waiting'. 0: never."))
    notify_on = List(Unicode(), default_value=list(NOTIFY_KINDS), config=True, help=(
        "Kinds that notify: " + ", ".join(NOTIFY_KINDS) + "."))

    merge_auto = Bool(False, config=True, help=(
        "Merge queue: merge a branch as soon as it is up to date and its checks pass "
        "(default: a person approves each merge)."))
    merge_conflict = Unicode("needs_you", config=True, help=(
        "Merge queue, on a real conflict: 'needs_you' (stop that branch, go on with the "
        "others) or 'resolver' (start a task scoped to the conflicting files)."))

    merge_resolver_agent = Unicode(None, allow_none=True, config=True, help=(
        "Merge queue: the profile that runs resolver tasks (None: any that is installed)."))

    @validate("merge_conflict")
    def _check_merge_conflict(self, proposal: Any) -> str:
        if proposal["value"] not in ("needs_you", "resolver"):
            raise ValueError("merge_conflict must be 'needs_you' or 'resolver'")
        return str(proposal["value"])

    # -- the fleet (hive_lab/fleet): nodes this server federates as a control room -----------
    hosts = List(Dict(), config=True, help=(
        "Other Hive Lab nodes to federate: [{name, url, token_file, labels, capacity}]. The "
        "token is read from token_file at each use; it is never logged nor returned."))
    hosts_file = Unicode("", config=True, help=(
        "JSON hosts file `hive-lab hosts add|ls|rm` edits, re-read when it changes "
        "(default: $HIVE_LAB_HOSTS or <jupyter config dir>/hive_lab_hosts.json)."))
    host_name = Unicode("local", config=True, help="This server's own name among the hosts.")
    host_labels = List(Unicode(), config=True, help="This server's labels (placement).")
    fleet_interval = Float(1.0, config=True, help="Seconds between health polls of the nodes.")
    fleet_timeout = Float(3.0, config=True,
                          help="Seconds a node may take to answer before it counts unreachable.")

    @validate("hosts")
    def _check_hosts(self, proposal: Any) -> list[Any]:
        from ..fleet.hosts import parse_hosts

        parse_hosts(proposal["value"], reserved=[self.host_name])  # ValueError: clear message
        return proposal["value"]

    @validate("host_name")
    def _check_host_name(self, proposal: Any) -> str:
        if not NAME_RE.fullmatch(proposal["value"]):
            raise ValueError("host_name must be 1-64 characters from A-Z a-z 0-9 _ -")
        return proposal["value"]

    @default("data_dir")
    def _default_data_dir(self) -> str:
        return str(Path(jupyter_data_dir()) / "hive_lab")

    @validate("tmux_socket")
    def _check_socket(self, proposal: Any) -> str:
        if not NAME_RE.fullmatch(proposal["value"]):
            raise ValueError("tmux_socket must match ^[A-Za-z0-9_-]{1,64}$")
        return proposal["value"]

    @validate("profiles")
    def _check_profiles(self, proposal: Any) -> dict[str, Any]:
        load_profiles(proposal["value"])  # raises with a clear message on bad config
        return proposal["value"]

    @validate("budgets")
    def _check_budgets(self, proposal: Any) -> dict[str, Any]:
        from ..core.errors import HiveError
        from ..orchestrate.budgets import BudgetConfig

        try:
            BudgetConfig.parse(proposal["value"])
        except HiveError as exc:
            raise ValueError(exc.detail) from None
        return proposal["value"]

    def initialize_settings(self) -> None:
        root = Path(getattr(self.serverapp, "root_dir", None) or Path.cwd()).expanduser()
        config = HiveConfig(
            data_dir=Path(self.data_dir).expanduser(),
            tmux_socket=self.tmux_socket,
            profiles=load_profiles(self.profiles),
            default_cwd=root,
            worktree_root=Path(self.worktree_root).expanduser() if self.worktree_root else None,
            poll_interval=self.poll_interval,
            spool_interval=self.spool_interval,
            usage_interval=self.usage_interval,
            pricing_overrides=dict(self.pricing),
            max_agents=self.max_agents,
            task_interval=self.task_interval,
            store_url=self.store_url,
            check_timeout=self.check_timeout,
            max_rounds=self.max_rounds,
            recovery=RecoveryConfig(
                backoff_base=self.restart_backoff_base, backoff_cap=self.restart_backoff_cap,
                fleet_restarts_per_hour=self.fleet_restarts_per_hour,
                stall_minutes=self.stall_minutes, loop_repeats=self.loop_repeats,
                resume_stagger=self.resume_stagger, probe_base=self.rate_limit_probe,
                default_park=self.rate_limit_probe).validate(),
            budgets=dict(self.budgets),
            budget_grace=self.budget_grace,
            notify=NotifyConfig(urls=list(self.notify_urls),
                                command=list(self.notify_command) or None,
                                escalate_after=self.notify_escalate_after,
                                on=tuple(self.notify_on)),
            merge_auto=self.merge_auto,
            merge_conflict=self.merge_conflict,
            merge_resolver_agent=self.merge_resolver_agent,
            hosts=list(self.hosts),
            hosts_file=_hosts_file(self.hosts_file),
            host_name=self.host_name,
            host_labels=tuple(self.host_labels),
            fleet_interval=self.fleet_interval,
            fleet_timeout=self.fleet_timeout,
        )
        self.hive = Hive(config)
        self.settings["hive_lab"] = self.hive

    def initialize_handlers(self) -> None:
        from .handlers import handlers

        self.handlers.extend(handlers())

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        await self.hive.start(_loopback_url(serverapp), serverapp.base_url)

    async def stop_extension(self) -> None:
        await self.hive.stop()


def _hosts_file(value: str) -> Path:
    from ..fleet.hosts import default_hosts_file

    return Path(value).expanduser() if value else default_hosts_file()


def _loopback_url(serverapp: Any) -> str:
    """The address hook clients use: loopback by number (no resolver call per hook)."""
    ip = serverapp.ip or "127.0.0.1"
    host = "127.0.0.1" if ip in ("localhost", "0.0.0.0", "*", "") else ip
    if host == "::" or ":" in host:
        host = "[::1]" if host in ("::", "::1") else f"[{host}]"
    scheme = "https" if serverapp.certfile else "http"
    return f"{scheme}://{host}:{serverapp.port}{serverapp.base_url}"


main = launch_new_instance = HiveLab.launch_instance
