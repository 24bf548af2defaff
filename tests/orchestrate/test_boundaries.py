"""The orchestration package stays pure: no tornado, no ipywidgets, from core only errors/names."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULES = ["tasks", "scopes", "shellscan", "shellex", "guard", "audit", "planner", "claims", "schema",
           "taskstore", "prompts", "errors"]


def test_imports_stay_inside_the_boundary() -> None:
    code = ("import json, sys\n"
            + "".join(f"import hive_lab.orchestrate.{m}\n" for m in MODULES)
            + "print(json.dumps(sorted(sys.modules)))")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True, cwd=ROOT).stdout
    loaded = set(json.loads(out))
    assert not {m for m in loaded if m.split(".")[0] in ("tornado", "ipywidgets", "jupyter_server")}
    core = {m for m in loaded if m.startswith("hive_lab.core.")}
    assert core <= {"hive_lab.core.errors", "hive_lab.core.names"}, core
    assert not {m for m in loaded if m.startswith("hive_lab.server")}
