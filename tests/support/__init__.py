"""Test support shared by the tests and the benchmarks: a real server, helpers, a stand-in agent.

``support.server`` starts a real ``jupyter server`` with Hive Lab (no pytest in it, so the
benchmarks use it too); ``support.helpers`` spawns agents and fires hooks as agents do;
``support.kernel`` runs code in a kernel the server started; ``support/scripted_agent.py`` is
the stand-in agent (it stands in for the model only).
"""
from .helpers import (GIT_ENV, ROOT, SAMPLES, fire_hook, git, hook_events, make_repo, spawn,
                      state_of)
from .server import BIN, HiveServer, free_port, wait_for

__all__ = ["BIN", "GIT_ENV", "ROOT", "SAMPLES", "HiveServer", "fire_hook", "free_port", "git",
           "hook_events", "make_repo", "spawn", "state_of", "wait_for"]
