"""Trusting exactly Hive Lab's Codex hooks in $CODEX_HOME/config.toml (core/codextrust.py)."""
from __future__ import annotations

import tomllib
from pathlib import Path

from hive_lab.core import codextrust, installers

# codex 0.169.0 `app-server` hooks/list for {type="command", command="/tmp/cx/hooklog",
# timeout=30} under PreToolUse and PreModelRequest (any file, -c overrides too).
SEEN = {("PreToolUse", "sha256:c59faaa585e3d8f3ad60edb0084be400715bf629b244f3401b76b0ecddb6cbc6"),
        ("PreModelRequest",
         "sha256:e47335e979ee9d4cfbde921aba07c816bdcae2ae203253bf4cfd3805088298df")}


def test_the_hash_is_codexs_own() -> None:
    for event, digest in SEEN:
        assert codextrust.trust_hash(event, "/tmp/cx/hooklog", 30) == digest
    assert codextrust.flag_key("PreToolUse") == "/<session-flags>/config.toml:pre_tool_use:0:0"


def _state(home: Path) -> dict:
    return tomllib.loads((home / "config.toml").read_text())["hooks"]["state"]


def test_our_hooks_are_trusted_once_and_the_users_config_is_kept(tmp_path: Path) -> None:
    home = tmp_path / "codex"
    home.mkdir()
    user = ('model = "gpt-5.5"\n[projects."/r"]\ntrust_level = "trusted"\n'
            '[hooks.state."/u/hooks.json:stop:0:0"]\ntrusted_hash = "sha256:users"\n')
    (home / "config.toml").write_text(user)
    (home / "config.toml").chmod(0o640)
    args = installers.codex_args(script=tmp_path / "hive_lab_hook", codex_home=home)
    assert installers.CODEX_TRUST_FLAG not in args
    text = (home / "config.toml").read_text()
    assert text.startswith(user) and oct((home / "config.toml").stat().st_mode & 0o777) == "0o640"
    state = _state(home)
    assert state["/u/hooks.json:stop:0:0"] == {"trusted_hash": "sha256:users"}
    for event, command, timeout in installers.codex_hooks(script=tmp_path / "hive_lab_hook"):
        assert state[codextrust.flag_key(event)]["trusted_hash"] == codextrust.trust_hash(
            event, command, timeout)
    # Again: nothing to do, the file is not touched.
    installers.codex_args(script=tmp_path / "hive_lab_hook", codex_home=home)
    assert (home / "config.toml").read_text() == text
    # Another hook client path (a moved data dir): our entries get the new hash, in place.
    installers.codex_args(script=tmp_path / "elsewhere" / "hive_lab_hook", codex_home=home)
    moved = (home / "config.toml").read_text()
    assert moved.count("[hooks.state.") == text.count("[hooks.state.")
    command = installers.hook_command("codex", script=tmp_path / "elsewhere" / "hive_lab_hook")
    assert _state(home)[codextrust.flag_key("Stop")]["trusted_hash"] == codextrust.trust_hash(
        "Stop", command, 30)


def test_a_missing_home_is_created_private(tmp_path: Path) -> None:
    home = tmp_path / "new" / "codex"
    assert installers.CODEX_TRUST_FLAG not in installers.codex_args(codex_home=home)
    assert oct((home / "config.toml").stat().st_mode & 0o777) == "0o600"
    assert len(_state(home)) == len(installers.CODEX_EVENTS)


def test_a_config_it_cannot_extend_is_left_alone_and_the_run_falls_back(tmp_path: Path) -> None:
    for n, text in enumerate(('model = "x"\nbroken = [\n',     # does not parse
                              'hooks = { state = {} }\n')):    # an inline table: no header fits
        home = tmp_path / str(n)
        home.mkdir()
        (home / "config.toml").write_text(text)
        args = installers.codex_args(codex_home=home)
        assert args[0] == installers.CODEX_TRUST_FLAG
        assert (home / "config.toml").read_text() == text
