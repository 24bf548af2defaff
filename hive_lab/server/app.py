"""The ``HiveLab`` Jupyter server extension: configuration and wiring, nothing else."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from traitlets import Dict, Float, Int, List, Unicode, default, validate

from .._version import __version__
from ..core.agents import load_profiles
from ..core.facade import Hive, HiveConfig
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
    check_timeout = Float(600.0, config=True,
                          help="Seconds a task's check may run before it counts as failed.")
    max_rounds = Int(3, config=True,
                     help="Check rounds per attempt: a failing check's output goes back to the "
                          "agent this many times before the task fails.")

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
            check_timeout=self.check_timeout,
            max_rounds=self.max_rounds,
            notify=NotifyConfig(urls=list(self.notify_urls),
                                command=list(self.notify_command) or None,
                                escalate_after=self.notify_escalate_after,
                                on=tuple(self.notify_on)),
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


def _loopback_url(serverapp: Any) -> str:
    """The address hook clients use: loopback by number (no resolver call per hook)."""
    ip = serverapp.ip or "127.0.0.1"
    host = "127.0.0.1" if ip in ("localhost", "0.0.0.0", "*", "") else ip
    if host == "::" or ":" in host:
        host = "[::1]" if host in ("::", "::1") else f"[{host}]"
    scheme = "https" if serverapp.certfile else "http"
    return f"{scheme}://{host}:{serverapp.port}{serverapp.base_url}"


main = launch_new_instance = HiveLab.launch_instance
