"""`hive-lab lab` (issue 9, B1) and server discovery speed (B7): real processes, real Jupyter."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from support import BIN, ROOT, HiveServer, free_port, wait_for

NOTEBOOK = ROOT / "notebooks" / "HiveOS.ipynb"


def lab_env(base: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JPY_", "JUPYTER_")) and k != "BROWSER"}
    for sub in ("data", "runtime", "config"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    env.update(JUPYTER_DATA_DIR=str(base / "data"), JUPYTER_RUNTIME_DIR=str(base / "runtime"),
               JUPYTER_CONFIG_DIR=str(base / "config"),
               PATH=os.pathsep.join([str(BIN), env.get("PATH", "")]))
    return env


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.mark.skipif(os.geteuid() != 0, reason="checks the root case (the normal one here)")
@pytest.mark.parametrize("style", ["flags", "after-dashes"])
def test_lab_opens_the_notebook_as_root_and_prints_url_with_token(tmp_path: Path, style: str) -> None:
    port = free_port()
    # no token given: Jupyter makes one and must print it (it hides tokens it was given)
    flags = ["--no-browser", f"--ServerApp.port={port}", "--ServerApp.ip=127.0.0.1"]
    argv = [str(BIN / "hive-lab"), "lab", "--notebook", str(NOTEBOOK)]
    argv += ["--", *flags] if style == "after-dashes" else flags
    log = tmp_path / "lab.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=lab_env(tmp_path), stdout=out, stderr=subprocess.STDOUT,
                                cwd=tmp_path)
        try:
            pattern = rf"http://127\.0\.0\.1:{port}/lab\S*\?token=([0-9a-f]{{16,}})"
            wait_for(lambda: proc.poll() is not None or re.search(pattern, log.read_text()),
                     timeout=90, what="JupyterLab to print its URL with the token")
            text = log.read_text()
            assert proc.poll() is None, text[-3000:]
            assert "Running as root is not recommended" not in text
            assert "running as root, so passing --allow-root" in text
            # the URL printed, with its token, opens the HiveOS notebook's page
            found = re.search(pattern, text)
            assert found, text[-3000:]
            token = found.group(1)
            # the first page a fresh JupyterLab renders can take a while on a loaded machine
            wait_for(lambda: answers(f"http://127.0.0.1:{port}/lab/tree/notebooks/HiveOS.ipynb"
                                     f"?token={token}"), timeout=60, what="the notebook's page")
            assert answers(f"http://127.0.0.1:{port}/hive_lab/api/status?token={token}")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_lab_command_line_keeps_every_jupyter_flag() -> None:
    from hive_lab import cli

    argv = cli.lab_argv(str(NOTEBOOK), ["--no-browser", "--port", "9000"], root=True)
    assert argv is not None and argv[1] == "lab"
    assert argv[-4:] == ["--allow-root", "--no-browser", "--port", "9000"]
    assert "--LabApp.default_url=/lab/tree/notebooks/HiveOS.ipynb" in argv
    assert "--allow-root" not in cli.lab_argv(str(NOTEBOOK), [], root=False)
    given = cli.lab_argv(str(NOTEBOOK), ["--allow-root"], root=True)
    assert given.count("--allow-root") == 1


def test_discovery_reads_runtime_files_without_importing_the_server(server: HiveServer) -> None:
    """`hive-lab ls` found the server through jupyter_server.serverapp: 1.2-2.3 s of imports."""
    code = ("import sys\nfrom hive_lab.client import find_server\ninfo = find_server()\n"
            "print(info.url, info.token == sys.argv[1], 'jupyter_server.serverapp' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, server.token], env=server.env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [server.url, "True", "False"]
    listed = server.cli("ls", discover=True)
    assert listed.returncode == 0, listed.stderr


def test_discovery_skips_dead_and_broken_runtime_files(tmp_path: Path) -> None:
    from hive_lab.client import running_servers

    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / "jpserver-1.json").write_text('{"pid": %d, "url": "http://x/"}' % dead.pid)
    (tmp_path / "jpserver-2.json").write_text("{not json")
    (tmp_path / "jpserver-3.json").write_text('{"pid": %d, "url": "http://me/"}' % os.getpid())
    (tmp_path / "other.json").write_text('{"pid": %d, "url": "http://no/"}' % os.getpid())
    assert [s["url"] for s in running_servers(str(tmp_path))] == ["http://me/"]
    assert (tmp_path / "jpserver-1.json").exists()  # another server's file is not ours to delete
