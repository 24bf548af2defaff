"""Installing and removing Hive Lab's hooks in each agent CLI's own configuration.

Claude Code reads project-local hooks from ``.claude/settings.local.json`` (never committed).
We merge our entries into that file, never touching the user's own, and on cleanup remove
only entries whose command runs our hook client. Gemini CLI gets the same treatment in
``.gemini/settings.json``; Codex CLI gets its hooks as ``-c hooks.<Event>=[...]`` overrides on
the command line (its "session flags" layer), so nothing is written for it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .datadir import atomic_write
from .errors import BadRequest

log = logging.getLogger(__name__)

HOOK_SCRIPT = Path(__file__).resolve().parent.parent / "hook.py"
C_SOURCE = Path(__file__).resolve().parent.parent / "hookc" / "hive_hook.c"
COMPILED_NAME = "hive_lab_hook.pyc"  # written by the server into <data_dir>/bin at start-up
BINARY_NAME = "hive_lab_hook"  # the C client, built next to it when a compiler is there
MARKERS = ("hive_lab/hook.py", COMPILED_NAME, "/bin/" + BINARY_NAME)
CC_FLAGS = ("-O2", "-std=c99", "-DHIVE_HOOK_CONFIG")
_warned_no_c = False  # "no C client" is logged once per process, not at every start

CLAUDE_EVENTS = (
    "SessionStart", "Setup", "UserPromptSubmit", "UserPromptExpansion", "PreToolUse",
    "PermissionRequest", "PermissionDenied", "PostToolUse", "PostToolUseFailure",
    "PostToolBatch", "Notification", "MessageDisplay", "SubagentStart", "SubagentStop",
    "TaskCreated", "TaskCompleted", "Stop", "StopFailure", "TeammateIdle", "InstructionsLoaded",
    # DirectoryAdded is in the current docs, but Claude Code 2.1.197 stops at start-up on a
    # "Settings Warning" screen when a settings file names it: left out on purpose.
    # WorktreeCreate too: a command hook for it *replaces* Claude Code's own `git worktree
    # add` and must print the new path; ours prints nothing, so `claude --worktree` (and the
    # EnterWorktree tool) failed with "hook succeeded but returned no worktree path".
    "ConfigChange", "CwdChanged", "FileChanged",
    "WorktreeRemove", "PreCompact", "PostCompact", "Elicitation", "ElicitationResult",
    "SessionEnd",
)
GEMINI_HOOK_NAME = "hive-lab"
# All eleven events of Gemini CLI 0.61.0's HookEventName (checked: tests/gemini_support/NOTES.md).
GEMINI_EVENTS = (
    "SessionStart", "SessionEnd", "BeforeAgent", "AfterAgent", "BeforeModel", "AfterModel",
    "BeforeToolSelection", "BeforeTool", "AfterTool", "PreCompress", "Notification",
)

# Codex CLI 0.169.0's hook events (checked: tests/codex_support/NOTES.md) but PreModelRequest,
# which fires before every model call and says nothing the status needs (a hook run per call).
CODEX_EVENTS = (
    "SessionStart", "UserPromptSubmit", "PreToolUse", "PermissionRequest", "PostToolUse",
    "PreCompact", "PostCompact", "SubagentStart", "SubagentStop", "Interrupt", "Stop",
    "SessionEnd",
)
# Codex runs only hooks the user has reviewed and trusted (trust is a hash of the hook kept in
# $CODEX_HOME/config.toml, written by its /hooks screen; codextrust.py writes ours). The
# fallback when that file cannot be written: this flag, which lifts the review for every hook
# of that one run (a trusted repository's .codex/hooks.json too).
CODEX_TRUST_FLAG = "--dangerously-bypass-hook-trust"


def hook_argv(agent: str, install: str | None = None, argv_payload: bool = False,
              script: Path | None = None) -> list[str]:
    """The hook client's argv.

    ``script`` is what ``compile_client`` built: the C client (``<data_dir>/bin/hive_lab_hook``,
    run directly: no interpreter start-up), or the precompiled Python client
    (``hive_lab_hook.pyc``, ~4 ms faster per call than compiling ``hook.py`` each time), run
    by our interpreter without site imports; the plain source is the last fallback.
    """
    if script is not None and is_binary(script):
        argv = [str(script), "--agent", agent]
    else:
        argv = [sys.executable, "-S", "-E", "-s", str(script or HOOK_SCRIPT), "--agent", agent]
    if install:
        argv += ["--install", install]
    if argv_payload:
        argv.append("--argv-payload")
    return argv


def hook_command(agent: str, install: str | None = None, script: Path | None = None) -> str:
    """The hook client as one shell command line (Claude and Gemini run hooks through sh).

    Guarded by ``test -f`` (``test -x`` for the C client): if the client file is gone (package
    removed, data dir wiped), python would exit 2, which Claude Code reads as "block this tool
    call"; a failed ``test`` exits 1, a non-blocking error.
    """
    argv = hook_argv(agent, install, script=script)
    if script is not None and is_binary(script):
        return f"test -x {shlex.quote(argv[0])} && exec {shlex.join(argv)}"
    return f"test -f {shlex.quote(argv[4])} && exec {shlex.join(argv)}"


def is_binary(script: Path | str) -> bool:
    """The C client (run as is) rather than a Python script (run by the interpreter)."""
    return Path(script).name == BINARY_NAME


def is_ours(entry: Any) -> bool:
    return isinstance(entry, dict) and any(m in str(entry.get("command", "")) for m in MARKERS)


def compile_client(data_dir: Path, cc: str | None = None) -> Path:
    """Build the hook clients into ``<data_dir>/bin``; returns the one to install.

    Always writes the precompiled Python client (the fallback, and what the C client execs
    for an https server); then builds the C client, which is returned when it built.
    """
    from .. import hook

    target = Path(data_dir) / "bin" / COMPILED_NAME
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = target.with_suffix(".tmp")
    hook.compile_to(str(tmp))
    os.replace(tmp, target)
    binary = build_c_client(target.parent, target, cc)
    return binary or target


def _c_string(text: str) -> str:
    """A C string literal for any path (every byte but [A-Za-z0-9/._-] as an octal escape)."""
    safe = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-"
    return '"' + "".join(chr(b) if b in safe else "\\%03o" % b for b in os.fsencode(text)) + '"'


def _find_cc(cc: str | None) -> str | None:
    """``cc`` if given (only that one), else ``$CC``, ``cc``, ``gcc``, ``clang``."""
    for name in (cc,) if cc else (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name:
            found = shutil.which(name)
            if found:
                return found
    return None


def _no_c_client(reason: str) -> None:
    global _warned_no_c
    if not _warned_no_c:
        _warned_no_c = True
        log.warning("hook client: using the Python client (~10 ms per call, not ~1-3 ms): %s", reason)


def build_c_client(bin_dir: Path, pyc: Path, cc: str | None = None) -> Path | None:
    """Compile ``hookc/hive_hook.c`` into ``bin_dir/hive_lab_hook``; None if it cannot be.

    Cached by a hash of the source, the compiler, its flags and the built-in fallback paths
    (``<binary>.sha256``), so a restart costs nothing. The binary is written to a temporary
    name and renamed: an agent running the old one keeps its inode, never a half-written file.
    """
    compiler = _find_cc(cc)
    if compiler is None:
        _no_c_client("no C compiler (cc, gcc or clang) on PATH")
        return None
    try:
        source = C_SOURCE.read_bytes()
    except OSError as exc:
        _no_c_client(f"cannot read {C_SOURCE}: {exc}")
        return None
    config = (f"#define HIVE_PY_EXE {_c_string(sys.executable)}\n"
              f"#define HIVE_PY_CLIENT {_c_string(str(pyc))}\n")
    digest = hashlib.sha256(b"\0".join([source, config.encode(), compiler.encode(),
                                         " ".join(CC_FLAGS).encode()])).hexdigest()
    target = Path(bin_dir) / BINARY_NAME
    stamp = target.with_name(BINARY_NAME + ".sha256")
    try:
        if os.access(target, os.X_OK) and stamp.read_text().strip() == digest:
            return target
    except OSError:
        pass
    with tempfile.TemporaryDirectory(dir=bin_dir, prefix=".build-") as tmp:
        (Path(tmp) / "hive_hook_config.h").write_text(config)
        out = Path(tmp) / BINARY_NAME
        try:
            done = subprocess.run([compiler, *CC_FLAGS, "-I", tmp, "-o", str(out), str(C_SOURCE)],
                                  capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.SubprocessError) as exc:
            _no_c_client(f"{compiler} failed to run: {exc}")
            return None
        if done.returncode != 0 or not out.is_file():
            _no_c_client(f"{compiler} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
            return None
        os.chmod(out, 0o700)
        os.replace(out, target)
        stamp_tmp = stamp.with_name(stamp.name + ".tmp")
        stamp_tmp.write_text(digest + "\n")
        os.replace(stamp_tmp, stamp)
    return target


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text() or "{}")
    except (OSError, ValueError) as exc:
        raise BadRequest(f"{path} is not valid JSON; fix or remove it first ({exc})") from None
    if not isinstance(data, dict):
        raise BadRequest(f"{path} must hold a JSON object")
    return data


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(data, indent=2) + "\n")


def _merge(settings: dict[str, Any], events: tuple[str, ...], command: str,
           timeout: int, name: str | None = None) -> dict[str, Any]:
    hooks = settings.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise BadRequest("the settings file's 'hooks' must be an object")
    # Entries of ours for events we no longer install (left by an older Hive Lab that
    # stopped without cleaning up) go, so that dropping an event really takes effect.
    stale = {event: groups for event, groups in hooks.items() if event not in events}
    kept = _strip({"hooks": dict(stale)}).get("hooks", {})  # on a copy: `hooks` untouched
    for event in list(stale):
        if event in kept:
            hooks[event] = kept[event]
        else:
            del hooks[event]
    for event in events:
        groups = hooks.setdefault(event, [])
        if not isinstance(groups, list):
            raise BadRequest(f"the settings file's hooks.{event} must be a list")
        present = any(is_ours(h) and h.get("command") == command
                      for g in groups if isinstance(g, dict) for h in g.get("hooks", []))
        if not present:
            entry: dict[str, Any] = {"type": "command", "command": command, "timeout": timeout}
            if name:
                entry["name"] = name
            groups.append({"hooks": [entry]})
    return settings


def _strip(settings: dict[str, Any]) -> dict[str, Any]:
    hooks = settings.get("hooks")
    if not isinstance(hooks, dict):
        return settings
    for event in list(hooks):
        groups = hooks[event]
        if not isinstance(groups, list):
            continue
        kept = []
        for group in groups:
            if isinstance(group, dict) and isinstance(group.get("hooks"), list):
                group = {**group, "hooks": [h for h in group["hooks"] if not is_ours(h)]}
                if not group["hooks"]:
                    continue
            kept.append(group)
        if kept:
            hooks[event] = kept
        else:
            del hooks[event]
    if not hooks:
        del settings["hooks"]
    return settings


def settings_path(kind: str, directory: Path) -> Path:
    if kind == "claude":
        return directory / ".claude" / "settings.local.json"
    if kind == "gemini":
        return directory / ".gemini" / "settings.json"
    raise BadRequest(f"agent kind {kind!r} has no settings file hooks")


def install(kind: str, directory: Path, install_id: str | None = None,
            script: Path | None = None) -> Path | None:
    """Merge our hooks into ``directory``'s settings for agent ``kind``; returns the file."""
    if kind == "codex":
        return None  # passed on the command line, see codex_args()
    path = settings_path(kind, directory)
    settings = _load(path)
    command = hook_command(kind, install_id, script=script)
    if kind == "claude":
        _merge(settings, CLAUDE_EVENTS, command, timeout=30)
    else:
        # Gemini counts milliseconds; its screen shows a hook's name ("Executing Hooks: ...",
        # the project-hooks warning) instead of our long command line.
        _merge(settings, GEMINI_EVENTS, command, timeout=30000, name=GEMINI_HOOK_NAME)
    _write_atomic(path, settings)
    return path


def uninstall(kind: str, directory: Path) -> None:
    """Remove only our entries; delete the file if nothing of the user's is left in it."""
    if kind == "codex":
        return
    path = settings_path(kind, directory)
    if not path.exists():
        return
    settings = _strip(_load(path))
    if settings:
        _write_atomic(path, settings)
    else:
        path.unlink()
        try:
            path.parent.rmdir()  # only if empty
        except OSError:
            pass


def codex_hooks(install_id: str | None = None, script: Path | None = None
                ) -> list[tuple[str, str, int]]:
    """``(event, command, timeout)`` of each hook Hive Lab gives Codex CLI."""
    command = hook_command("codex", install_id, script=script)
    # Codex clamps these two to 3 s, with a warning on screen for a longer one.
    return [(e, command, 3 if e in ("SessionEnd", "Interrupt") else 30) for e in CODEX_EVENTS]


def codex_args(install_id: str | None = None, script: Path | None = None,
               codex_home: Path | None = None) -> list[str]:
    """Codex CLI's argv for our hooks: one ``-c hooks.<Event>=[...]`` (TOML) per event.

    The payload comes on stdin as for Claude Code (Codex's hooks are Claude-shaped). Codex's
    older ``notify`` program is not set as well: it would report each turn's end twice.
    With ``codex_home``, exactly these hooks are trusted in its config.toml (codextrust.py);
    without, or if that fails, ``--dangerously-bypass-hook-trust`` (every hook, this run).
    """
    from . import codextrust

    hooks = codex_hooks(install_id, script)
    entries = {codextrust.flag_key(e): codextrust.trust_hash(e, c, t) for e, c, t in hooks}
    trusted = codex_home is not None and codextrust.ensure_trusted(codex_home, entries)
    args = [] if trusted else [CODEX_TRUST_FLAG]
    for event, command, timeout in hooks:
        handler = '{type="command",command=%s,timeout=%d}' % (_toml_string(command), timeout)
        args += ["-c", f"hooks.{event}=[{{hooks=[{handler}]}}]"]
    return args


def _toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, but not its surrogate pairs (``\\ud83d``),
    so non-ASCII characters stay as they are; control characters are escaped (DEL by hand:
    JSON allows it raw, TOML does not)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def codex_notify_args(install_id: str | None = None, script: Path | None = None) -> list[str]:
    """``-c notify=[...]`` for Codex versions without hooks (the payload is the last argv)."""
    return ["-c", "notify=" + json.dumps(hook_argv("codex", install_id, argv_payload=True,
                                                   script=script))]
