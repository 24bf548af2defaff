"""The git the merge queue needs: bring a branch up to date, merge it into its base, tidy up.

It starts git only through :class:`gitwatch._Git` (so :func:`gitwatch._exec` stays the one
place a git process starts, with the same explicit environment). The rules it keeps:

- Never a force, never a rebase, never a rewrite of the base's history: the base ref only ever
  moves to a commit that descends from where it was (checked, then a compare-and-swap
  ``update-ref``), or by a plain ``git merge --no-ff`` in the worktree where it is checked out.
- A checkout with uncommitted changes (tracked or untracked) is never written to: the caller
  is told why and nothing happens. A merge that stops on conflicts is aborted at once, so the
  worktree is back at the branch's head, byte for byte.
- Every name reaching git was validated (``validate_rev``) and passes after
  ``--end-of-options`` or as a full ``refs/heads/...`` name.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import BadRequest, Conflict, GitError
from .gitwatch import (WRITE_TIMEOUT, _Git, _rev, _stderr_text, _worktree_list, _uncommitted,
                       _repo_id, validate_rev)

IDENTITY = ("-c", "user.name=Hive Lab merge queue", "-c", "user.email=hive-lab@localhost")


class DirtyCheckout(Conflict):
    """A checkout we would have to write to has uncommitted changes: nothing was touched."""

    code = "dirty_checkout"


class BaseMoved(Conflict):
    """The base moved between our look and our write: nothing was written; start again."""

    code = "base_moved"


@dataclass(frozen=True)
class Update:
    """Outcome of merging the base into the branch (in the branch's worktree)."""

    ok: bool
    head: str  # the branch's head afterwards (unchanged when not ok)
    base_sha: str  # the base commit merged in
    conflicts: tuple[str, ...] = ()
    detail: str = ""


def repo_root(raw: object) -> str:
    """The main worktree of the repository at ``raw``: absolute, no ``..``, a git directory."""
    if not isinstance(raw, str) or not raw.startswith("/") or "\x00" in raw or len(raw) > 4096:
        raise BadRequest("repo must be an absolute directory path")
    if ".." in raw.split("/"):
        raise BadRequest("repo must not contain '..' components")
    if not os.path.isdir(raw):
        raise BadRequest(f"repo {raw[:200]!r} is not a directory")
    try:
        ident = _repo_id(raw)
    except GitError:
        raise BadRequest(f"repo {raw[:200]!r} is not inside a git repository") from None
    return os.path.realpath(ident.main)


def branch_name(value: object, what: str) -> str:
    """A local branch name (``main``, ``hive/x``): validated, no ``refs/`` prefix or suffix."""
    name = validate_rev(value, what)
    if name.startswith("refs/") or "~" in name or "^" in name or name == "HEAD":
        raise BadRequest(f"{what} must be a local branch name like main or hive/task")
    return name


def head_of(repo: str, branch: str) -> str | None:
    return _rev(_Git(repo), f"refs/heads/{branch}")


def heads(repo: str) -> dict[str, str]:
    """Every local branch's head in one git process: branch name -> commit id."""
    out = _Git(repo).out("for-each-ref", "--format=%(objectname) %(refname)", "refs/heads/")
    found = {}
    for line in out.decode("utf-8", "surrogateescape").splitlines():
        sha, _, ref = line.partition(" ")
        found[ref[len("refs/heads/"):]] = sha
    return found


def changed_files(repo: str, base_tip: str, head: str) -> frozenset[str]:
    """Files ``head`` changed since it forked from the base (``base...head``)."""
    out = _Git(repo).out("diff", "--name-only", "--no-renames", "-z", f"{base_tip}...{head}")
    return frozenset(p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p)


def current_branch(repo: str) -> str | None:
    """The branch checked out in the main worktree (None when detached)."""
    ref = _Git(repo).run("symbolic-ref", "-q", "HEAD", ok=(0, 1, 128)).stdout.decode().strip()
    return ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else None


def checkout_of(repo: str, branch: str) -> str | None:
    """The worktree where ``branch`` is checked out, or None."""
    ref = f"refs/heads/{branch}"
    for entry in _worktree_list(_Git(repo)):
        if entry.branch == ref and not entry.prunable:
            return entry.path
    return None


def dirty(path: str) -> int:
    """Uncommitted changes in the worktree at ``path`` (staged, unstaged, untracked)."""
    return _uncommitted(path)


def is_ancestor(repo: str, a: str, b: str) -> bool:
    return _Git(repo).run("merge-base", "--is-ancestor", a, b, ok=(0, 1)).returncode == 0


def new_commits(repo: str, head: str, since: str, base_tip: str) -> int:
    """Commits of the branch's own (not merges, not from the base) in ``head`` after ``since``."""
    out = _Git(repo).text("rev-list", "--count", "--no-merges", head, "--not", since, base_tip)
    return int(out or 0)


def _identity(g: _Git) -> tuple[str, ...]:
    """Our name on merge commits only when git has no identity configured (a bare server)."""
    proc = g.run("config", "--get", "user.email", ok=(0, 1))
    return () if proc.stdout.strip() else IDENTITY


def add_worktree(repo: str, branch: str, path: Path) -> str:
    """Check ``branch`` out at ``path`` (a directory of ours) to update and check it there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(path):
        raise Conflict(f"{path} is already taken")
    g = _Git(repo, timeout=WRITE_TIMEOUT)
    proc = g.run("worktree", "add", "--quiet", "--", str(path), branch, ok=(0, 128))
    if proc.returncode != 0:
        raise Conflict(f"cannot check out {branch}: {_stderr_text(proc.stderr)}")
    return str(path)


def remove_worktree(repo: str, path: str, ours: bool = False) -> str:
    """``git worktree remove``; git refuses when anything is uncommitted, unless ``ours``: the
    queue's own scratch worktree, where only our checks wrote (build output, caches), so its
    untracked files go with it. Commits are never touched either way.

    Returns "" when removed, else why not."""
    if not os.path.isdir(path):
        _Git(repo).run("worktree", "prune", ok=(0, 128))
        return ""
    force = ("--force",) if ours else ()
    proc = _Git(repo, timeout=WRITE_TIMEOUT).run("worktree", "remove", *force, "--", path,
                                                 ok=(0, 128))
    return "" if proc.returncode == 0 else _stderr_text(proc.stderr)


def abort_merge(worktree: str) -> bool:
    """Abort a merge left half-done (a server killed mid-merge); True if there was one."""
    g = _Git(worktree, timeout=WRITE_TIMEOUT)
    if g.run("rev-parse", "-q", "--verify", "MERGE_HEAD", ok=(0, 1)).returncode != 0:
        return False
    g.run("merge", "--abort", ok=(0, 128))
    return True


def _conflicted(g: _Git) -> tuple[str, ...]:
    out = g.out("diff", "--name-only", "--diff-filter=U", "-z")
    return tuple(p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p)


def update_branch(worktree: str, branch: str, base: str) -> Update:
    """Merge the base's tip into ``branch`` in ``worktree`` (a clean checkout of it).

    A conflict is aborted at once and reported with the conflicting paths."""
    g = _Git(worktree, timeout=WRITE_TIMEOUT)
    if g.text("symbolic-ref", "-q", "HEAD") != f"refs/heads/{branch}":
        raise Conflict(f"{worktree} does not have {branch} checked out")
    if (n := dirty(worktree)):
        raise DirtyCheckout(f"the branch's worktree {worktree} has {n} uncommitted "
                            f"change{'s' * (n != 1)}: commit or stash them, then retry")
    base_sha = _rev(g, f"refs/heads/{base}")
    if base_sha is None:
        raise BadRequest(f"base branch {base!r} is gone")
    before = _rev(g, "HEAD") or ""
    proc = g.run(*_identity(g), "merge", "--no-edit", "-m",
                 f"Merge {base} into {branch} (Hive Lab merge queue: brought up to date)",
                 base_sha, ok=(0, 1, 128))
    if proc.returncode == 0:
        return Update(True, _rev(g, "HEAD") or before, base_sha)
    conflicts = _conflicted(g)
    detail = _stderr_text(proc.stderr) or _stderr_text(proc.stdout)
    g.run("merge", "--abort", ok=(0, 128))
    after = _rev(g, "HEAD") or ""
    if after != before or dirty(worktree):  # never expected; say so rather than guess
        raise GitError(f"aborting the merge in {worktree} left it changed: inspect it by hand")
    return Update(False, before, base_sha, conflicts, detail)


def base_blocked(repo: str, base: str) -> str | None:
    """Why the base cannot be merged into now (checked out with uncommitted work), or None."""
    where = checkout_of(repo, base)
    if where is not None and (n := dirty(where)):
        return (f"{base} is checked out in {where} with {n} uncommitted change{'s' * (n != 1)}: "
                "Hive Lab never touches uncommitted work; commit or stash them and the merge "
                "goes ahead")
    return None


def merge_into_base(repo: str, branch: str, head: str, base: str, base_sha: str,
                    message: str) -> str:
    """Merge ``head`` (``branch``, already containing ``base_sha``) into ``base`` with a real
    merge commit; returns the base's new tip.

    Where the base is checked out (the user's main worktree, say) and clean, a plain
    ``git merge --no-ff`` there; dirty: :class:`DirtyCheckout`, nothing touched. Not checked
    out anywhere: the same merge commit (both parents, the branch's tree, which already holds
    the base) is written with ``commit-tree`` and the ref moved only if it still points where
    it did (compare-and-swap), so nobody's commit on the base is ever lost."""
    g = _Git(repo, timeout=WRITE_TIMEOUT)
    ref = f"refs/heads/{base}"
    tip = _rev(g, ref)
    if tip is None:
        raise BadRequest(f"base branch {base!r} is gone")
    if tip != base_sha or not is_ancestor(repo, tip, head):
        raise BaseMoved(f"{base} moved on since {branch} was brought up to date")
    if _rev(g, f"refs/heads/{branch}") != head:
        raise BaseMoved(f"{branch} moved since it was checked")
    where = checkout_of(repo, base)
    if where is not None:
        if (why := base_blocked(repo, base)):
            raise DirtyCheckout(why)
        w = _Git(where, timeout=WRITE_TIMEOUT)
        proc = w.run(*_identity(w), "merge", "--no-ff", "--no-edit", "-m", message, head,
                     ok=(0, 1, 128))
        if proc.returncode != 0:
            w.run("merge", "--abort", ok=(0, 128))
            raise Conflict(f"git merge into {base} failed in {where}: "
                           f"{_stderr_text(proc.stderr) or _stderr_text(proc.stdout)}")
        new = _rev(w, "HEAD")
        if new is None:
            raise GitError(f"no HEAD in {where} after the merge")
        return new
    tree = g.text("rev-parse", "--verify", f"{head}^{{tree}}")
    new = g.text(*_identity(g), "commit-tree", tree, "-p", tip, "-p", head, "-m", message)
    if not is_ancestor(repo, tip, new):
        raise GitError("the merge commit does not descend from the base: refusing to move it")
    proc = g.run("update-ref", "-m", f"hive-lab merge queue: merge {branch}", ref, new, tip,
                 ok=(0, 1, 128))
    if proc.returncode != 0:
        raise BaseMoved(f"{base} moved on while merging: {_stderr_text(proc.stderr)}")
    return new


def make_resolve_branch(repo: str, branch: str, head: str, base_sha: str, name: str,
                        scratch: Path) -> tuple[str, ...]:
    """For a resolver task: branch ``name`` at a commit merging the base into ``head`` with
    the conflict markers committed as they are. Returns the conflicting paths. ``branch``
    itself is not touched (the merge happens in a detached scratch worktree)."""
    g = _Git(repo, timeout=WRITE_TIMEOUT)
    scratch.parent.mkdir(parents=True, exist_ok=True)
    g.run("worktree", "add", "--quiet", "--detach", "--", str(scratch), head)
    try:
        w = _Git(str(scratch), timeout=WRITE_TIMEOUT)
        ident = _identity(w)
        w.run(*ident, "merge", "--no-edit", base_sha, ok=(0, 1))
        conflicts = _conflicted(w)
        w.run("add", "-A")
        w.run(*ident, "commit", "--no-verify", "-q", "-m",
              f"Merge base into {branch}: conflict markers left for the resolver in "
              + ", ".join(conflicts)[:500])
        sha = _rev(w, "HEAD") or ""
        proc = g.run("update-ref", f"refs/heads/{name}", sha, "", ok=(0, 1, 128))
        if proc.returncode != 0:
            raise Conflict(f"cannot create branch {name}: {_stderr_text(proc.stderr)}")
        return conflicts
    finally:
        g.run("worktree", "remove", "--force", "--", str(scratch), ok=(0, 128))
