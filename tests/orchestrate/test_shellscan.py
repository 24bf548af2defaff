"""The shell scan, through the guard, as a table: command -> verdict for a task scoped to src/**.

The first block is what the old shlex-based scan got wrong: a quoted ``>`` read as a
redirection (asked), and a ``<<EOF`` inside quotes hid the next line (a write allowed)."""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from hive_lab.orchestrate import shellex, shellscan
from hive_lab.orchestrate.guard import ALLOW, ASK, DENY, decide
from hive_lab.orchestrate.tasks import Task


@pytest.fixture()
def env(tmp_path: Path) -> dict:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    wt = tmp_path / "wt" / "api"
    (wt / "src").mkdir(parents=True)
    (wt / "docs").mkdir()
    task = Task(id="api", prompt="p", repo=str(repo), scope=("src/**",), worktree=str(wt))
    return {"repo": str(repo), "wt": str(wt), "task": task, "scratch": [str(tmp_path / "tmp")]}


def verdict(env: dict, command: str) -> str:
    d = decide("Bash", {"command": command}, env["wt"], env["task"], [], env["wt"], env["repo"],
               scratch_dirs=env["scratch"], home="/home/nobody")
    assert d.action == ALLOW or d.reason.startswith("hive-lab guard:"), d
    return d.action


QUOTED = [  # allowed now; the old scan asked (or, for the last two, allowed a write)
    ("echo '>' x", ALLOW),
    ("echo '>' docs/x", ALLOW),
    ('grep ">" docs/f', ALLOW),
    ("grep '>>' docs/f", ALLOW),
    ('python -c "print(1>0)"', ALLOW),
    ("python3 -c 'import sys; print(2>1)' > /dev/null", ALLOW),
    ('echo "a > b" | grep ">"', ALLOW),
    ("echo \\> docs/x", ALLOW),
    ("awk '$1 > 5 {print}' docs/data.txt", ALLOW),
    ("git log --format='%h > %s' -3", ALLOW),
    ('echo "$(echo \'>\' docs/x)"', ALLOW),
    ("echo $(( 1 > 0 ))", ALLOW),
    ("cat <<< 'a > b'", ALLOW),
    ("echo x # > docs/y", ALLOW),
    ("cat <<'EOF'\n> not a redirection\necho x > docs/y\nEOF", ALLOW),
    ('echo "<<EOF"\necho x > docs/y', ASK),  # the old scan dropped the second line
    ("echo '<<EOF'; rm -rf docs\necho", ASK),
]

WRITES = [
    ("echo x > docs/y", ASK),
    ("echo x>docs/y", ASK),
    ("echo x >> docs/y", ASK),
    ("echo x >| docs/y", ASK),
    ("ls &> docs/y", ASK),
    ("ls &>> docs/y", ASK),
    ("ls 2> docs/err", ASK),
    ("ls 2>>docs/err", ASK),
    ("ls >&docs/y", ASK),
    ("ls > docs/y 2>&1", ASK),
    ("exec 3>docs/y", ASK),
    ("ls {fd}>docs/y", ASK),
    ("echo '>' > docs/x", ASK),
    ("echo x>'docs/y'", ASK),
    ('echo x > "docs/my file"', ASK),
    ("ls | tee docs/log", ASK),
    ("ls | tee -a docs/log", ASK),
    ("sed -i 's/>/</' docs/x", ASK),
    ("cp a docs/b", ASK),
    ("mv docs/a src/a", ASK),
    ("rm docs/a", ASK),
    ("git checkout -- docs/x", ASK),
    ("git restore -- docs/x", ASK),
    ("cat > docs/f <<EOF\nx\nEOF", ASK),
    ("cat <<EOF > docs/f\nx > y\nEOF", ASK),
    ("cat <<-EOF >docs/f\n\tx\n\tEOF", ASK),
    ("cat <<EOF\nbody\nEOF\necho x > docs/y", ASK),
    ("cat <<EOF\n$(touch docs/a)\nEOF", ASK),  # an unquoted delimiter: the body expands
    ("cat <<'EOF'\n$(touch docs/a)\nEOF", ALLOW),  # quoted: the body is text
    ("echo $(echo x > docs/y)", ASK),
    ('echo "$(touch docs/a)"', ASK),
    ("echo `touch docs/a`", ASK),
    ('echo "`rm docs/a`"', ASK),
    ("echo $(echo $(touch docs/a))", ASK),
    ("echo $(( $(touch docs/a) + 1 ))", ASK),
    ("echo ${X:-$(touch docs/a)}", ASK),
    ("echo '$(touch docs/a)'", ALLOW),  # single quotes: literal text
    ("bash -c 'echo x > docs/a'", ASK),
    ('sh -c "touch docs/a"', ASK),
    ("bash -lc 'rm docs/a'", ASK),
    ("bash -e -c 'rm docs/a'", ASK),
    ("bash -o pipefail -c 'rm docs/a'", ASK),
    ("bash -c 'echo \">\" docs/a'", ALLOW),
    ("diff <(ls) >(tee docs/x)", ASK),
    ("(cd docs && echo x > y)", ASK),
    ("{ echo x; } > docs/y", ASK),
    ("if true; then echo x > docs/y; fi", ASK),
    ("echo x > src/y", ALLOW),
    ("ls 2>&1 | tee src/log", ALLOW),
    ("ls 2>&1 >&2 2>&-", ALLOW),
    ("ls > /dev/null 2>/dev/null", ALLOW),
    ("bash -c 'git stash'", DENY),
    ("echo 'git reset --hard'", ALLOW),
    ("true && git reset --hard", DENY),
    ("echo x \\", ALLOW),  # a trailing backslash is a literal one
    ("[[ $a > $b ]] && echo yes", ALLOW),  # a string comparison
    ("[[ -n x ]] > docs/y", ASK),  # ... but a redirection after the ]]
    ("(( a > b ))", ASK),  # known: arithmetic (( )) reads as a redirection (asks, never allows)
]

HOSTILE = [
    "echo 'unbalanced",
    'echo "unbalanced',
    "echo $(unclosed",
    "echo `unclosed",
    "echo ${unclosed",
    "echo a\x00 > x",
    "echo " + "a" * 200_000,
    "$(" * 60 + "ls" + ")" * 60,
    "echo " + "$(echo " * 5 + "x > docs/y" + ")" * 5,
    "(" * 90_000,  # bounded work on the hook's hot path: too many words is "ask"
    "ls " * 30_000,
    "echo $(true) " * 100,  # more command substitutions than anyone writes by hand
    "touch src/a; " * 300,  # more writes than the guard checks one by one

]


@pytest.mark.parametrize("command,action", QUOTED + WRITES)
def test_verdict(env: dict, command: str, action: str) -> None:
    assert verdict(env, command) == action, command


@pytest.mark.parametrize("command", HOSTILE)
def test_hostile_input_asks(env: dict, command: str) -> None:
    assert verdict(env, command) == ASK
    assert all(f.kind == shellscan.UNKNOWN or f.kind == shellscan.WRITE
               for f in shellscan.scan(command, env["wt"]))


def test_operators_are_only_operators_outside_quotes() -> None:
    toks = shellex.lex("echo '>' \">>\" \\| > f 2>&1").tokens
    assert [(t.text, t.op) for t in toks] == [
        ("echo", False), (">", False), (">>", False), ("|", False), (">", True), ("f", False),
        (">&", True), ("1", False)]


def test_random_shell_soup_never_raises(env: dict) -> None:
    """Fail safe on anything: a verdict for every string, never an exception."""
    rng = random.Random(10)
    alphabet = list("ab >|&;<()$`'\"\\\n#{}=-") + ["docs/x", "<<EOF", "EOF", "2>&1", "$(", "bash -c "]
    for _ in range(400):
        command = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        assert verdict(env, command) in (ALLOW, ASK, DENY), command


def test_scan_outside_a_worktree_resolves_nothing(tmp_path: Path) -> None:
    found = shellscan.scan("cd / && echo x > etc/y", None)
    assert found and found[0].cwd == os.path.normpath("/")
