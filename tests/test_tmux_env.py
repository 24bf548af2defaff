"""What agents inherit: never the Jupyter server's own secrets or markers."""
from __future__ import annotations

from hive_lab.core.tmux import agent_environment


def test_agent_environment_drops_private_variables() -> None:
    env = agent_environment({"JPY_SESSION_NAME": "x", "JUPYTER_TOKEN": "secret",
                             "JUPYTERHUB_API_TOKEN": "t", "TMUX": "/tmp/s", "CLAUDECODE": "1",
                             "CLAUDE_CODE_ENTRYPOINT": "cli", "CI": "true", "ANTHROPIC_API_KEY": "kept",
                             "PATH": "/usr/bin", "HOME": "/root"})
    assert env == {"ANTHROPIC_API_KEY": "kept", "PATH": "/usr/bin", "HOME": "/root"}
