"""Glob matching, overlap and path normalisation, with hostile spellings on a real file system."""
from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pytest

from hive_lab.core.errors import BadRequest
from hive_lab.orchestrate import scopes
from hive_lab.orchestrate.scopes import (
    GIT_DIR, MAIN_CHECKOUT, OTHER_WORKTREE, OUTSIDE, WORKTREE, locate, matches, normalise,
    owner_of, patterns_overlap, scopes_overlap, validate_patterns,
)


@pytest.mark.parametrize("pattern,path,expected", [
    ("src/**", "src/a.py", True),
    ("src/**", "src/a/b/c.py", True),
    ("src/**", "src", False),
    ("src/**", "srcx/a.py", False),
    ("src/**", "lib/src/a.py", False),
    ("tests/test_auth.py", "tests/test_auth.py", True),
    ("tests/test_auth.py", "tests/test_auth_py", False),
    ("*.md", "README.md", True),
    ("*.md", "docs/README.md", False),  # anchored: * stays in one segment
    ("**/*.md", "README.md", True),
    ("**/*.md", "docs/a/b.md", True),
    ("docs/*/index.md", "docs/api/index.md", True),
    ("docs/*/index.md", "docs/a/b/index.md", False),
    ("docs/*/index.md", "docs/index.md", False),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b", "a/x/yb", False),
    ("t?st.py", "test.py", True),
    ("t?st.py", "t/st.py", False),
    ("t[ae]st.py", "tast.py", True),
    ("t[!ae]st.py", "tast.py", False),
    ("t[!ae]st.py", "t/st.py", False),
    ("a.b+c(d)", "a.b+c(d)", True),  # regex metacharacters are literal
    ("a.b", "axb", False),
    ("**", "anything/at/all", True),
])
def test_matches(pattern: str, path: str, expected: bool) -> None:
    assert matches(path, validate_patterns([pattern])[0]) is expected


def test_nfd_path_matches_nfc_pattern() -> None:
    pattern = validate_patterns([unicodedata.normalize("NFD", "docs/café/**")])[0]
    assert pattern == unicodedata.normalize("NFC", "docs/café/**")
    assert matches(unicodedata.normalize("NFD", "docs/café/x.md"), pattern)


@pytest.mark.parametrize("bad", [
    "/etc/passwd", "../x", "src/../../x", "a/\x00b", "a\nb", "a\\b", "~/x", "", "   ",
    "src/a**/b", "x[ab", ".git/hooks/*", "**/.git/config", "a//b", "./../x", 7, None,
])
def test_validate_rejects(bad: object) -> None:
    with pytest.raises(BadRequest):
        validate_patterns([bad])


def test_validate_shapes() -> None:
    assert validate_patterns(["./src/", "src/**", "docs"]) == ("src/**", "docs")
    with pytest.raises(BadRequest):
        validate_patterns("src/**")  # a string, not a list
    with pytest.raises(BadRequest):
        validate_patterns(["x"] * 3 + [f"f{i}" for i in range(200)])
    with pytest.raises(BadRequest):
        validate_patterns(["a" * 2000])


@pytest.mark.parametrize("a,b,overlap", [
    ("src/**", "docs/**", False),
    ("src/**", "src/a.py", True),
    ("src/auth/**", "src/**", True),
    ("src/auth/**", "src/billing/**", False),
    ("*.md", "*.py", False),
    ("**/*.md", "**/*.py", False),
    ("**/*.md", "docs/x.md", True),
    ("src/**", "**/x.py", True),
    ("src", "src/**", False),
    ("a/b/c", "**/x/y/z/w", False),
    ("src/a*", "src/b*", False),
    ("src/*.py", "src/test_*", True),
    ("src/*/x", "src/a/x", True),
    ("docs/*.md", "docs/*/index.md", False),
    ("**", "anything", True),
    ("t[ab].py", "tc.py", False),
])
def test_patterns_overlap(a: str, b: str, overlap: bool) -> None:
    assert patterns_overlap(a, b) is overlap
    assert patterns_overlap(b, a) is overlap


def test_overlap_is_conservative_against_brute_force() -> None:
    """Whenever some concrete path matches both, overlap must say True (never a false 'disjoint')."""
    pats = ["src/**", "src/*.py", "**/*.py", "*.md", "**/*.md", "docs/*/index.md", "src/a*",
            "src/*b", "a/**/b", "**/b", "src/x/**", "src", "src/a.py", "t[ab]*", "**"]
    paths = ["src/a.py", "src/x/b.py", "src/ab", "README.md", "docs/a/index.md", "a/b",
             "a/x/b", "b", "src", "ta", "tb.md", "src/x/y", "x.py", "docs/index.md"]
    for a in pats:
        for b in pats:
            both = [p for p in paths if matches(p, a) and matches(p, b)]
            if both:
                assert patterns_overlap(a, b), (a, b, both)


def test_scopes_overlap_empty_is_read_only() -> None:
    assert not scopes_overlap([], ["**"])
    assert scopes_overlap(["docs/**", "src/a.py"], ["src/*.py"])


class T:
    def __init__(self, id: str, scope: tuple[str, ...], shared: tuple[str, ...] = ()) -> None:
        self.id, self.scope, self.shared = id, scope, shared


def test_owner_of_is_deterministic_and_ignores_shared() -> None:
    tasks = [T("zeta", ("src/**",)), T("alpha", ("src/auth/**",)), T("c", (), ("src/auth/x",))]
    assert owner_of("src/auth/x", tasks) == ("alpha", "src/auth/**")
    assert owner_of("src/auth/x", list(reversed(tasks))) == ("alpha", "src/auth/**")
    assert owner_of("docs/x", tasks) is None


# ---------------------------------------------------------------- normalisation on disk


@pytest.fixture()
def layout(tmp_path: Path) -> dict[str, str]:
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / ".git").mkdir()
    wt = tmp_path / "wts" / "task-a"
    (wt / "src").mkdir(parents=True)
    (wt / ".git").write_text("gitdir: x\n")
    other = tmp_path / "wts" / "task-b"
    (other / "src").mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, wt / "src" / "escape")
    os.symlink(wt / "src", wt / "srclink")
    os.symlink("/etc/passwd", wt / "pw")
    return {"repo": str(repo), "wt": str(wt), "other": str(other), "outside": str(outside),
            "tmp": str(tmp_path)}


def test_normalise_spellings(layout: dict[str, str]) -> None:
    wt, repo = layout["wt"], layout["repo"]
    n = lambda p, **kw: normalise(p, wt, repo, **kw)  # noqa: E731
    assert n(f"{wt}/src/a.py") == "src/a.py"
    assert n("src/a.py") == "src/a.py"
    assert n("./src//a.py") == "src/a.py"
    assert n("src/x/../a.py") == "src/a.py"
    assert n(f"{wt}/src/") == "src"
    assert n("a.py", cwd=f"{wt}/src") == "src/a.py"
    assert n("../README.md", cwd=f"{wt}/src") == "README.md"
    assert n("srclink/a.py") == "src/a.py"  # symlink inside the worktree, resolved
    assert n(unicodedata.normalize("NFD", "src/café.py")) == unicodedata.normalize("NFC", "src/café.py")


def test_normalise_refuses_escapes(layout: dict[str, str]) -> None:
    wt, repo = layout["wt"], layout["repo"]
    assert normalise("../../x", wt, repo) is None
    assert normalise("src/../../task-b/src/a.py", wt, repo) is None
    assert normalise("src/escape/x.py", wt, repo) is None  # symlink out of the worktree
    assert normalise("pw", wt, repo) is None
    assert normalise(f"{repo}/src/a.py", wt, repo) is None  # the main checkout
    assert normalise("a\x00b", wt, repo) is None
    assert normalise(wt, wt, repo) is None  # the worktree directory itself is not a file


def test_locate_kinds(layout: dict[str, str]) -> None:
    wt, repo, other = layout["wt"], layout["repo"], layout["other"]
    others = {other: "task-b"}
    loc = lambda p, **kw: locate(p, wt, repo, other_worktrees=others, **kw)  # noqa: E731
    assert loc("src/a.py").kind == WORKTREE
    m = loc(f"{repo}/src/a.py")
    assert (m.kind, m.rel) == (MAIN_CHECKOUT, "src/a.py")
    o = loc(f"{other}/src/a.py")
    assert (o.kind, o.rel, o.task) == (OTHER_WORKTREE, "src/a.py", "task-b")
    assert loc("../task-b/src/a.py").kind == OTHER_WORKTREE
    assert loc(".git").kind == GIT_DIR
    assert loc(f"{repo}/.git/hooks/pre-commit").kind == GIT_DIR
    assert loc("src/escape/x").kind == OUTSIDE
    assert loc("/tmp/../etc/passwd").kind == OUTSIDE


def test_worktree_nested_in_main_checkout(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    wt = repo / ".hive" / "worktrees" / "t1"
    wt.mkdir(parents=True)
    assert normalise(f"{wt}/a.py", str(wt), str(repo)) == "a.py"
    loc = locate(f"{repo}/a.py", str(wt), str(repo))
    assert (loc.kind, loc.rel) == (MAIN_CHECKOUT, "a.py")


def test_dir_covered() -> None:
    assert scopes.dir_covered("src/auth", ["src/**"])
    assert scopes.dir_covered("src", ["src/**"])
    assert not scopes.dir_covered("src", ["src/auth/**"])
    assert not scopes.dir_covered("srcx", ["src/**"])
    assert not scopes.dir_covered("src", ["src/*.py"])
