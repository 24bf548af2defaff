"""The pre-tool guard on a real directory layout: file tools, patches, shell, destructive git."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hive_lab.orchestrate.guard import ALLOW, ASK, DENY, decide, patch_paths
from hive_lab.orchestrate.tasks import Task

SAMPLES = Path("/work/shared/samples/claude-code-2.1.197-hooks.jsonl")


@pytest.fixture()
def env(tmp_path: Path) -> dict:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    wt = tmp_path / "wt" / "api"
    (wt / "src" / "auth").mkdir(parents=True)
    (wt / "docs").mkdir()
    other_wt = tmp_path / "wt" / "billing"
    other_wt.mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, wt / "src" / "out")
    task = Task(id="api", prompt="p", repo=str(repo), scope=("src/**",), shared=("CHANGELOG.md",),
                worktree=str(wt))
    other = Task(id="billing", prompt="p", repo=str(repo), scope=("src/billing/**", "CHANGELOG.md"),
                 worktree=str(other_wt))
    return {"repo": str(repo), "wt": str(wt), "other_wt": str(other_wt), "task": task,
            "others": [other], "scratch": [str(tmp_path / "scratch")]}


def run(env: dict, tool: str, inp: object, cwd: str | None = None, task: Task | None = None):
    return decide(tool, inp, cwd or env["wt"], task or env["task"], env["others"], env["wt"],
                  env["repo"], scratch_dirs=env["scratch"], home="/home/nobody")


def test_sample_shapes_are_understood(env: dict) -> None:
    """The real Claude Code payloads: Write's file_path, Bash's command."""
    seen = set()
    for line in SAMPLES.read_text().splitlines():
        p = json.loads(line)
        if p.get("hook_event_name") == "PreToolUse" and p["tool_name"] not in seen:
            seen.add(p["tool_name"])
            d = run(env, p["tool_name"], p["tool_input"], cwd=env["wt"])
            # Write of a top-level file is outside src/**; ls/pwd are read-only
            assert d.action == (DENY if p["tool_name"] == "Write" else ALLOW), (p, d)
    assert {"Write", "Bash"} <= seen


@pytest.mark.parametrize("tool,key", [("Write", "file_path"), ("Edit", "file_path"),
                                      ("MultiEdit", "file_path"), ("NotebookEdit", "notebook_path"),
                                      ("write_file", "file_path"), ("replace", "file_path")])
def test_file_tools(env: dict, tool: str, key: str) -> None:
    wt = env["wt"]
    assert run(env, tool, {key: f"{wt}/src/auth/login.py"}).action == ALLOW
    d = run(env, tool, {key: f"{wt}/docs/x.md"})
    assert d.action == DENY
    assert "outside the scope of task api" in d.reason
    assert "hive-lab task request-scope api docs/x.md --why" in d.reason


def test_owned_by_other_task_names_it(env: dict) -> None:
    d = run(env, "Write", {"file_path": "src/billing/pay.py"})
    assert d.action == DENY and "belongs to task billing" in d.reason and "src/billing/**" in d.reason
    # shared in this task's list: allowed even though billing's scope names it
    assert run(env, "Edit", {"file_path": "CHANGELOG.md"}).action == ALLOW


@pytest.mark.parametrize("spelling", [
    "{wt}/src/../docs/x.md", "src/../docs/x.md", "./docs//x.md", "src/out/x.py", "../billing/src/a.py",
    "{other}/src/billing/a.py", "{repo}/src/a.py", "{repo}/.git/hooks/pre-commit", ".git/config",
    "/etc/passwd", "{wt}", "",
])
def test_no_spelling_gets_round_the_guard(env: dict, spelling: str) -> None:
    path = spelling.format(wt=env["wt"], other=env["other_wt"], repo=env["repo"])
    d = run(env, "Write", {"file_path": path})
    assert d.action == DENY, (path, d)


def test_main_checkout_reason_points_to_worktree(env: dict) -> None:
    d = run(env, "Write", {"file_path": f"{env['repo']}/src/a.py"})
    assert "main checkout" in d.reason and f"{env['wt']}/src/a.py" in d.reason


def test_relative_to_cwd_and_scratch(env: dict, tmp_path: Path) -> None:
    assert run(env, "Write", {"file_path": "login.py"}, cwd=f"{env['wt']}/src/auth").action == ALLOW
    assert run(env, "Write", {"file_path": str(tmp_path / "scratch" / "notes.md")}).action == ALLOW


def test_read_only_task_denies_every_write(env: dict) -> None:
    ro = Task(id="review", prompt="p", repo=env["repo"], scope=(), shared=("CHANGELOG.md",))
    for path in ("src/a.py", "CHANGELOG.md", "docs/x.md"):
        d = run(env, "Write", {"file_path": path}, task=ro)
        assert d.action == DENY and "read-only" in d.reason
    assert run(env, "Bash", {"command": "echo x > src/a.py"}, task=ro).action == ASK
    assert run(env, "Read", {"file_path": "src/a.py"}, task=ro).action == ALLOW


def test_malformed_inputs(env: dict) -> None:
    assert run(env, "Write", {"file_path": 3}).action == DENY
    assert run(env, "Write", "not a dict").action == DENY
    assert run(env, "Write", {"file_path": "src/\x00a"}).action == DENY
    assert run(env, "Bash", {"command": None}).action == ALLOW
    assert run(env, "mcp__thing__do", {"x": 1}).action == ALLOW
    assert run(env, "Read", {"file_path": "/etc/passwd"}).action == ALLOW
    d = run(env, "Write", {"file_path": "docs/\x1b[2Jevil\nline.md"})
    assert d.action == DENY and "\x1b" not in d.reason and "\n" not in d.reason


PATCH = """*** Begin Patch
*** Add File: src/auth/new.py
+x = 1
*** Update File: src/auth/login.py
@@
-a
+b
*** Update File: src/auth/old.py
*** Move to: docs/moved.py
*** Delete File: src/auth/gone.py
*** End Patch
"""


def test_codex_apply_patch(env: dict) -> None:
    assert patch_paths(PATCH) == ["src/auth/new.py", "src/auth/login.py", "src/auth/old.py",
                                  "docs/moved.py", "src/auth/gone.py"]
    d = run(env, "apply_patch", {"input": PATCH})
    assert d.action == DENY and "docs/moved.py" in d.reason
    ok = PATCH.replace("*** Move to: docs/moved.py\n", "")
    assert run(env, "apply_patch", {"input": ok}).action == ALLOW
    assert run(env, "shell", {"command": ["apply_patch", PATCH]}).action == DENY
    assert run(env, "apply_patch", {"input": "nonsense"}).action == DENY


@pytest.mark.parametrize("command,action", [
    ("ls -la && git status && git diff HEAD~1 | head", ALLOW),
    ("echo x > docs/y.md", ASK),
    ("echo x > src/y.md", ALLOW),
    ("echo x >> /dev/null 2>&1", ALLOW),
    ("pytest -q 2>&1 | tee docs/log.txt", ASK),
    ("cat a | tee src/log.txt", ALLOW),
    ("sed -i 's/a/b/' docs/x.md", ASK),
    ("sed -n 's/a/b/p' docs/x.md", ALLOW),
    ("sed -i.bak -e 's/a/b/' src/x.py", ALLOW),
    ("perl -pi -e 's/a/b/' README.md", ASK),
    ("cp src/a.py docs/a.py", ASK),
    ("cp docs/a.py src/a.py", ALLOW),
    ("mv docs/a.py src/a.py", ASK),  # the source is removed
    ("rm -rf docs", ASK),
    ("touch src/a.py; mkdir -p src/b", ALLOW),
    ("ln -s ../x docs/link", ASK),
    ("install -m 644 src/a docs/b", ASK),
    ("cd docs && touch x.md", ASK),
    ("cd src && touch x.md", ALLOW),
    ("(cd docs; rm x)", ASK),
    ("git checkout -- docs/x.md", ASK),
    ("git checkout -- src/x.py", ALLOW),
    ("git restore docs/x.md", ASK),
    ("git restore --staged docs/x.md", ALLOW),
    ("git checkout main", ALLOW),
    ("python -c \"open('docs/x.md','w').write('x')\"", ASK),
    ("python3 -c \"open('src/x.py','w').write('x')\"", ALLOW),
    ("python -c \"import os; os.remove(p)\"", ASK),
    ("node -e \"require('fs').writeFileSync('docs/a.json', '{}')\"", ASK),
    ("python -c 'print(1)'", ALLOW),
    ("cat > docs/notes.md <<'EOF'\nit's \"here\" $(rm -rf /)\nEOF", ASK),
    ("cat > src/notes.md <<EOF\nunbalanced ' quote\nEOF\necho done", ALLOW),
    ("bash -c 'echo x > docs/a'", ASK),
    ("echo $(touch docs/a)", ASK),
    ("echo x > $OUT", ASK),
    ("echo x > ~/.bashrc", ASK),
    ("rm src/*.pyc", ALLOW),
    ("rm docs/*.md", ASK),
    ("rm src/billing/*.py", ASK),  # the glob ranges over another task's files
    ("find src -name '*.pyc' -delete", ASK),  # src/** includes billing's files
    ("find src/auth -name '*.pyc' -delete", ALLOW),
    ("echo x > ../billing/src/a.py", ASK),
    ("echo 'unbalanced", ASK),
    ("FOO=1 sudo -u me touch docs/a", ASK),
    ("timeout 5 touch docs/a", ASK),
    ("ls | xargs rm", ASK),
    ("echo '>' docs/x", ALLOW),  # a quoted '>' is text (test_shellscan.py has the table)
    ("git reset --hard HEAD~1", DENY),
    ("git reset --soft HEAD~1", ALLOW),
    ("git clean -fdx", DENY),
    ("git clean -n", ALLOW),
    ("git stash", DENY),
    ("git stash pop", DENY),
    ("git stash drop", DENY),
    ("git stash list", ALLOW),
    ("git checkout -f main", DENY),
    ("git checkout .", DENY),
    ("git checkout -- .", DENY),
    ("git restore .", DENY),
    ("git switch --discard-changes main", DENY),
    ("git switch -c hive/x", ALLOW),
    ("git -C /somewhere reset --hard", DENY),
    ("git push --force origin main", DENY),
    ("git push origin +main", DENY),
    ("git push --force-with-lease origin hive/api", ALLOW),
    ("git push -f", ASK),
    ("git push origin hive/api", ALLOW),
    ("git commit -am wip && git reset --hard", DENY),
    ("echo ok; git stash; echo x > docs/y", DENY),
])
def test_shell(env: dict, command: str, action: str) -> None:
    d = run(env, "Bash", {"command": command})
    assert d.action == action, (command, d)
    if action != ALLOW:
        assert d.reason.startswith("hive-lab guard:")


def test_shell_outside_scope_reason_names_path_and_request(env: dict) -> None:
    d = run(env, "Bash", {"command": "echo x > docs/y.md"})
    assert "docs/y.md" in d.reason and "request-scope api" in d.reason
    assert d.paths == ("docs/y.md",)


def test_gemini_and_codex_shell_shapes(env: dict) -> None:
    assert run(env, "run_shell_command", {"command": "touch x.md", "directory": "docs"}).action == ASK
    assert run(env, "run_shell_command", {"command": "touch x.md", "directory": "src"}).action == ALLOW
    assert run(env, "shell", {"command": ["bash", "-lc", "git reset --hard"]}).action == DENY
    assert run(env, "shell", {"command": ["touch", "docs/x"], "workdir": env["wt"]}).action == ASK
