"""Run the real Claude Code CLI in tests: install it, give it a private HOME, drive it.

Typical use::

    from tests.claude_support.cli import find_or_install_claude, private_home, cli_env, skip_reason
    from tests.claude_support.fake_api import FakeAnthropic

    claude = find_or_install_claude()          # Path, or None (see skip_reason())
    with FakeAnthropic() as api:
        env = private_home(tmp_path, [project], base_url=api.base_url)
        subprocess.run([str(claude), "-p", "SCENARIO:bash echo hi", "--output-format", "json"],
                       cwd=project, env=cli_env(env), ...)

``private_home`` returns only the variables the CLI needs (suitable for ``tmux -e``);
``cli_env`` merges them into a copy of ``os.environ`` with any inherited
``ANTHROPIC_*`` / ``CLAUDE*`` variables removed. What was learned about the CLI is in
``NOTES.md`` next to this file.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-claude.sh"

#: An API key shaped like a real one; only its last 20 characters matter (approval list).
DEFAULT_API_KEY = "sk-ant-api03-hive-lab-test-key-0000000000000000-HiveLabFakeKey0001"

#: Hook events named in FACTS.md (the current docs).
HOOK_EVENTS: tuple[str, ...] = (
    "SessionStart", "Setup", "UserPromptSubmit", "UserPromptExpansion", "PreToolUse",
    "PermissionRequest", "PermissionDenied", "PostToolUse", "PostToolUseFailure", "PostToolBatch",
    "Notification", "MessageDisplay", "SubagentStart", "SubagentStop", "TaskCreated", "TaskCompleted",
    "Stop", "StopFailure", "TeammateIdle", "InstructionsLoaded", "ConfigChange", "CwdChanged",
    "DirectoryAdded", "FileChanged", "WorktreeCreate", "WorktreeRemove", "PreCompact", "PostCompact",
    "Elicitation", "ElicitationResult", "SessionEnd",
)
#: The events Claude Code 2.1.197 accepts (from its own "Unknown hook event" warning).
#: A settings file naming any other event makes the interactive CLI open a blocking
#: "Settings Warning" screen at startup (the rest of the file still applies).
HOOK_EVENTS_2_1_197: tuple[str, ...] = (
    "PreToolUse", "PostToolUse", "PostToolUseFailure", "PostToolBatch", "Notification",
    "UserPromptSubmit", "UserPromptExpansion", "SessionStart", "SessionEnd", "Stop", "StopFailure",
    "SubagentStart", "SubagentStop", "PreCompact", "PostCompact", "PermissionRequest",
    "PermissionDenied", "Setup", "TeammateIdle", "TaskCreated", "TaskCompleted", "Elicitation",
    "ElicitationResult", "ConfigChange", "WorktreeCreate", "WorktreeRemove", "InstructionsLoaded",
    "CwdChanged", "FileChanged", "MessageDisplay",
)
#: Events whose hook entries take a tool-name matcher.
TOOL_EVENTS = frozenset({"PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionRequest", "PermissionDenied"})

#: $/MTok (input, output) as checked in FACTS.md. Cache: write 5m x1.25, 1h x2, read x0.1.
PRICES: dict[str, tuple[float, float]] = {
    "claude-opus-4-8": (5.0, 25.0),
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
}

_INSTALL: dict[str, Any] = {}


# --------------------------------------------------------------------------- install


def find_or_install_claude() -> Path | None:
    """The ``claude`` binary, installed on first use (once per process). None if impossible.

    ``$HIVE_CLAUDE_BIN`` names an existing binary to use instead. The reason for a
    None is in :func:`skip_reason`.
    """
    if "bin" in _INSTALL:
        return _INSTALL["bin"]
    _INSTALL["bin"], _INSTALL["reason"] = _install()
    return _INSTALL["bin"]


def skip_reason() -> str | None:
    """Why the real CLI is unavailable (a message for ``pytest.skip``), or None."""
    find_or_install_claude()
    return _INSTALL.get("reason")


def claude_version(binary: Path | str) -> str:
    """``2.1.197`` for ``2.1.197 (Claude Code)``."""
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60).stdout
    return out.split()[0] if out.split() else ""


def _install() -> tuple[Path | None, str | None]:
    override = os.environ.get("HIVE_CLAUDE_BIN")
    if override:
        p = Path(override)
        if p.is_file() and os.access(p, os.X_OK):
            return p, None
        return None, f"HIVE_CLAUDE_BIN={override} is not an executable file"
    if not INSTALL_SCRIPT.exists():
        return None, f"{INSTALL_SCRIPT} is missing"
    lock_path = REPO_ROOT / ".cache" / "claude" / ".install.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:  # several pytest workers: one npm install at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            proc = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, f"cannot install the Claude Code CLI: {e}"
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        return None, f"cannot install the Claude Code CLI (scripts/install-claude.sh exit {proc.returncode}): {tail}"
    p = Path(lines[-1])
    if not (p.is_file() and os.access(p, os.X_OK)):
        return None, f"install-claude.sh printed {p}, which is not an executable file"
    return p, None


# --------------------------------------------------------------------------- HOME and env


def private_home(
    tmp: Path | str,
    project_dirs: Iterable[Path | str],
    api_key: str = DEFAULT_API_KEY,
    base_url: str | None = None,
    *,
    bypass_permissions_accepted: bool = True,
    extra_config: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Create ``<tmp>/home`` with a ``.claude.json`` that skips every first-run screen.

    That is: onboarding done (without it the CLI checks api.anthropic.com and exits 1),
    each project dir trusted (else the "Accessing workspace" trust dialog), the key
    approved by its last 20 characters (else "Detected a custom API key", default No),
    and, by default, the ``--dangerously-skip-permissions`` warning accepted.

    Returns the variables the CLI needs; merge them with :func:`cli_env` for a
    subprocess, or pass each as ``tmux new-session -e K=V``.
    """
    home = Path(tmp) / "home"
    (home / ".claude").mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "hasCompletedOnboarding": True,
        "customApiKeyResponses": {"approved": [api_key[-20:]], "rejected": []},
        "projects": {},
        "autoUpdates": False,
    }
    if bypass_permissions_accepted:
        config["bypassPermissionsModeAccepted"] = True
    config.update(extra_config or {})
    (home / ".claude.json").write_text(json.dumps(config, indent=2))
    if bypass_permissions_accepted:
        # Where 2.1.197 keeps it (it migrates the .claude.json key here on first start).
        (home / ".claude" / "settings.json").write_text(json.dumps({"skipDangerousModePermissionPrompt": True}))
    for d in project_dirs:
        trust_project(home, d)
    env = {
        "HOME": str(home),
        "ANTHROPIC_API_KEY": api_key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    if base_url:
        env["ANTHROPIC_BASE_URL"] = base_url
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env["IS_SANDBOX"] = "1"  # root + --dangerously-skip-permissions exits 1 without it
    return env


def trust_project(home: Path | str, project_dir: Path | str) -> None:
    """Mark ``project_dir`` (e.g. a new worktree) trusted in ``<home>/.claude.json``.

    Do it before the CLI starts in that directory; the CLI rewrites the file itself.
    """
    path = Path(home) / ".claude.json"
    config = json.loads(path.read_text()) if path.exists() else {}
    projects = config.setdefault("projects", {})
    for d in {str(Path(project_dir).absolute()), os.path.realpath(project_dir)}:
        projects.setdefault(d, {}).update(
            {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True, "allowedTools": []}
        )
    path.write_text(json.dumps(config, indent=2))


_DROP_PREFIXES = ("ANTHROPIC_", "CLAUDE", "OTEL_")


def cli_env(env: Mapping[str, str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) without inherited ``ANTHROPIC_*``/``CLAUDE*``
    variables (an outer Claude Code session sets ``CLAUDECODE`` and friends), plus ``env``."""
    out = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith(_DROP_PREFIXES)}
    out.update(env)
    return out


def project_slug(cwd: Path | str) -> str:
    """Directory name under ``~/.claude/projects`` for ``cwd`` (every non-alphanumeric -> '-').

    Lossy and (reportedly) truncated for long paths: prefer the hooks' ``transcript_path``.
    """
    return re.sub(r"[^A-Za-z0-9]", "-", str(cwd))


def transcript_path(home: Path | str, cwd: Path | str, session_id: str) -> Path:
    return Path(home) / ".claude" / "projects" / project_slug(cwd) / f"{session_id}.jsonl"


# --------------------------------------------------------------------------- hooks


_HOOK_LOGGER = r'''import json, os, sys, time
raw = sys.stdin.read()
try:
    data = json.loads(raw)
except ValueError:
    data = {"_raw": raw}
if not isinstance(data, dict):
    data = {"_raw": data}
data["_ts"] = time.time()
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
try:
    os.write(fd, (json.dumps(data) + "\n").encode())  # one write: lines never interleave
finally:
    os.close(fd)
'''


def hook_logger_command(log_file: Path | str, script_dir: Path | str) -> str:
    """A hook ``command`` that appends each payload (plus ``_ts``) as one JSON line to ``log_file``."""
    script = Path(script_dir) / "hook_logger.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(_HOOK_LOGGER)
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} {shlex.quote(str(log_file))}"


def hook_settings(command: str, events: Iterable[str] = HOOK_EVENTS, timeout: int = 10) -> dict[str, Any]:
    """``{"hooks": {...}}`` running ``command`` for every event in ``events``."""
    hooks: dict[str, Any] = {}
    for ev in events:
        entry: dict[str, Any] = {"hooks": [{"type": "command", "command": command, "timeout": timeout}]}
        if ev in TOOL_EVENTS:
            entry["matcher"] = "*"
        hooks[ev] = [entry]
    return {"hooks": hooks}


def write_project_settings(project_dir: Path | str, settings: Mapping[str, Any],
                           name: str = "settings.local.json") -> Path:
    path = Path(project_dir) / ".claude" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2))
    return path


def read_hook_log(log_file: Path | str) -> list[dict[str, Any]]:
    """The payloads logged so far, in order (a line still being written is left out)."""
    try:
        text = Path(log_file).read_text()
    except FileNotFoundError:
        return []
    complete = text[: text.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


# --------------------------------------------------------------------------- pricing


def price_of(model: str) -> tuple[float, float]:
    """(input, output) $/MTok for ``model`` (``claude-opus-4-8[1m]`` and dated ids accepted)."""
    base = model.split("[")[0]
    for name, p in PRICES.items():
        if base == name or base.startswith(name + "-"):
            return p
    raise KeyError(f"no test price for model {model!r}")


def cost_usd(usage: Mapping[str, Any], model: str) -> float:
    """FACTS.md's formula: in*P + out*Q + 5m*1.25P + 1h*2P + read*0.1P, per million."""
    p, q = price_of(model)
    cc = usage.get("cache_creation") or {}
    w5 = cc.get("ephemeral_5m_input_tokens", 0)
    w1 = cc.get("ephemeral_1h_input_tokens", 0)
    if not cc:  # no split given: all of it is a 5-minute write
        w5 = usage.get("cache_creation_input_tokens", 0)
    return (usage.get("input_tokens", 0) * p + usage.get("output_tokens", 0) * q + w5 * 1.25 * p
            + w1 * 2 * p + usage.get("cache_read_input_tokens", 0) * 0.1 * p) / 1e6


# --------------------------------------------------------------------------- screen

#: Exact strings seen on Claude Code 2.1.197's screen (see NOTES.md for full screens).
CUE_WORKING = "esc to interrupt"  # footer while a turn runs (spinner line above the box)
CUE_PERMISSION = ("Do you want to proceed?", "Do you want to create ", "Do you want to make this edit to ")
CUE_DIALOG_FOOTER = "Esc to cancel"
CUE_QUESTION = "Enter to select · ↑/↓ to navigate · Esc to cancel"  # AskUserQuestion

#: First-run screens: (name, exact cue, keys that get past it). private_home() avoids
#: all but "settings-warning", which comes from the settings files.
FIRST_RUN_SCREENS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("settings-warning", "Settings Warning", ("1",)),  # 1. Continue
    ("trust", "Quick safety check: Is this a project you created or one you trust?", ("Enter",)),
    ("api-key", "Detected a custom API key in your environment", ("1",)),  # default is "2. No"
    ("bypass-permissions", "WARNING: Claude Code running in Bypass Permissions mode", ("2",)),
    ("onboarding-offline", "Unable to connect to Anthropic services", ()),  # exits 1 by itself
)

_RULE = re.compile(r"^─{20,}\s*$")


def input_box(screen: str) -> str | None:
    """Text of the input box (the ``❯`` line between two rules), or None if not shown."""
    lines = screen.splitlines()
    for i in range(len(lines) - 2, 0, -1):
        if lines[i].startswith("❯") and _RULE.match(lines[i - 1]) and _RULE.match(lines[i + 1]):
            return lines[i][1:].strip()
    return None


def screen_state(screen: str) -> str:
    """A coarse reading of one screen: first-run:<name>, permission, question,
    working, idle or unknown. Test helper, not Hive Lab's status detector."""
    for name, cue, _ in FIRST_RUN_SCREENS:
        if cue in screen:
            return "first-run:" + name
    if any(c in screen for c in CUE_PERMISSION) and CUE_DIALOG_FOOTER in screen:
        return "permission"
    if CUE_QUESTION in screen:
        return "question"
    if CUE_WORKING in screen:
        return "working"
    if input_box(screen) is not None:
        return "idle"
    return "unknown"


# --------------------------------------------------------------------------- tmux


class TmuxCLI:
    """One program in a pane of a private tmux server (``-L hive-test-<random>``).

    Argv lists only; prompt text goes through ``load-buffer`` (stdin) + ``paste-buffer -p``.
    Every screen seen by :meth:`capture` is kept in :attr:`screens` (deduplicated).
    """

    def __init__(self, width: int = 120, height: int = 40) -> None:
        self.socket = "hive-test-" + uuid.uuid4().hex[:10]
        self.width, self.height = width, height
        self.target = ""  # the pane id, once started
        self.pane_pid: int | None = None
        self.socket_path = ""
        self.screens: list[tuple[float, str, str]] = []  # (seconds since start, label, text)
        self._t0 = time.monotonic()
        self._label = ""

    def tmux(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args], input=input,
                              capture_output=True, text=True, timeout=30)
        if check and proc.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def start(self, argv: Sequence[str], cwd: Path | str, env: Mapping[str, str]) -> None:
        """Start ``argv`` (give at least two items: tmux runs a single one through sh -c)."""
        eargs: list[str] = []
        for k, v in env.items():
            eargs += ["-e", f"{k}={v}"]
        # One invocation: remain-on-exit is on before the program can exit (keeps its status).
        out = self.tmux("start-server", ";", "set-option", "-wg", "remain-on-exit", "on", ";",
                        "new-session", "-d", "-P", "-F", "#{pane_id} #{pane_pid}", "-s", "cc",
                        "-x", str(self.width), "-y", str(self.height), "-c", str(cwd), *eargs, *argv).stdout.split()
        self.target, self.pane_pid = out[0], int(out[1])  # pane by id (%N) from here on
        self.socket_path = self.tmux("display-message", "-p", "#{socket_path}").stdout.strip()
        self._t0 = time.monotonic()

    def capture(self, label: str = "") -> str:
        text = self.tmux("capture-pane", "-p", "-t", self.target).stdout
        if not self.screens or self.screens[-1][2] != text:
            self.screens.append((round(time.monotonic() - self._t0, 2), label or self._label, text))
            self._label = ""  # the action label goes with the first screen that changed after it
        return text

    def pane_dead(self) -> tuple[bool, int | None]:
        out = self.tmux("display-message", "-p", "-t", self.target, "#{pane_dead} #{pane_dead_status}").stdout.split()
        dead = bool(out) and out[0] == "1"
        return dead, (int(out[1]) if dead and len(out) > 1 and out[1].lstrip("-").isdigit() else None)

    def processes(self) -> str:
        """Every process whose terminal is the pane's, for a failure message (what keeps it open)."""
        fmt = "#{pane_tty}|#{pane_dead}|#{pane_dead_status}|#{pane_dead_signal}|#{pane_pid}"
        out = self.tmux("display-message", "-p", "-t", self.target, fmt, check=False).stdout.strip()
        tty = out.split("|")[0]
        ps = subprocess.run(["ps", "-o", "pid,ppid,stat,etime,args", "-t", tty.removeprefix("/dev/")],
                            capture_output=True, text=True).stdout if tty else "(no pane tty)"
        pids = [line.split()[0] for line in ps.splitlines()[1:] if line.split()]
        wchan = " ".join(f"{pid}:{_read(f'/proc/{pid}/wchan')}" for pid in pids)
        sockets = subprocess.run(["ss", "-tnpH"], capture_output=True, text=True).stdout
        mine = "\n".join(line for line in sockets.splitlines()
                         if any(f"pid={pid}," in line for pid in pids))
        return f"tty|dead|status|signal|pid = {out}\n{ps}wchan: {wchan}\nsockets:\n{mine}"

    def paste(self, text: str, settle: float = 0.3) -> None:
        """Type ``text`` as one bracketed paste, then press Enter."""
        self.tmux("load-buffer", "-b", "prompt", "-", input=text)
        self.tmux("paste-buffer", "-p", "-r", "-d", "-b", "prompt", "-t", self.target)
        time.sleep(settle)
        self.keys("Enter", label=f"paste {text!r} + Enter")

    def keys(self, *keys: str, label: str = "") -> None:
        self.capture()
        self._label = label or "keys " + " ".join(keys)
        self.tmux("send-keys", "-t", self.target, *keys)

    def wait_for(self, pred: Callable[[str], bool] | str, timeout: float = 30.0, interval: float = 0.15) -> str:
        """Poll the screen until ``pred(screen)`` (or the string is on screen); TimeoutError else."""
        check = (lambda s: pred in s) if isinstance(pred, str) else pred
        end = time.monotonic() + timeout
        while True:
            screen = self.capture()
            if check(screen):
                return screen
            if time.monotonic() > end:
                raise TimeoutError(f"screen did not show {pred!r} within {timeout}s; last screen:\n{screen}")
            time.sleep(interval)

    def dump_screens(self, path: Path | str) -> Path:
        with open(path, "w") as f:
            for t, label, text in self.screens:
                f.write(f"===== t={t}s {label}\n{text.rstrip()}\n")
        return Path(path)

    def __enter__(self) -> "TmuxCLI":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.kill()

    def kill(self) -> None:
        """Kill the tmux server, make sure the pane's program is gone, remove the socket."""
        self.tmux("kill-server", check=False)
        if self.socket_path:  # tmux 3.3a leaves the socket file behind
            try:
                os.unlink(self.socket_path)
            except OSError:
                pass
        pid = self.pane_pid
        if pid is None:
            return
        end = time.monotonic() + 5
        while time.monotonic() < end:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_until(pred: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1,
               what: str | Callable[[], str] = "") -> Any:
    """Poll ``pred()`` until truthy; return its value or raise TimeoutError.

    ``what`` names the wait in the error; a callable is asked only then (for costly diagnostics).
    """
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            said = what() if callable(what) else what
            raise TimeoutError(f"timed out after {timeout}s waiting for {said or pred}")
        time.sleep(interval)


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return "?"
