"""A real agent CLI the tests install on first use with its ``scripts/install-*.sh``.

One place for what the Gemini, Codex and Aider supports did alike: an override through
``$HIVE_<NAME>_BIN``, the install script run once per process with a pinned version, and the
reason the tests skip when it cannot be had.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


class InstalledCLI:
    """``find()`` gives the launcher (installing it the first time) or None; ``skip_reason()``
    says why it is None."""

    def __init__(self, name: str, version: str, timeout: float = 600.0) -> None:
        self.name, self.version, self.timeout = name, version, timeout
        self.script = REPO_ROOT / "scripts" / f"install-{name}.sh"
        self._done: tuple[Path | None, str | None] | None = None

    def find(self) -> Path | None:
        if self._done is None:
            self._done = self._install()
        return self._done[0]

    def skip_reason(self) -> str | None:
        self.find()
        assert self._done is not None
        return self._done[1]

    def _install(self) -> tuple[Path | None, str | None]:
        env_bin = f"HIVE_{self.name.upper()}_BIN"
        override = os.environ.get(env_bin)
        if override:
            p = Path(override)
            if p.is_file() and os.access(p, os.X_OK):
                return p, None
            return None, f"{env_bin}={override} is not an executable file"
        if not self.script.exists():
            return None, f"{self.script} is missing"
        try:
            out = subprocess.run(["bash", str(self.script)], capture_output=True, text=True,
                                 timeout=self.timeout,
                                 env={**os.environ, f"HIVE_{self.name.upper()}_VERSION": self.version})
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"{self.script.name} did not run: {exc}"
        if out.returncode != 0:
            tail = " | ".join(out.stderr.strip().splitlines()[-3:])
            return None, f"{self.script.name} exit {out.returncode}: {tail}"
        return Path(out.stdout.strip().splitlines()[-1]), None
