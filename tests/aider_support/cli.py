"""Finding (installing on first use) the real Aider, and a private HOME for it."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-aider.sh"
VERSION = "0.86.2"
_INSTALL: dict[str, object] = {}


def find_or_install_aider() -> Path | None:
    """The ``aider`` launcher, installed on first use (once per process); None if impossible.

    ``$HIVE_AIDER_BIN`` names an existing launcher to use instead; the reason for a None is
    in :func:`skip_reason`.
    """
    if "bin" not in _INSTALL:
        _INSTALL["bin"], _INSTALL["reason"] = _install()
    return _INSTALL["bin"]  # type: ignore[return-value]


def skip_reason() -> str | None:
    find_or_install_aider()
    return _INSTALL.get("reason")  # type: ignore[return-value]


def _install() -> tuple[Path | None, str | None]:
    override = os.environ.get("HIVE_AIDER_BIN")
    if override:
        p = Path(override)
        if p.is_file() and os.access(p, os.X_OK):
            return p, None
        return None, f"HIVE_AIDER_BIN={override} is not an executable file"
    if not INSTALL_SCRIPT.exists():
        return None, f"{INSTALL_SCRIPT} is missing"
    try:
        out = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True,
                             timeout=900, env={**os.environ, "HIVE_AIDER_VERSION": VERSION})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{INSTALL_SCRIPT.name} did not run: {exc}"
    if out.returncode != 0:
        tail = " | ".join(out.stderr.strip().splitlines()[-3:])
        return None, f"{INSTALL_SCRIPT.name} exit {out.returncode}: {tail}"
    return Path(out.stdout.strip().splitlines()[-1]), None


def private_home(base: Path, aider: Path, api_base: str, model: str) -> dict[str, str]:
    """A HOME for aider that never reaches the network, and the env pointing it at the fake.

    Aider fetches litellm's model table from GitHub on start (``~/.aider/caches``, refreshed
    daily; without it the model is "unknown": no cost, its name REDACTED in the log): the
    cache is seeded from the litellm its venv carries, and litellm itself is told to use its
    local copy. A git identity keeps aider from warning about a missing one.
    Returns the env for the session (aider reads every option from ``AIDER_*`` too).
    """
    home = base / "aider-home"
    caches = home / ".aider" / "caches"
    caches.mkdir(parents=True, exist_ok=True)
    venv_lib = aider.resolve().parent.parent / "lib"
    table = next(venv_lib.glob("python3*/site-packages/litellm/"
                               "model_prices_and_context_window_backup.json"), None)
    if table is not None:
        shutil.copyfile(table, caches / "model_prices_and_context_window.json")
    (home / ".gitconfig").write_text("[user]\n\tname = Hive Test\n\temail = hive@test\n")
    return {"HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "AIDER_OPENAI_API_BASE": api_base, "AIDER_OPENAI_API_KEY": "fake-key",
            "AIDER_MODEL": model}
