"""Installing and removing Hive Lab's hooks in each agent CLI's own configuration.

Claude Code reads project-local hooks from ``.claude/settings.local.json`` (never committed).
We merge our entries into that file, never touching the user's own, and on cleanup remove
only entries whose command runs our hook client. Gemini CLI gets the same treatment in
``.gemini/settings.json``; Codex CLI takes its ``notify`` program as a ``-c`` override on the
command line, so nothing is written for it.
"""
from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from .datadir import atomic_write
from .errors import BadRequest

HOOK_SCRIPT = Path(__file__).resolve().parent.parent / "hook.py"
COMPILED_NAME = "hive_lab_hook.pyc"  # written by the server into <data_dir>/bin at start-up
MARKERS = ("hive_lab/hook.py", COMPILED_NAME)

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
GEMINI_EVENTS = (
    "SessionStart", "SessionEnd", "BeforeAgent", "AfterAgent", "BeforeModel", "AfterModel",
    "BeforeToolSelection", "BeforeTool", "AfterTool", "PreCompress", "Notification",
)


def hook_argv(agent: str, install: str | None = None, argv_payload: bool = False,
              script: Path | None = None) -> list[str]:
    """The hook client's argv: our interpreter without site imports, for speed.

    ``script`` is the precompiled client (``<data_dir>/bin/hive_lab_hook.pyc``, ~4 ms faster
    per call than compiling ``hook.py`` each time); the plain source is the fallback.
    """
    argv = [sys.executable, "-S", "-E", "-s", str(script or HOOK_SCRIPT), "--agent", agent]
    if install:
        argv += ["--install", install]
    if argv_payload:
        argv.append("--argv-payload")
    return argv


def hook_command(agent: str, install: str | None = None, script: Path | None = None) -> str:
    """The hook client as one shell command line (Claude and Gemini run hooks through sh).

    Guarded by ``test -f``: if the client file is gone (package removed, data dir wiped),
    python would exit 2, which Claude Code reads as "block this tool call".
    """
    argv = hook_argv(agent, install, script=script)
    return f"test -f {shlex.quote(argv[4])} && exec {shlex.join(argv)}"


def is_ours(entry: Any) -> bool:
    return isinstance(entry, dict) and any(m in str(entry.get("command", "")) for m in MARKERS)


def compile_client(data_dir: Path) -> Path:
    """Write the precompiled hook client for this interpreter; returns its path."""
    from .. import hook

    target = Path(data_dir) / "bin" / COMPILED_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    hook.compile_to(str(tmp))
    os.replace(tmp, target)
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
           timeout: int) -> dict[str, Any]:
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
            groups.append({"hooks": [{"type": "command", "command": command, "timeout": timeout}]})
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
        _merge(settings, GEMINI_EVENTS, command, timeout=30000)  # Gemini counts milliseconds
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


def codex_args(install_id: str | None = None, script: Path | None = None) -> list[str]:
    """``-c notify=[...]`` for Codex CLI: the payload arrives as the last argv argument."""
    return ["-c", "notify=" + json.dumps(hook_argv("codex", install_id, argv_payload=True,
                                                   script=script))]
