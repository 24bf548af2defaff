"""The HiveOS notebook runs in a kernel started by the live server and drives it."""
from __future__ import annotations

import time
from pathlib import Path

import nbformat

from support import ROOT, HiveServer, spawn, wait_for
from support.kernel import RemoteKernel

NOTEBOOK = ROOT / "notebooks" / "HiveOS.ipynb"


def test_notebook_cells_run_without_error(server: HiveServer, kernel: RemoteKernel) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code"]
    assert cells, "the notebook has code"
    outputs = []
    for source in cells:
        result = kernel.run(source)
        assert not result.errors, (source, result.errors)
        assert result.status == "ok"
        outputs.append(result)
    # the kernel found *this* server on its own: status shows our private socket
    assert server.socket_name in str(outputs[0].data)
    # the panel rendered as a widget
    assert any("application/vnd.jupyter.widget-view+json" in d for r in outputs for d in r.data)
    # the demo text came back byte-exact through tmux
    assert "hello from the notebook; $(not run) #{not expanded}" in "".join(r.stdout for r in outputs)
    assert "demo-echo" not in [s["name"] for s in server.get("sessions")["sessions"]]
    # the tasks section explained why its task waits, then left nothing behind
    printed = "".join(r.stdout for r in outputs)
    assert "demo-docs    ready    why: no installed profile has capability 'teaching-demo'" in printed
    assert "demo-review  pending  why: waits for task demo-docs" in printed
    assert not [t for t in server.get("tasks")["tasks"] if t["id"].startswith("demo-")]


def test_notebook_is_what_the_script_writes() -> None:
    """notebooks/HiveOS.ipynb is generated: edit scripts/make_notebooks.py, then run it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_notebooks",
                                                  ROOT / "scripts" / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stored = nbformat.read(NOTEBOOK, as_version=4)
    fresh = module.hiveos()
    assert [(c.cell_type, c.source) for c in stored.cells] == \
        [(c.cell_type, c.source) for c in fresh.cells]


def test_panel_actions_and_live_updates(server: HiveServer, kernel: RemoteKernel, workdir: Path) -> None:
    setup = kernel.run("from hive_lab import connect\nfrom hive_lab.widgets import SessionsPanel\n"
                       "panel = SessionsPanel(connect())\n")
    assert not setup.errors, setup.errors
    # a button press in the kernel starts a real session
    started = kernel.run(f"panel.new_name.value = 'nb-started'\npanel.new_command.value = 'cat'\n"
                         f"panel.new_cwd.value = {str(workdir)!r}\n"
                         "s = panel.start_session()\nprint(s['name'], s['state']['name'])")
    assert not started.errors, started.errors
    assert started.stdout.split()[0] == "nb-started"
    assert "nb-started" in [s["name"] for s in server.get("sessions")["sessions"]]
    # a session started elsewhere shows up in the panel through the live stream
    spawn(server, "from-outside", ["cat"], cwd=workdir)

    def panel_names() -> str:
        time.sleep(0.3)  # let the kernel's loop run the stream task between executions
        return kernel.run("print(sorted(s['name'] for s in panel.sessions))").stdout

    wait_for(lambda: "from-outside" in panel_names(), timeout=20, what="live update in the panel")
    # hostile text in a session name cannot reach the page unescaped
    html = kernel.run("print(panel.table.value)").stdout
    assert "<script" not in html
    stop = kernel.run("panel.target.value = 'nb-started'\npanel.stop_session()\n"
                      "print(panel.message.value)")
    assert "done" in stop.stdout
    assert "nb-started" not in [s["name"] for s in server.get("sessions")["sessions"]]
    server.request("DELETE", "sessions/from-outside")
