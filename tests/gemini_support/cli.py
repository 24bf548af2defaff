"""Finding (installing on first use) the real Gemini CLI, and a private HOME for it."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-gemini.sh"
VERSION = "0.61.0"
_INSTALL: dict[str, object] = {}


def find_or_install_gemini() -> Path | None:
    """The ``gemini`` launcher, installed on first use (once per process); None if impossible.

    ``$HIVE_GEMINI_BIN`` names an existing launcher to use instead; the reason for a None is
    in :func:`skip_reason`.
    """
    if "bin" not in _INSTALL:
        _INSTALL["bin"], _INSTALL["reason"] = _install()
    return _INSTALL["bin"]  # type: ignore[return-value]


def skip_reason() -> str | None:
    find_or_install_gemini()
    return _INSTALL.get("reason")  # type: ignore[return-value]


def _install() -> tuple[Path | None, str | None]:
    override = os.environ.get("HIVE_GEMINI_BIN")
    if override:
        p = Path(override)
        if p.is_file() and os.access(p, os.X_OK):
            return p, None
        return None, f"HIVE_GEMINI_BIN={override} is not an executable file"
    if not INSTALL_SCRIPT.exists():
        return None, f"{INSTALL_SCRIPT} is missing"
    try:
        out = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True,
                             timeout=600, env={**os.environ, "HIVE_GEMINI_VERSION": VERSION})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{INSTALL_SCRIPT.name} did not run: {exc}"
    if out.returncode != 0:
        tail = " | ".join(out.stderr.strip().splitlines()[-3:])
        return None, f"{INSTALL_SCRIPT.name} exit {out.returncode}: {tail}"
    return Path(out.stdout.strip().splitlines()[-1]), None


def private_home(base: Path, trusted: list[Path], api_env: dict[str, str],
                 approval_mode: str = "default", allowed: tuple[str, ...] = ()
                 ) -> dict[str, str]:
    """A HOME whose ``~/.gemini`` trusts ``trusted`` (and what is below them), picks the
    ``gemini-api-key`` auth type (0.61.0's env-derived ``gateway`` type fails its own
    validation: "Invalid auth method selected."), and never updates or phones home.

    Returns the env for the session: HOME plus the fake API's variables.
    """
    home = base / "gemini-home"
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "general": {"disableAutoUpdate": True, "defaultApprovalMode": approval_mode},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
    }
    if allowed:  # tools that run without the CLI's confirmation dialog
        settings["tools"] = {"allowed": list(allowed)}
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings))
    folders = {str(p): "TRUST_FOLDER" for p in trusted}
    (home / ".gemini" / "trustedFolders.json").write_text(json.dumps(folders))
    return {"HOME": str(home), **api_env}


def hook_logger(log: Path, bin_dir: Path) -> str:
    """A tiny independent hook that appends every payload to ``log`` (the ground truth)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "hooklog"
    script.write_text(f"#!/bin/sh\n{{ cat; echo; }} >> '{log}'\n")
    script.chmod(0o755)
    return str(script)


def read_log(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
