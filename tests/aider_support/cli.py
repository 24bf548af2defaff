"""Finding (installing on first use) the real Aider, and a private HOME for it."""
from __future__ import annotations

import shutil
from pathlib import Path

from support.installed import InstalledCLI

VERSION = "0.86.2"


CLI = InstalledCLI("aider", VERSION, timeout=900)


def find_or_install_aider() -> Path | None:
    """The ``aider`` launcher, installed on first use (once per process); None if impossible
    (``$HIVE_AIDER_BIN`` names one to use instead; :func:`skip_reason` says why)."""
    return CLI.find()


def skip_reason() -> str | None:
    return CLI.skip_reason()


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
