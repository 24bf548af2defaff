"""Finding (installing on first use) the real Gemini CLI, and a private HOME for it."""
from __future__ import annotations

import json
from pathlib import Path

from support.installed import InstalledCLI

VERSION = "0.61.0"


CLI = InstalledCLI("gemini", VERSION)


def find_or_install_gemini() -> Path | None:
    """The ``gemini`` launcher, installed on first use (once per process); None if impossible
    (``$HIVE_GEMINI_BIN`` names one to use instead; :func:`skip_reason` says why)."""
    return CLI.find()


def skip_reason() -> str | None:
    return CLI.skip_reason()


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
