"""Finding (installing on first use) the real Codex CLI, and a private CODEX_HOME for it."""
from __future__ import annotations

import json
from pathlib import Path

from support.installed import InstalledCLI

VERSION = "0.169.0"
# A model slug that 0.169.0 knows (bundled model metadata: with an unknown slug it warns
# "Model metadata ... not found" and offers no apply_patch tool).
MODEL = "gpt-5.5"
KEY_ENV = "HIVE_FAKE_OPENAI_KEY"


CLI = InstalledCLI("codex", VERSION)


def find_or_install_codex() -> Path | None:
    """The ``codex`` launcher, installed on first use (once per process); None if impossible
    (``$HIVE_CODEX_BIN`` names one to use instead; :func:`skip_reason` says why)."""
    return CLI.find()


def skip_reason() -> str | None:
    return CLI.skip_reason()


def _toml_str(text: str) -> str:
    return json.dumps(text)  # a JSON string is a TOML basic string


def private_home(base: Path, api_base_url: str, trusted: list[Path] = (),  # type: ignore[assignment]
                 extra: str = "") -> dict[str, str]:
    """A ``CODEX_HOME`` whose config.toml points Codex at the fake API and skips its notices.

    * ``model_provider = "hive-fake"``: ``[model_providers.hive-fake]`` with ``base_url``
      (``<fake>/v1``; Codex POSTs ``<base_url>/responses``), ``wire_api = "responses"`` and
      ``env_key`` naming the variable with a dummy key;
    * ``[projects."<dir>"] trust_level = "trusted"`` for ``trusted`` (else the "Trust this
      folder?" screen comes first; Hive Lab's first-run cue answers it too);
    * the "Meet <new model>" migration notice marked as seen, analytics and update checks off.

    Returns the env for the session: CODEX_HOME plus the dummy key.
    """
    home = base / "codex-home"
    home.mkdir(parents=True, exist_ok=True)
    lines = [
        f"model = {_toml_str(MODEL)}",
        'model_provider = "hive-fake"',
        "check_for_update_on_startup = false",
        "",
        "[model_providers.hive-fake]",
        'name = "Hive Lab test stand-in"',
        f"base_url = {_toml_str(api_base_url + '/v1')}",
        'wire_api = "responses"',
        f"env_key = {_toml_str(KEY_ENV)}",
        "",
        "[analytics]",
        "enabled = false",
        "",
        "[tui]",
        "screen_reader_detection_done = true",
        "",
        "[notice.model_migrations]",
        f'{_toml_str(MODEL)} = "gpt-6-sol"',
        "",
    ]
    for p in trusted:
        lines += [f"[projects.{_toml_str(str(p))}]", 'trust_level = "trusted"', ""]
    (home / "config.toml").write_text("\n".join(lines) + extra)
    return {"CODEX_HOME": str(home), KEY_ENV: "fake-key"}


def hook_logger(log: Path, bin_dir: Path) -> str:
    """A tiny independent hook that appends every payload to ``log`` (the ground truth)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "hooklog"
    script.write_text(f"#!/bin/sh\n{{ cat; echo; }} >> '{log}'\n")
    script.chmod(0o755)
    return str(script)


def logger_hooks_toml(command: str, events: tuple[str, ...], home: Path) -> str:
    """``[[hooks.<Event>]]`` tables running ``command`` for each event, in the user config
    layer of ``home`` (the CODEX_HOME of :func:`private_home`), trusted there as Codex's
    ``/hooks`` screen would (its ``[hooks.state]``; hash as in hive_lab.core.codextrust)."""
    from hive_lab.core.codextrust import snake, trust_hash

    def timeout(e: str) -> int:  # Codex clamps these two to 3 s (and hashes the clamped one)
        return 3 if e in ("SessionEnd", "Interrupt") else 30

    out = []
    for e in events:
        out += [f"[[hooks.{e}]]", f"[[hooks.{e}.hooks]]", 'type = "command"',
                f"command = {_toml_str(command)}", f"timeout = {timeout(e)}", ""]
    for e in events:
        key = f"{home / 'codex-home' / 'config.toml'}:{snake(e)}:0:0"
        out += [f"[hooks.state.{_toml_str(key)}]",
                f"trusted_hash = {_toml_str(trust_hash(e, command, timeout(e)))}", ""]
    return "\n".join(out)


def read_log(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def rollouts(home: Path) -> list[Path]:
    return sorted((home / "sessions").rglob("rollout-*.jsonl"))
