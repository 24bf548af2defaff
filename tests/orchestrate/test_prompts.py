"""Prompts carry the scope in words, the finish/stuck instructions, and a bounded, clean tail."""
from __future__ import annotations

from hive_lab.orchestrate.prompts import describe_pattern, first_prompt, next_prompt, tail
from hive_lab.orchestrate.tasks import Task


def test_first_prompt() -> None:
    t = Task(id="api", prompt="Add login.", repo="/r", scope=("src/auth/**", "tests/test_auth.py", "*.md"),
             shared=("CHANGELOG.md",), check=("pytest", "-q", "tests/test auth.py"))
    p = first_prompt(t)
    assert p.startswith("Add login.")
    assert "any file under src/auth/" in p and "the file tests/test_auth.py" in p
    assert "top-level files matching *.md" in p and "CHANGELOG.md" in p
    assert "pytest -q 'tests/test auth.py'" in p
    assert 'hive-lab task request-scope api "<glob>"' in p
    ro = first_prompt(Task(id="r", prompt="Review.", repo="/r"))
    assert "read-only" in ro and "counts as done when your turn ends" in ro


def test_describe() -> None:
    assert describe_pattern("**") == "any file in the repository"
    assert describe_pattern("docs/*/index.md") == "files matching docs/*/index.md"


def test_tail_bounded_and_clean() -> None:
    out = "\n".join(f"line {i}" for i in range(1000)) + "\n\x1b[31mFAILED\x1b[0m x\r\n\x00\x07"
    t = tail(out)
    assert t.startswith("[... earlier output cut ...]") and t.endswith("FAILED x")
    assert "\x1b" not in t and "\x00" not in t and len(t) <= 4000 + 40
    assert tail("x" * 10_000).endswith("x") and len(tail("x" * 10_000)) < 4100
    assert tail("ok\n") == "ok"


def test_next_prompt() -> None:
    t = Task(id="api", prompt="p", repo="/r", check=("pytest",))
    p = next_prompt(t, "E   assert 1 == 2\n", 1, round_no=1, max_rounds=3)
    assert "exited with status 1" in p and "assert 1 == 2" in p and "2 round(s) left" in p
    assert "timed out" in next_prompt(t, "", None, 3, 3)
