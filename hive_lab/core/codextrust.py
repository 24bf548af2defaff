"""Trusting exactly Hive Lab's own Codex CLI hooks, as Codex's ``/hooks`` screen would.

Codex (0.169.0) runs a non-managed hook only when ``$CODEX_HOME/config.toml`` holds
``[hooks.state."<key>"] trusted_hash = "sha256:<hex>"`` for it. Hive Lab's hooks come as
``-c`` overrides, whose keys are ``/<session-flags>/config.toml:<event_snake>:0:0``; the hash
is SHA-256 of the hook's identity as compact, key-sorted JSON: ``{"event_name":
"<event_snake>", "hooks": [{"async": false, "command": ..., "timeout": ..., "type":
"command"}]}`` (no ``matcher`` key when there is none). Checked against ``codex app-server``'s
``hooks/list`` ``currentHash`` (tests/codex_support/NOTES.md).

Trusting only these entries keeps Codex's review for every other hook (a repository's
``.codex/hooks.json`` included), which ``--dangerously-bypass-hook-trust`` would lift. The
file is the user's: entries are appended (or a stale hash of ours replaced) and the result
must parse with every entry in place, else nothing is written and the caller falls back.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tomllib
from pathlib import Path
from typing import Callable, Mapping

from .datadir import atomic_write

log = logging.getLogger(__name__)

SESSION_FLAGS_SOURCE = "/<session-flags>/config.toml"


def snake(event: str) -> str:
    """``PreToolUse`` -> ``pre_tool_use`` (Codex's event names in keys and hashes)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", event).lower()


def trust_hash(event: str, command: str, timeout: int) -> str:
    identity = {"event_name": snake(event), "hooks": [
        {"async": False, "command": command, "timeout": timeout, "type": "command"}]}
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def flag_key(event: str) -> str:
    """The key of the first (only) handler of a ``-c hooks.<event>=[...]`` override."""
    return f"{SESSION_FLAGS_SOURCE}:{snake(event)}:0:0"


def codex_home(env: Mapping[str, str]) -> Path:
    """Where the agent's Codex keeps its config: ``CODEX_HOME`` as it will see it."""
    value = env.get("CODEX_HOME") or os.environ.get("CODEX_HOME")
    return Path(value).expanduser() if value else Path.home() / ".codex"


def _state(data: dict) -> dict:
    hooks = data.get("hooks")
    state = hooks.get("state") if isinstance(hooks, dict) else None
    return state if isinstance(state, dict) else {}


def _trusted(data: dict, entries: Mapping[str, str]) -> bool:
    state = _state(data)
    return all(isinstance(state.get(k), dict) and state[k].get("trusted_hash") == h
               for k, h in entries.items())


def _replacer(header: str, line: str) -> Callable[[re.Match[str]], str]:
    return lambda m: f"{header}\n{m.group(1)}{line}"


def ensure_trusted(home: Path, entries: Mapping[str, str]) -> bool:
    """Make ``home/config.toml`` trust ``entries`` ({key: hash}); False if it cannot be done.

    Never leaves the file unparsable or half-changed: the new text is checked with tomllib
    before the atomic replace, and a file that does not parse now is left alone.
    """
    path = home / "config.toml"
    try:
        text = path.read_text() if path.exists() else ""
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        log.warning("codex hooks: cannot read %s (%s); trusting them for this run only", path, exc)
        return False
    if _trusted(data, entries):
        return True
    state = _state(data)
    new = text
    for key, digest in entries.items():
        header = f"[hooks.state.{json.dumps(key)}]"
        if key in state:  # ours, with an older hash (another hook client path): replace it
            pattern = re.compile(rf"^{re.escape(header)}[ \t]*\n((?:(?!\[).*\n)*?)"
                                 r"trusted_hash[ \t]*=[ \t]*\"[^\"\n]*\"", re.M)
            new, n = pattern.subn(_replacer(header, f"trusted_hash = {json.dumps(digest)}"),
                                  new, count=1)
            if n != 1:
                return False
            continue
        if new and not new.endswith("\n"):
            new += "\n"
        new += f"\n{header}\ntrusted_hash = {json.dumps(digest)}\n"
    try:
        if not _trusted(tomllib.loads(new), entries):
            return False
    except tomllib.TOMLDecodeError:
        return False  # e.g. an inline `hooks = {...}` table: no header may extend it
    try:
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, new, mode=mode)
    except OSError as exc:
        log.warning("codex hooks: cannot write %s (%s); trusting them for this run only", path, exc)
        return False
    return True
