"""The only module that runs tmux.

Hive Lab owns a private tmux server: its own socket (``-L``) and its own config file (``-f``),
never the user's. Every call is an argv list (no shell); arguments ending in ``;`` are escaped
because tmux reads them as command separators even inside argv; sessions are targeted by exact
name (``=name:``) and panes by id (``%N``) because ``-t agent-1`` also matches ``agent-10``.

Why not libtmux: it starts one tmux process per call, its ``cmd()`` never raises and
``send_keys(literal=True)`` drops text starting with ``-``. Polling needs one process per tick
for all panes, so this module speaks to tmux directly.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from .errors import BadRequest, Conflict, NotFound, TmuxError
from .names import validate_name

META_OPTION = "@hive_meta"

# The options Hive Lab relies on: (set-option flag, name, value). ``-f`` loads them only when
# *this* client starts the server; a server someone else started on the socket first never
# reads it (remain-on-exit off: quick exits vanish, exit codes are lost). So they are also
# re-applied: globally before every new session (history-limit and default-terminal only
# count when a pane is made) and on the new session and window themselves, in the same tmux
# command list (tmux runs it before it notices the child's exit).
SERVER_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("-g", "remain-on-exit", "on"),
    ("-g", "history-limit", "10000"),
    ("-s", "exit-empty", "off"),
    ("-g", "destroy-unattached", "off"),
    ("-g", "default-terminal", "tmux-256color"),
    ("-s", "escape-time", "10"),
    ("-g", "status", "off"),
    # Apps that ask for focus events get them (Claude Code shows a hint otherwise).
    ("-s", "focus-events", "on"),
)
# Set on each session ("") or its window ("-w") right after it is made.
SESSION_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("-w", "remain-on-exit", "on"),
    ("", "destroy-unattached", "off"),
    ("", "status", "off"),
)

CONFIG = "# Hive Lab's private tmux server. Written by hive_lab; edits are overwritten.\n" + "".join(
    f"set {flag} {opt} {json.dumps(value) if '-' in value else value}\n"
    for flag, opt, value in SERVER_OPTIONS)


def global_option_commands() -> list[list[str]]:
    return [["set-option", flag, opt, value] for flag, opt, value in SERVER_OPTIONS]


def session_option_commands(name: str) -> list[list[str]]:
    target = f"={validate_name(name)}:"
    return [["set-option", *([flag] if flag else []), "-t", target, opt, value]
            for flag, opt, value in SESSION_OPTIONS]


# Key names accepted by POST sessions/{name}/keys: tmux's own names, optionally with
# C-/M-/S- modifiers, or one letter, digit or a few safe punctuation characters.
_NAMED_KEYS = (
    "Enter|Escape|Tab|BTab|BSpace|Space|Up|Down|Left|Right|Home|End|PageUp|PageDown|PPage|"
    "NPage|IC|DC|F[1-9]|F1[0-2]"
)
KEY_RE = re.compile(rf"(?:[CMS]-){{0,3}}(?:{_NAMED_KEYS}|[A-Za-z0-9]|[/?.,!@*+=_])")

# Variables that belong to the Jupyter server, never to the agents it starts.
# CLAUDECODE marks a process started *by* Claude Code: a Jupyter server launched from one
# must not make every agent it starts look nested. CI marks a CI job: agent CLIs that see it
# (Gemini CLI 0.61.0: "No input provided via stdin", exit 42) refuse to be interactive, and
# every agent Hive Lab runs is interactive, in its own terminal.
_PRIVATE_ENV = re.compile(
    r"^(JPY_.*|JUPYTER_TOKEN|JUPYTERHUB_.*|TMUX|TMUX_PANE|CLAUDECODE|CLAUDE_CODE_ENTRYPOINT|CI)$")

_TICK_FIELDS = (
    "session_name", "session_created", "pane_id", "pane_pid", "pane_dead", "pane_dead_status",
    "window_activity", "pane_height",
)
# Adoption also wants the command and our metadata; the tick does not (pane_current_command
# makes tmux read /proc for every pane: 4.2 ms -> 6.5 ms for 100 panes).
_FULL_FIELDS = (*_TICK_FIELDS, "pane_current_command", META_OPTION)  # meta last: no raw tabs
TICK_FORMAT = "\t".join("#{%s}" % f for f in _TICK_FIELDS)
PANE_FORMAT = "\t".join("#{%s}" % f for f in _FULL_FIELDS)


@dataclass(frozen=True)
class PaneInfo:
    """One line of ``list-panes -a``: what the poller needs to know about a session's pane."""

    session: str
    created: int
    pane_id: str
    pid: int
    dead: bool
    dead_status: int | None
    activity: int
    height: int = 0
    command: str = ""
    meta: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def escape_arg(arg: str) -> str:
    """Escape an argument so tmux does not read a trailing ``;`` as a command separator."""
    return arg[:-1] + "\\;" if arg.endswith(";") else arg


def escape_format(text: str) -> str:
    """Double ``#`` so tmux's format expansion (``#{}``, ``#()``) leaves ``text`` as it is."""
    return text.replace("#", "##")


def validate_keys(keys: object) -> list[str]:
    """Return ``keys`` if it is a non-empty list of known key names, else raise BadRequest."""
    if not isinstance(keys, list) or not keys or len(keys) > 64:
        raise BadRequest("keys must be a list of 1-64 key names")
    for key in keys:
        if not isinstance(key, str) or KEY_RE.fullmatch(key) is None:
            raise BadRequest(f"unknown key name {str(key)[:40]!r}", extra={"allowed": KEY_RE.pattern})
    return list(keys)


def agent_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment tmux (and so every agent) starts with: ours minus Jupyter's secrets."""
    src = os.environ if base is None else base
    return {k: v for k, v in src.items() if not _PRIVATE_ENV.match(k)}


class Tmux:
    """A typed handle on Hive Lab's private tmux server."""

    def __init__(self, socket_name: str = "hive", config_path: Path | str | None = None,
                 binary: str = "tmux", timeout: float = 10.0) -> None:
        validate_name(socket_name, "tmux socket name")
        self.socket_name = socket_name
        self.config_path = Path(config_path) if config_path else None
        self.binary = binary
        self.timeout = timeout
        self._env = agent_environment()

    # -- plumbing -------------------------------------------------------------------------
    def available(self) -> bool:
        return shutil.which(self.binary) is not None

    def _argv(self, commands: Sequence[Sequence[str]]) -> list[str]:
        argv = [self.binary, "-L", self.socket_name]
        if self.config_path is not None:
            argv += ["-f", str(self.config_path)]
        for i, command in enumerate(commands):
            if i:
                argv.append(";")  # a real separator: the only unescaped one
            argv += [escape_arg(a) for a in command]
        return argv

    def run(self, *commands: Sequence[str], input: bytes | None = None,
            check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """Run one tmux process executing ``commands`` in order (joined by ``;``)."""
        try:
            proc = subprocess.run(
                self._argv(commands), input=input, capture_output=True,
                timeout=self.timeout, env=self._env, check=False,
            )
        except FileNotFoundError as exc:
            raise TmuxError(f"tmux is not installed ({self.binary!r} not found)") from exc
        except subprocess.TimeoutExpired as exc:
            raise TmuxError(f"tmux did not answer within {self.timeout:.0f} s") from exc
        if check and proc.returncode != 0:
            raise TmuxError(proc.stderr.decode(errors="replace").strip() or "tmux failed")
        return proc

    def version(self) -> str:
        try:
            proc = subprocess.run([self.binary, "-V"], capture_output=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return proc.stdout.decode(errors="replace").strip()

    def write_config(self) -> None:
        """Write the ``-f`` config, and re-apply it to a server that is already running (it
        would never read the file)."""
        if self.config_path is not None:
            self.config_path.parent.mkdir(parents=True, exist_ok=True)
            self.config_path.write_text(CONFIG)
        self.run(*global_option_commands(), check=False)  # no server yet: nothing to do

    # -- sessions -------------------------------------------------------------------------
    def new_session(self, name: str, argv: Sequence[str], cwd: str, env: dict[str, str],
                    meta: dict[str, Any], width: int = 200, height: int = 50) -> PaneInfo:
        """Start ``argv`` (exec'd directly, never through a shell) in a new detached session."""
        validate_name(name)
        if not argv:
            raise BadRequest("command must not be empty")
        new = ["new-session", "-d", "-P", "-F", "#{pane_id}", "-s", name,
               "-x", str(width), "-y", str(height), "-c", escape_format(cwd)]
        for key, value in env.items():
            new += ["-e", f"{key}={value}"]
        # tmux runs a lone argument through `sh -c`; `env --` makes it always exec argv.
        new += ["--", "env", "--", *argv]
        meta_json = json.dumps(meta, separators=(",", ":"))
        proc = self.run(*global_option_commands(), new, *session_option_commands(name),
                        ["set-option", "-t", f"={name}:", META_OPTION, meta_json], check=False)
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip()
            if "duplicate session" in err:
                raise Conflict(f"session {name!r} already exists")
            raise TmuxError(err or "tmux new-session failed")
        pane_id = proc.stdout.decode().strip().splitlines()[0]
        pane = self.pane(pane_id)
        if pane is None:
            raise TmuxError(f"session {name!r} vanished right after it started")
        return pane

    def has_session(self, name: str) -> bool:
        return self.run(["has-session", "-t", f"={validate_name(name)}:"], check=False).returncode == 0

    def list_panes(self, full: bool = False) -> list[PaneInfo]:
        """Every pane of every session, in one tmux call. Empty when the server is not running.

        ``full`` adds each pane's command and our metadata (for adoption, not for ticks).
        """
        proc = self.run(["list-panes", "-a", "-F", PANE_FORMAT if full else TICK_FORMAT],
                        check=False)
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace")
            # No server, or (tmux 3.3a, exit-empty off) a server without any session left.
            if ("no server running" in err or "error connecting" in err
                    or "no current target" in err or not err.strip()):
                return []
            raise TmuxError(err.strip())
        return [p for p in map(_parse_pane, proc.stdout.decode(errors="replace").splitlines()) if p]

    def pane(self, pane_id: str) -> PaneInfo | None:
        proc = self.run(["list-panes", "-t", _pane(pane_id), "-F", PANE_FORMAT], check=False)
        if proc.returncode != 0:
            return None
        lines = proc.stdout.decode(errors="replace").splitlines()
        return _parse_pane(lines[0]) if lines else None

    def set_meta(self, name: str, meta: dict[str, Any]) -> None:
        self.run(["set-option", "-t", f"={validate_name(name)}:", META_OPTION,
                  json.dumps(meta, separators=(",", ":"))])

    def kill_session(self, name: str) -> bool:
        """Kill the tmux session; False if it did not exist. Processes: see :mod:`procs`."""
        return self.run(["kill-session", "-t", f"={validate_name(name)}:"], check=False).returncode == 0

    def kill_server(self) -> None:
        self.run(["kill-server"], check=False)

    # -- screens and input ---------------------------------------------------------------
    def capture(self, pane_id: str, lines: int | None = None, ansi: bool = False) -> str:
        """The pane's visible screen, or its last ``lines`` lines including history; with
        ``ansi`` the colours and attributes come along as SGR escapes (``capture-pane -e``)."""
        proc = self.run(_capture_cmd(pane_id, lines, ansi), check=False)
        if proc.returncode != 0:
            raise NotFound(f"pane {pane_id} is gone")
        return _trim_screen(proc.stdout.decode(errors="replace"), lines)

    def capture_many(self, pane_ids: Sequence[str], lines: int | None = None,
                     heights: dict[str, int] | None = None) -> dict[str, str]:
        """Capture several panes in one tmux process; panes that vanished are left out.

        With ``heights`` (from the same tick's ``list-panes``) the output is split by line
        count: ``capture-pane -p`` prints exactly one line per row. Otherwise a random marker
        is printed between captures. tmux stops a sequence at the first failing command, so
        the outputs are counted and the rest retried.
        """
        result: dict[str, str] = {}
        pending = list(pane_ids)
        while pending:
            by_height = not lines and heights is not None and all(heights.get(p) for p in pending)
            marker = f"hive-sep-{secrets.token_hex(8)}"
            commands: list[list[str]] = []
            for pane_id in pending:
                commands.append(_capture_cmd(pane_id, lines))
                if not by_height:
                    commands.append(["display-message", "-p", marker])
            proc = self.run(*commands, check=False)
            text = proc.stdout.decode(errors="replace")
            if by_height:
                rows = text.split("\n")
                done, start = [], 0
                for pane_id in pending:
                    end = start + heights[pane_id]  # type: ignore[index]
                    if end > len(rows) - 1 + (rows[-1] != ""):
                        break
                    done.append("\n".join(rows[start:end]))
                    start = end
            else:
                done = text.split(marker + "\n")[:-1]  # the last chunk follows the last marker
            for pane_id, screen in zip(pending, done):
                result[pane_id] = _trim_screen(screen, lines)
            if proc.returncode == 0 or len(done) >= len(pending):
                break
            pending = pending[len(done) + 1:]  # skip the pane whose capture failed
        return result

    def paste(self, pane_id: str, text: str) -> None:
        """Deliver ``text`` byte-exact: load it into a buffer from stdin, paste, drop buffer."""
        buffer = f"hive-{secrets.token_hex(6)}"
        self.run(
            ["load-buffer", "-b", buffer, "-"],
            ["paste-buffer", "-p", "-r", "-d", "-b", buffer, "-t", _pane(pane_id)],
            input=text.encode("utf-8"),
        )

    def send_keys(self, pane_id: str, keys: Sequence[str]) -> None:
        """Press validated key names (``Enter``, ``Escape``, ``C-c``, ``1``...) in the pane."""
        self.run(["send-keys", "-t", _pane(pane_id), *validate_keys(list(keys))])


def _pane(pane_id: str) -> str:
    if not re.fullmatch(r"%\d{1,9}", pane_id or ""):
        raise BadRequest(f"invalid pane id {pane_id!r}")
    return pane_id


def _capture_cmd(pane_id: str, lines: int | None, ansi: bool = False) -> list[str]:
    cmd = ["capture-pane", "-p", *(["-e"] if ansi else []), "-t", _pane(pane_id)]
    if lines:
        cmd += ["-S", str(-int(lines))]
    return cmd


def _trim_screen(text: str, lines: int | None) -> str:
    rows = text.rstrip("\n").split("\n")
    while rows and not rows[-1].strip():
        rows.pop()
    if lines:
        rows = rows[-int(lines):]
    return "\n".join(rows) + ("\n" if rows else "")


def _parse_pane(line: str) -> PaneInfo | None:
    parts = line.split("\t", len(_FULL_FIELDS) - 1)
    if len(parts) not in (len(_TICK_FIELDS), len(_FULL_FIELDS)):
        return None
    name, created, pane_id, pid, dead, status, activity, height = parts[:len(_TICK_FIELDS)]
    command, meta = "", None
    if len(parts) == len(_FULL_FIELDS):
        command, meta_raw = parts[len(_TICK_FIELDS):]
        try:
            meta = json.loads(meta_raw) if meta_raw else None
        except ValueError:
            meta = None
    return PaneInfo(
        session=name,
        created=_int(created) or 0,
        pane_id=pane_id,
        pid=_int(pid) or 0,
        dead=dead == "1",
        dead_status=_int(status) if dead == "1" else None,
        activity=_int(activity) or 0,
        height=_int(height) or 0,
        command=command,
        meta=meta if isinstance(meta, dict) else None,
    )


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None
