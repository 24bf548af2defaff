"""The only module that runs git: a worktree per session, live git state, diffs, collisions.

Why it is built this way:

- Agents commit in their worktrees while we look, so every call is ``git --no-optional-locks
  -c diff.autoRefreshIndex=false`` (and ``GIT_OPTIONAL_LOCKS=0``): a plain ``git status`` or
  ``git diff`` refreshes and rewrites the index and races the agent for ``index.lock`` (``diff``
  does so even with ``--no-optional-locks``). Nothing here writes an index. Untracked files are diffed
  and line-counted in Python (never following symlinks), not through ``git add -N``.
- A refresh must stay cheap on big repositories: one ``status`` and one ``log`` process, plus a
  ``diff --numstat`` only for the sides (staged, unstaged) that ``status`` says changed.
  Everything that depends only on commits (merge base, ahead/behind, files changed by commits,
  clean merge into the base) is cached by commit ids, so it costs nothing until someone commits.
- Everything that reaches git is checked first: session names by ``validate_name``, revisions
  by ``validate_rev`` (``check-ref-format`` rules, no leading ``-``); argv lists only; an
  explicit environment (no inherited ``GIT_DIR`` and friends); ``--end-of-options`` before
  revisions given by a user.
- Cleanup never loses work: a worktree and its ``hive/<session>`` branch go only when the branch
  is merged into its base (by ancestry, or its changes are already there: squash merges) or
  pushed (a remote-tracking ref contains it), and nothing is uncommitted. ``force`` exists and is
  never the default.
- Conflict prediction is ``git merge-tree --write-tree`` (git >= 2.38) between session heads.
  It sees commits only: uncommitted edits show up as overlaps (``Overlap.committed`` tells which
  sessions' changes are committed), never as predictions. merge-tree writes tree/blob objects to
  the object store (never the index, never a worktree).
"""
from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from typing import Any

from .errors import BadRequest, Conflict, GitError, HiveError, NotFound, UnmergedWork
from .names import validate_name

GIT = "git"
BRANCH_PREFIX = "hive/"
BASE_CONFIG = "hivebase"  # branch.hive/<session>.hivebase = "<base sha> <base ref or ->"
READ_TIMEOUT = 60.0
WRITE_TIMEOUT = 600.0
MAX_REV_LEN = 200
MAX_DIFF_BYTES = 64 * 1024 * 1024
PATHSPEC_LIMIT = 64  # up to this many paths, numstat diffs only stat the files status named
COUNT_FILE_LIMIT = 4 * 1024 * 1024  # untracked files larger than this are not line-counted
COUNT_TOTAL_LIMIT = 32 * 1024 * 1024  # bytes read per refresh to count untracked lines
HASH_LIMIT = 256 * 1024 * 1024
BINARY_PROBE = 8000  # git calls a file binary when its first 8000 bytes hold a NUL

# Porcelain `git diff` rewrites the index to refresh stat data (taking index.lock) even with
# --no-optional-locks (git 2.39, builtin/diff.c refresh_index_quietly): diff.autoRefreshIndex
# turns that off. Output is the same: stat-only changes are still hidden.
GIT_OPTIONS = ("--no-optional-locks", "-c", "diff.autoRefreshIndex=false")
_ENV_KEEP = ("PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ", "XDG_CONFIG_HOME",
             "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", "GIT_CONFIG_NOSYSTEM", "GIT_EXEC_PATH")
_ENV_SET = {"LC_ALL": "C", "LANGUAGE": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat",
            "PAGER": "cat", "GIT_OPTIONAL_LOCKS": "0", "GIT_EDITOR": ":",
            "GIT_MERGE_AUTOEDIT": "no"}

_SHA_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_REV_RE = re.compile(r"(?P<name>[A-Za-z0-9._/+@-]+)(?P<suffix>(?:~[0-9]{0,4}|\^[0-9]?)*)")


# ---------------------------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------------------------
def _shown(path: str) -> str:
    """A path as JSON can carry it (undecodable bytes become U+FFFD)."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@dataclass(frozen=True)
class FileChange:
    """One changed file: ``status`` is git's letter (M A D T U, ``?`` untracked)."""

    path: str
    status: str
    added: int | None = None  # None: binary, or not counted (too big)
    removed: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"path": _shown(self.path), "status": self.status,
                "added": self.added, "removed": self.removed}


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    subject: str
    author: str
    time: int  # committer time, epoch seconds

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GitState:
    """What one session has changed, relative to its base. Compare with ``==`` to see change."""

    worktree: str
    repo: str  # the common git dir: only sessions of the same repo can collide
    branch: str | None  # None when detached
    head: str | None  # None on an unborn branch
    base_ref: str | None  # moving base (refs/heads/main), None for a fixed commit
    base_sha: str | None  # the commit the worktree was created from
    base_tip: str | None  # where the base is now (base_ref's tip, else base_sha)
    base_missing: bool  # base_ref no longer resolves: fell back to base_sha
    merge_base: str | None
    ahead: int | None
    behind: int | None
    merges_cleanly: bool | None  # None: unknown (no base, unrelated histories)
    merge_conflicts: list[str]  # files that would conflict when merged into the base
    last_commit: CommitInfo | None
    staged: list[FileChange]
    unstaged: list[FileChange]
    untracked: list[FileChange]
    committed: list[str]  # files changed by commits since the merge base
    elapsed_ms: float = field(default=0.0, compare=False)
    git_calls: int = field(default=0, compare=False)

    @property
    def dirty(self) -> bool:
        return bool(self.staged or self.unstaged or self.untracked)

    def uncommitted_paths(self) -> set[str]:
        return {c.path for c in (*self.staged, *self.unstaged, *self.untracked)}

    def changed_paths(self) -> set[str]:
        """Files this session changed vs its base, committed or not (a file committed and then
        reverted in the working tree still counts: a false overlap is harmless)."""
        return set(self.committed) | self.uncommitted_paths()

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items()
                if k not in ("staged", "unstaged", "untracked", "last_commit", "committed",
                             "merge_conflicts")}
        data.update(
            staged=[c.to_json() for c in self.staged],
            unstaged=[c.to_json() for c in self.unstaged],
            untracked=[c.to_json() for c in self.untracked],
            committed=[_shown(p) for p in self.committed],
            merge_conflicts=[_shown(p) for p in self.merge_conflicts],
            last_commit=self.last_commit.to_json() if self.last_commit else None,
            dirty=self.dirty,
        )
        return data


@dataclass(frozen=True)
class Worktree:
    """A session's worktree and branch, as stored with the session (``to_json``/``from_json``)."""

    session: str
    repo: str  # main worktree of the repository (the common dir for a bare repository)
    path: str | None  # None: only the branch is left
    branch: str  # hive/<session>
    base_sha: str | None  # None only for an orphan whose base was never recorded
    base_ref: str | None  # e.g. refs/heads/main: "merged" is checked against its moving tip

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Worktree:
        """Rebuild (and re-validate) a record read back from storage."""
        if not isinstance(data, Mapping):
            raise BadRequest("worktree record must be an object")
        session = validate_name(data.get("session"), "session name")
        branch = data.get("branch")
        if branch != BRANCH_PREFIX + session:
            raise BadRequest(f"worktree branch must be {BRANCH_PREFIX}{session}")
        repo, path = data.get("repo"), data.get("path")
        if not isinstance(repo, str) or not os.path.isabs(repo):
            raise BadRequest("worktree repo must be an absolute path")
        if path is not None and (not isinstance(path, str) or not os.path.isabs(path)):
            raise BadRequest("worktree path must be an absolute path")
        base_sha, base_ref = data.get("base_sha"), data.get("base_ref")
        return cls(session=session, repo=repo, path=path, branch=branch,
                   base_sha=None if base_sha is None else validate_sha(base_sha),
                   base_ref=None if base_ref is None else validate_full_ref(base_ref))


@dataclass(frozen=True)
class Removal:
    """What ``remove_worktree`` found and did."""

    session: str
    branch: str
    path: str | None
    head: str | None
    merged: bool
    pushed: bool
    unmerged_commits: int
    uncommitted: int
    forced: bool
    removed_worktree: bool
    removed_branch: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DiffResult:
    base: str
    text: str
    truncated: bool
    bytes: int
    max_bytes: int
    untracked: list[str]  # untracked files included (the last one may be cut)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["untracked"] = [_shown(p) for p in self.untracked]
        return data


@dataclass(frozen=True)
class Overlap:
    """A file changed by more than one session of the same repository."""

    path: str
    sessions: list[str]
    committed: list[str]  # those sessions whose change is committed (visible to merge-tree)
    repo: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"path": _shown(self.path), "sessions": self.sessions,
                "committed": self.committed, "repo": self.repo}


@dataclass(frozen=True)
class Prediction:
    """merge-tree's verdict on merging two session heads (commits only)."""

    sessions: tuple[str, str]
    heads: tuple[str, str]
    conflict: bool | None  # None: git could not tell (``error`` says why)
    paths: list[str]
    repo: str | None = None
    error: str | None = None
    cached: bool = field(default=False, compare=False)

    @property
    def key(self) -> Hashable:
        """Identity of a conflict: a conflicting prediction with a key not seen before is a new
        conflict event (new commits that keep the same conflicting files are not)."""
        return (self.repo, self.sessions, tuple(self.paths))

    def to_json(self) -> dict[str, Any]:
        return {"sessions": list(self.sessions), "heads": list(self.heads),
                "conflict": self.conflict, "paths": [_shown(p) for p in self.paths],
                "repo": self.repo, "error": self.error}


@dataclass(frozen=True)
class Collisions:
    overlaps: list[Overlap]
    conflicts: list[Prediction]  # predictions with conflict True
    predictions: list[Prediction]  # every pair checked

    def to_json(self) -> dict[str, Any]:
        return {"overlaps": [o.to_json() for o in self.overlaps],
                "conflicts": [p.to_json() for p in self.conflicts],
                "checked": len(self.predictions)}


# ---------------------------------------------------------------------------------------------
# running git
# ---------------------------------------------------------------------------------------------
def git_env() -> dict[str, str]:
    """The whole environment of every git call: nothing inherited that could redirect git."""
    env = {k: os.environ[k] for k in _ENV_KEEP if k in os.environ}
    env.setdefault("PATH", os.defpath)
    env.update(_ENV_SET)
    return env


LOCK_WAIT = 5.0  # seconds a git call waits for another process's lock file
_LOCK_BUSY = re.compile(rb"could not lock config file|\.lock'?: File exists|Unable to create '[^']*\.lock'")


def _exec(argv: list[str], cwd: str, timeout: float) -> subprocess.CompletedProcess[bytes]:
    """The one place a git process starts (tests spy on it)."""
    return subprocess.run(argv, cwd=cwd, env=git_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout, check=False)


def _stderr_text(raw: bytes) -> str:
    lines = raw.decode("utf-8", "replace").strip().splitlines()
    return " ".join(lines[-3:])[:500]


def _failure(args: Sequence[str], cwd: str, stderr: bytes, rc: int) -> HiveError:
    """Map a failed git call: the user's fault is a 400, anything else a GitError."""
    msg = _stderr_text(stderr)
    if "not a git repository" in msg:
        return BadRequest(f"{cwd} is not inside a git repository")
    if "dubious ownership" in msg:
        return BadRequest(f"git refuses {cwd}: it belongs to another user (see safe.directory)")
    return GitError(f"git {args[0] if args else ''} failed (exit {rc}): {msg or 'no message'}")


class _Git:
    """git in one directory: argv only, explicit env, no optional locks; counts its processes."""

    def __init__(self, cwd: Path | str, timeout: float = READ_TIMEOUT) -> None:
        self.cwd = str(cwd)
        self.timeout = timeout
        self.calls = 0

    def argv(self, args: Sequence[str]) -> list[str]:
        return [GIT, *GIT_OPTIONS, *args]

    def run(self, *args: str, ok: Collection[int] = (0,),
            timeout: float | None = None) -> subprocess.CompletedProcess[bytes]:
        if not os.path.isdir(self.cwd):
            raise NotFound(f"directory {self.cwd} does not exist")
        try:
            proc = self._exec_waiting_for_locks(args, timeout or self.timeout)
        except FileNotFoundError as exc:
            raise GitError(f"git is not installed ({GIT!r} not found)") from exc
        except subprocess.TimeoutExpired as exc:
            raise GitError(f"git {args[0]} did not finish within {timeout or self.timeout:.0f} s") from exc
        except OSError as exc:
            raise GitError(f"could not run git: {exc}") from exc
        if proc.returncode not in ok:
            raise _failure(args, self.cwd, proc.stderr, proc.returncode)
        return proc

    def _exec_waiting_for_locks(self, args: Sequence[str],
                                timeout: float) -> subprocess.CompletedProcess[bytes]:
        """Run git; if it could not take one of its lock files, wait a little and run it again.

        Git refuses at once when another process holds ``config.lock`` (or a ref's lock), and a
        refusal changed nothing, so running it again is safe. Two servers (or two sessions)
        starting worktrees of one repository at the same moment hit this (a task's first
        attempt failed with "could not lock config file" on a shared store).
        """
        deadline = time.monotonic() + LOCK_WAIT
        delay = 0.02
        while True:
            self.calls += 1
            proc = _exec(self.argv(args), self.cwd, timeout)
            if proc.returncode == 0 or not _LOCK_BUSY.search(proc.stderr) \
                    or time.monotonic() + delay > deadline:
                return proc
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def out(self, *args: str, ok: Collection[int] = (0,)) -> bytes:
        return self.run(*args, ok=ok).stdout

    def text(self, *args: str, ok: Collection[int] = (0,)) -> str:
        return self.out(*args, ok=ok).decode("utf-8", "surrogateescape").strip()

    def stream(self, args: Sequence[str], sink: Callable[[bytes], bool]) -> None:
        """Feed stdout to ``sink`` in chunks; stop git early when ``sink`` returns False."""
        if not os.path.isdir(self.cwd):
            raise NotFound(f"directory {self.cwd} does not exist")
        self.calls += 1
        with tempfile.TemporaryFile() as err:  # a file: a chatty stderr cannot deadlock us
            try:
                proc = subprocess.Popen(self.argv(args), cwd=self.cwd, env=git_env(),
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
            except OSError as exc:
                raise GitError(f"could not run git: {exc}") from exc
            stopped = False
            deadline = time.monotonic() + self.timeout
            assert proc.stdout is not None
            with proc:
                while chunk := proc.stdout.read(65536):
                    if not sink(chunk) or time.monotonic() > deadline:
                        stopped = True
                        proc.kill()
                        break
                rc = proc.wait()
            if not stopped and rc != 0:
                err.seek(0)
                raise _failure(args, self.cwd, err.read(), rc)


class _LRU:
    """A small thread-safe LRU map: the caches keyed by commit ids."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        return None

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


@dataclass
class GitCache:
    """What a refresh may reuse from the last one: facts keyed by immutable things (commit
    pairs, commit ids, a file's inode/size/mtime), so they never go stale, only out of room.

    Owned by whoever refreshes repeatedly (the git monitor); a one-off call gets a fresh one.
    """

    ranges: _LRU = field(default_factory=lambda: _LRU(2048))  # (repo, base tip, head) -> _Range
    commits: _LRU = field(default_factory=lambda: _LRU(2048))  # (repo, sha) -> CommitInfo
    lines: _LRU = field(default_factory=lambda: _LRU(16384))  # file key -> line count (-1: binary)

    def clear(self) -> None:
        self.ranges.clear()
        self.commits.clear()
        self.lines.clear()


# ---------------------------------------------------------------------------------------------
# validation (before any git call)
# ---------------------------------------------------------------------------------------------
def _refname_ok(name: str) -> bool:
    """``git check-ref-format --allow-onelevel`` rules, for names already in our alphabet."""
    if name in ("", "@") or name.startswith(("-", "/")) or name.endswith(("/", ".")):
        return False
    if ".." in name or "@{" in name or "//" in name:
        return False
    return all(part and not part.startswith(".") and not part.endswith(".lock")
               for part in name.split("/"))


def validate_rev(value: object, what: str = "base") -> str:
    """A revision a user may name: a branch/tag/remote ref or commit id, optionally ``~N``/``^N``.

    Refused before git sees it: options (``-x``), ranges (``a..b``), ``@{...}``, spaces,
    control and shell characters, anything over 200 characters.
    """
    shown = str(value)[:60]
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{what} must be a non-empty string")
    if len(value) > MAX_REV_LEN:
        raise BadRequest(f"{what} is longer than {MAX_REV_LEN} characters")
    if value.startswith("-"):
        raise BadRequest(f"{what} {shown!r} must not start with '-'")
    match = _REV_RE.fullmatch(value)
    if match is None or not _refname_ok(match["name"]):
        raise BadRequest(f"invalid {what} {shown!r}: give a branch, tag or commit id "
                         "(letters, digits, . _ - / + @, optionally ~N or ^N)")
    return value


def validate_full_ref(value: object, what: str = "base ref") -> str:
    """A full ref name as stored in records (``refs/heads/main``)."""
    ref = validate_rev(value, what)
    if not ref.startswith("refs/") or ref != _REV_RE.fullmatch(ref)["name"]:  # type: ignore[index]
        raise BadRequest(f"{what} must be a full ref name like refs/heads/main")
    return ref


def validate_sha(value: object, what: str = "commit id") -> str:
    if not isinstance(value, str) or _SHA_RE.fullmatch(value) is None:
        raise BadRequest(f"{what} must be a full hexadecimal commit id")
    return value


def _validate_max_bytes(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_DIFF_BYTES:
        raise BadRequest(f"max_bytes must be an integer between 1 and {MAX_DIFF_BYTES}")
    return value


def _worktree_dir(path: Path | str) -> Path:
    """The top directory of a worktree (it holds ``.git``): status paths are relative to it."""
    p = Path(path)
    if not p.is_absolute():
        raise BadRequest(f"worktree path {str(path)[:200]!r} must be absolute")
    if not p.is_dir():
        raise NotFound(f"worktree {p} does not exist")
    if not os.path.lexists(p / ".git"):
        raise BadRequest(f"{p} is not the top directory of a git worktree")
    return p


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


# ---------------------------------------------------------------------------------------------
# repositories
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _RepoId:
    toplevel: Path  # worktree that contains the given path
    common: Path  # common git dir, shared by all worktrees
    main: Path  # main worktree (the common dir itself for a bare repository)


def _repo_id(path: Path | str) -> _RepoId:
    p = Path(path)
    if p.is_file():
        p = p.parent
    if not p.is_dir():
        raise BadRequest(f"{str(path)[:200]} is not an existing directory")
    top, common = _Git(p).text("rev-parse", "--path-format=absolute", "--show-toplevel",
                               "--git-common-dir").splitlines()
    common_p = Path(common)
    main = common_p.parent if common_p.name == ".git" else common_p
    return _RepoId(Path(top), common_p, main)


def find_repo(path: Path | str) -> Path | None:
    """Toplevel of the worktree that contains ``path``; None when it is not in one."""
    try:
        return _repo_id(path).toplevel
    except (BadRequest, GitError, NotFound):
        return None


def common_dir(worktree: Path | str) -> Path:
    """The common git dir of a worktree, read from its ``.git`` file (no git process)."""
    dotgit = Path(worktree) / ".git"
    if dotgit.is_dir():
        return dotgit.resolve()
    try:
        text = dotgit.read_text("utf-8", "surrogateescape").strip()
    except OSError as exc:
        raise BadRequest(f"{worktree} is not a git worktree") from exc
    if not text.startswith("gitdir:"):
        raise BadRequest(f"{worktree} has an unreadable .git file")
    admin = Path(worktree, text[len("gitdir:"):].strip())
    try:
        rel = (admin / "commondir").read_text().strip()
    except OSError:
        return admin.resolve()  # a submodule-style gitdir: it is its own common dir
    return (admin / rel).resolve()


def exclude_locally(worktree: Path | str, pattern: str) -> bool:
    """Add ``pattern`` to the repository's ``info/exclude`` (shared by all its worktrees,
    never committed) unless it is there; returns True if it was added.

    Hive Lab's own hook settings in a session's worktree are not the agent's work: without
    this they would count as a change of every hooked session and as a collision between them.
    """
    if "\n" in pattern or not pattern.strip():
        raise BadRequest("invalid exclude pattern")
    exclude = common_dir(worktree) / "info" / "exclude"
    try:
        lines = exclude.read_text("utf-8", "surrogateescape").splitlines()
    except FileNotFoundError:
        lines = []
    if pattern in lines:
        return False
    exclude.parent.mkdir(parents=True, exist_ok=True)
    with open(exclude, "a", encoding="utf-8", errors="surrogateescape") as fh:
        prefix = "" if not lines or exclude.read_bytes().endswith(b"\n") else "\n"
        fh.write(f"{prefix}# added by Hive Lab: its agent hook settings, not project files\n{pattern}\n")
    return True


def hide_local_change(worktree: Path | str, relpath: str, hide: bool = True) -> str:
    """Keep Hive Lab's own edit of ``relpath`` (repo-relative) out of the worktree's status.

    Gemini CLI's hooks live in ``.gemini/settings.json``, a project file that may be
    committed: our merged hooks would otherwise count as the agent's change (a scope
    violation of every task, a file ``git commit -a`` takes). A tracked file is marked
    ``skip-worktree`` in this worktree's own index (``hide=False`` clears it); an untracked
    one is excluded like ``exclude_locally``. Returns "skip-worktree", "excluded" or "".
    """
    if relpath.startswith("/") or ".." in Path(relpath).parts or "\n" in relpath:
        raise BadRequest("invalid path")
    g = _Git(worktree)
    tracked = g.run("ls-files", "--error-unmatch", "--", relpath, ok=(0, 1)).returncode == 0
    if tracked:
        g.run("update-index", "--skip-worktree" if hide else "--no-skip-worktree", "--", relpath)
        return "skip-worktree"
    if hide:
        exclude_locally(worktree, "/" + relpath)
        return "excluded"
    return ""


def repo_slug(main: Path, common: Path) -> str:
    """``<dirname>-<hash of the common dir>``: two clones named ``app`` never share a folder."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", main.name).strip("-")[:40] or "repo"
    digest = hashlib.sha1(os.fsencode(str(common))).hexdigest()[:8]
    return f"{name}-{digest}"


def worktree_cwd(repo_toplevel: Path | str, cwd: Path | str, worktree: Path | str) -> Path:
    """Where an agent asked to start in ``cwd`` (inside the repo) runs in its worktree.

    ``cwd`` must resolve (symlinks included) inside the repository; the same relative
    directory is used in the worktree, or the deepest part of it that exists there.
    """
    top = Path(repo_toplevel).resolve()
    wt = Path(worktree).resolve()
    target = Path(cwd)
    if not target.is_absolute():
        target = top / target
    target = target.resolve()
    if not _inside(target, top):
        raise BadRequest(f"{str(cwd)[:200]} is outside the repository {top}")
    rel = target.relative_to(top)
    out = wt
    for part in rel.parts:
        nxt = out / part
        if not nxt.is_dir() or nxt.is_symlink() or not _inside(nxt.resolve(), wt):
            break
        out = nxt
    return out


# ---------------------------------------------------------------------------------------------
# creating worktrees
# ---------------------------------------------------------------------------------------------
def _rev(g: _Git, spec: str) -> str | None:
    """The commit ``spec`` names (``spec`` already validated), or None."""
    proc = g.run("rev-parse", "--verify", "--quiet", "--end-of-options", f"{spec}^{{commit}}",
                 ok=(0, 1, 128))
    sha = proc.stdout.decode().strip()
    return sha if proc.returncode == 0 and _SHA_RE.fullmatch(sha) else None


def _resolve_base(g: _Git, base: str | None) -> tuple[str, str | None]:
    """(commit sha, moving ref or None) for the base a user named (None: current HEAD)."""
    spec = "HEAD" if base is None else base
    sha = _rev(g, spec)
    if sha is None:
        if base is None:
            raise BadRequest("the repository has no commit yet: nothing to branch from")
        raise BadRequest(f"base {base!r} is not a commit in this repository")
    proc = g.run("rev-parse", "--verify", "--quiet", "--symbolic-full-name", "--end-of-options",
                 spec, ok=(0, 1, 128))
    ref = proc.stdout.decode().strip() if proc.returncode == 0 else ""
    if not ref.startswith(("refs/heads/", "refs/remotes/")):
        return sha, None
    try:
        return sha, validate_full_ref(ref)
    except BadRequest:
        return sha, None  # a legal but exotic ref name: treat the base as a fixed commit


def _worktree_path(root: Path, slug: str, session: str) -> tuple[Path, bool]:
    """``<root>/<slug>/<session>``, refusing symlinked or taken places. (path, slug dir made?)"""
    root.mkdir(parents=True, exist_ok=True)
    real_root = root.resolve()
    slug_dir = real_root / slug
    if slug_dir.is_symlink() or (slug_dir.exists() and not slug_dir.is_dir()):
        raise BadRequest(f"{slug_dir} is not a plain directory: refusing to create worktrees there")
    path = slug_dir / session
    if os.path.lexists(path):
        raise Conflict(f"worktree path {path} is already taken")
    if not _inside(path.resolve(), real_root):
        raise BadRequest(f"{path} would be outside the worktree root {real_root}")
    made = not slug_dir.exists()
    slug_dir.mkdir(exist_ok=True)
    return path, made


def create_worktree(repo: Path | str, session: str, base: str | None, root: Path | str) -> Worktree:
    """New branch ``hive/<session>`` at ``base`` (default: HEAD) checked out at
    ``<root>/<repo-slug>/<session>``. Refuses (400/409) before changing anything, and undoes
    everything it made when git fails midway."""
    session = validate_name(session, "session name")
    if base is not None:
        validate_rev(base)
    root_p = Path(root)
    if not root_p.is_absolute():
        raise BadRequest("worktree root must be an absolute path")
    ident = _repo_id(repo)
    g = _Git(ident.toplevel, timeout=WRITE_TIMEOUT)
    sha, base_ref = _resolve_base(g, base)
    branch = BRANCH_PREFIX + session
    ref = f"refs/heads/{branch}"
    if g.run("rev-parse", "--verify", "--quiet", ref, ok=(0, 1)).returncode == 0:
        raise Conflict(f"branch {branch} already exists in {ident.main}")
    path, made_slug = _worktree_path(root_p, repo_slug(ident.main, ident.common), session)
    created_branch = False
    try:
        proc = g.run("update-ref", "-m", f"hive-lab: worktree for session {session}",
                     ref, sha, "", ok=(0, 1, 128))
        if proc.returncode != 0:
            raise Conflict(f"cannot create branch {branch}: {_stderr_text(proc.stderr)}")
        created_branch = True
        g.run("config", f"branch.{branch}.{BASE_CONFIG}", f"{sha} {base_ref or '-'}")
        g.run("worktree", "add", "--quiet", "--", str(path), branch)
    except BaseException:
        _undo_create(g, path, ref if created_branch else None, sha, branch,
                     path.parent if made_slug else None)
        raise
    return Worktree(session=session, repo=str(ident.main), path=str(path), branch=branch,
                    base_sha=sha, base_ref=base_ref)


def open_worktree(repo: Path | str, name: str) -> Worktree | None:
    """The existing worktree of branch ``hive/<name>`` in ``repo`` (a task's earlier attempt
    left it with its work), or None when there is no such branch checked out anywhere."""
    name = validate_name(name, "worktree name")
    ident = _repo_id(repo)
    g = _Git(ident.main)
    branch = BRANCH_PREFIX + name
    entry = next((e for e in _worktree_list(g) if e.branch == f"refs/heads/{branch}"), None)
    if entry is None or not os.path.isdir(entry.path):
        return None
    sha, ref = _recorded_bases(g).get(branch, (None, None))
    return Worktree(session=name, repo=str(ident.main), path=entry.path, branch=branch,
                    base_sha=sha, base_ref=ref)


def _undo_create(g: _Git, path: Path, ref: str | None, sha: str, branch: str,
                 slug_dir: Path | None) -> None:
    """Best effort: remove what a failed ``create_worktree`` made, and only that: the worktree
    only if git registered it on our new branch, the branch only if it still is at ``sha``."""
    try:
        entry = _find_entry(_worktree_list(g), str(path))
        if entry is not None and ref is not None and entry.branch == ref:
            g.run("worktree", "remove", "--force", "--force", "--", str(path), ok=(0, 1, 128))
        if ref is not None:  # only if still where we put it
            g.run("update-ref", "-d", ref, sha, ok=(0, 1, 128))
            g.run("config", "--remove-section", f"branch.{branch}", ok=(0, 1, 3, 5, 128))
        if slug_dir is not None:
            try:
                slug_dir.rmdir()
            except OSError:
                pass
    except HiveError:
        pass


# ---------------------------------------------------------------------------------------------
# live state
# ---------------------------------------------------------------------------------------------
@dataclass
class _Status:
    head: str | None = None
    branch: str | None = None
    staged: dict[str, str] = field(default_factory=dict)
    unstaged: dict[str, str] = field(default_factory=dict)
    untracked: list[str] = field(default_factory=list)


def _dec(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def parse_status(out: bytes) -> _Status:
    """``status --porcelain=v2 --branch -z`` into head, branch and per-side file statuses."""
    st = _Status()
    tokens = out.split(b"\0")
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if not tok:
            continue
        kind = tok[:1]
        if tok.startswith(b"# branch.oid "):
            oid = _dec(tok[13:])
            st.head = oid if _SHA_RE.fullmatch(oid) else None
        elif tok.startswith(b"# branch.head "):
            head = _dec(tok[14:])
            st.branch = None if head == "(detached)" else head
        elif kind in (b"1", b"2"):
            parts = tok.split(b" ", 9 if kind == b"2" else 8)
            xy, path = _dec(parts[1]), _dec(parts[-1])
            if kind == b"2":
                i += 1  # the rename's original path follows
            if xy[0] != ".":
                st.staged[path] = xy[0]
            if xy[1] != ".":
                st.unstaged[path] = xy[1]
        elif kind == b"u":
            st.unstaged[_dec(tok.split(b" ", 10)[-1])] = "U"
        elif kind == b"?":
            st.untracked.append(_dec(tok[2:]))
    return st


def parse_numstat(out: bytes) -> dict[str, tuple[int | None, int | None]]:
    """``diff --numstat -z``: path -> (added, removed); binary files give (None, None)."""
    result: dict[str, tuple[int | None, int | None]] = {}
    tokens = out.split(b"\0")
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if not tok:
            continue
        fields = tok.split(b"\t", 2)
        if len(fields) != 3:
            continue
        added = None if fields[0] == b"-" else int(fields[0])
        removed = None if fields[1] == b"-" else int(fields[1])
        if fields[2]:
            result[_dec(fields[2])] = (added, removed)
        elif i + 1 < len(tokens):  # rename: "\0old\0new"
            result[_dec(tokens[i + 1])] = (added, removed)
            i += 2
    return result


def _numstat(g: _Git, entries: Mapping[str, str], cached: bool) -> list[FileChange]:
    """Line counts for the files ``status`` named on one side (skipped when there are none)."""
    if not entries:
        return []
    args = ["diff", "--numstat", "-z", "--no-renames", "--no-ext-diff"]
    if cached:
        args.append("--cached")
    if len(entries) <= PATHSPEC_LIMIT:
        args += ["--", *(f":(literal){p}" for p in entries)]
    counts = parse_numstat(g.out(*args))
    return [FileChange(p, s, *counts.get(p, (None, None))) for p, s in sorted(entries.items())]


def _count_lines(path: Path, budget: list[int], cache: GitCache) -> int | None:
    """Lines in an untracked file the way numstat counts them; None for binary, special or too
    big files. Symlinks count one line (their target) and are never followed. Cached by
    (path, inode, size, mtime): agents leave most untracked files alone between refreshes."""
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            return 1
        if not stat.S_ISREG(st.st_mode) or st.st_size > COUNT_FILE_LIMIT:
            return None
        key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
        hit = cache.lines.get(key)
        if hit is not None:
            return hit if hit >= 0 else None
        if st.st_size > budget[0]:
            return None
        budget[0] -= st.st_size
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(COUNT_FILE_LIMIT + 1)
    except OSError:
        return None
    if b"\0" in data[:BINARY_PROBE]:
        lines = None
    elif not data:
        lines = 0
    else:
        lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    cache.lines.put(key, -1 if lines is None else lines)
    return lines


def _untracked(wt: Path, paths: Iterable[str], cache: GitCache) -> list[FileChange]:
    budget = [COUNT_TOTAL_LIMIT]
    out = []
    for p in sorted(paths):
        lines = _count_lines(wt / p, budget, cache)
        out.append(FileChange(p, "?", lines, None if lines is None else 0))
    return out


def _parse_log(out: bytes) -> list[CommitInfo]:
    """``log -z --format=%H%x00%ct%x00%an%x00%s``: four NUL-separated fields per commit."""
    tokens = out.split(b"\0")
    commits = []
    for i in range(0, len(tokens) - 3, 4):
        sha = tokens[i].decode("ascii", "replace").strip()
        if _SHA_RE.fullmatch(sha):
            commits.append(CommitInfo(sha=sha, time=int(tokens[i + 1] or 0),
                                      author=tokens[i + 2].decode("utf-8", "replace"),
                                      subject=tokens[i + 3].decode("utf-8", "replace")))
    return commits


_LOG_FORMAT = "--format=%H%x00%ct%x00%an%x00%s"


def _head_and_tip(g: _Git, repo: str, head: str | None, base_ref: str | None,
                  base_sha: str | None, cache: GitCache) -> tuple[CommitInfo | None, str | None, bool]:
    """(last commit, base tip, base missing) in at most one ``log`` process."""
    cached = cache.commits.get((repo, head)) if head else None
    if base_ref is None and (head is None or cached):
        return cached, base_sha, False
    revs = ([head] if head else []) + ([base_ref] if base_ref else [])
    proc = g.run("log", "-z", "--no-walk=unsorted", "--no-show-signature", _LOG_FORMAT, "--end-of-options", *revs,
                 ok=(0, 128))
    missing = proc.returncode != 0
    if missing:  # the base branch is gone (or the head): fall back to the recorded commit
        if not head:
            return None, base_sha, True
        proc = g.run("log", "-z", "--no-walk=unsorted", "--no-show-signature", _LOG_FORMAT, "--end-of-options", head)
    commits = _parse_log(proc.stdout)
    info = next((c for c in commits if c.sha == head), None)
    if info:
        cache.commits.put((repo, head), info)
    if missing or base_ref is None:
        return info, base_sha, missing
    others = [c.sha for c in commits if c.sha != head]
    return info, (others[0] if others else head), False


@dataclass(frozen=True)
class _Range:
    """Everything that depends only on (base tip, head): computed once per pair of commits."""

    merge_base: str | None
    ahead: int | None
    behind: int | None
    committed: tuple[str, ...]
    clean: bool | None
    conflicts: tuple[str, ...]


def _merge_tree(g: _Git, a: str, b: str) -> tuple[bool | None, list[str], str | None, str | None]:
    """(conflict?, conflicted paths, result tree, error) of merging ``a`` and ``b``."""
    proc = g.run("merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", a, b,
                 ok=(0, 1, 128, 129))
    if proc.returncode not in (0, 1):
        return None, [], None, _stderr_text(proc.stderr) or f"exit {proc.returncode}"
    tokens = proc.stdout.split(b"\0")
    tree = tokens[0].decode("ascii", "replace").strip() if tokens else None
    paths: list[str] = []
    for tok in tokens[1:]:
        if not tok:
            break  # an empty field starts the (suppressed) messages section
        path = _dec(tok)
        if path not in paths:
            paths.append(path)
    return proc.returncode == 1, paths, tree, None


def _range(g: _Git, repo: str, tip: str, head: str, cache: GitCache) -> _Range:
    key = (repo, tip, head)
    hit = cache.ranges.get(key)
    if hit is not None:
        return hit
    if tip == head:
        result = _Range(head, 0, 0, (), True, ())
    else:
        proc = g.run("merge-base", "--end-of-options", tip, head, ok=(0, 1))
        mb = (proc.stdout.decode().strip() or None) if proc.returncode == 0 else None
        behind, ahead = (int(x) for x in g.text(
            "rev-list", "--left-right", "--count", f"{tip}...{head}").split())
        committed: tuple[str, ...] = ()
        if mb and ahead:
            names = g.out("diff", "--name-only", "-z", "--no-renames", "--end-of-options", mb, head)
            committed = tuple(sorted(_dec(n) for n in names.split(b"\0") if n))
        conflicts: tuple[str, ...] = ()
        clean: bool | None
        if mb is None:
            clean = None
        elif ahead == 0 or behind == 0:
            clean = True  # nothing to merge, or a fast-forward
        else:
            conflict, paths, _, _ = _merge_tree(g, tip, head)
            clean = None if conflict is None else not conflict
            conflicts = tuple(paths)
        result = _Range(mb, ahead, behind, committed, clean, conflicts)
    cache.ranges.put(key, result)
    return result


def git_state(worktree_path: Path | str, base_ref: str | None = None,
              base_sha: str | None = None, cache: GitCache | None = None) -> GitState:
    """One refresh of a worktree's state vs its base, read without locks.

    Steady state costs one ``status`` and one ``log`` process (numstat diffs only when status
    lists staged or unstaged files); a new commit adds up to four cached ones.
    """
    t0 = time.perf_counter()
    wt = _worktree_dir(worktree_path)
    base_ref = None if base_ref is None else validate_full_ref(base_ref)
    base_sha = None if base_sha is None else validate_sha(base_sha, "base commit")
    repo = str(common_dir(wt))
    g = _Git(wt)
    cache = cache if cache is not None else GitCache()
    st = parse_status(g.out("status", "--porcelain=v2", "--branch", "-z",
                            "--untracked-files=all", "--no-renames"))
    last, tip, missing = _head_and_tip(g, repo, st.head, base_ref, base_sha, cache)
    rng = _range(g, repo, tip, st.head, cache) if tip and st.head else None
    staged = _numstat(g, st.staged, cached=True)
    unstaged = _numstat(g, st.unstaged, cached=False)
    untracked = _untracked(wt, st.untracked, cache)
    return GitState(
        worktree=str(wt), repo=repo, branch=st.branch, head=st.head,
        base_ref=base_ref, base_sha=base_sha, base_tip=tip, base_missing=missing,
        merge_base=rng.merge_base if rng else None,
        ahead=rng.ahead if rng else None, behind=rng.behind if rng else None,
        merges_cleanly=rng.clean if rng else None,
        merge_conflicts=list(rng.conflicts) if rng else [],
        last_commit=last, staged=staged, unstaged=unstaged, untracked=untracked,
        committed=list(rng.committed) if rng else [],
        elapsed_ms=round((time.perf_counter() - t0) * 1000, 2), git_calls=g.calls,
    )


# ---------------------------------------------------------------------------------------------
# diff
# ---------------------------------------------------------------------------------------------
def quote_path(prefix: str, path: str) -> str:
    """git's C-style quoting of ``prefix + path`` (core.quotePath=true), as diff headers show it."""
    raw = os.fsencode(prefix + path)
    if not any(b < 0x20 or b in (0x22, 0x5C, 0x7F) or b >= 0x80 for b in raw):
        return raw.decode("ascii")
    named = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r",
             0x22: '\\"', 0x5C: "\\\\"}
    out = []
    for b in raw:
        if b in named:
            out.append(named[b])
        elif b < 0x20 or b >= 0x7F:
            out.append(f"\\{b:03o}")
        else:
            out.append(chr(b))
    return '"' + "".join(out) + '"'


def _blob_sha(data_len: int, chunks: Iterable[bytes]) -> str:
    h = hashlib.sha1(b"blob %d\0" % data_len)
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def _read_chunks(fh: Any, limit: int) -> Iterable[bytes]:
    left = limit
    while left > 0 and (chunk := fh.read(min(1 << 20, left))):
        left -= len(chunk)
        yield chunk


def new_file_patch(wt: Path, rel: str, budget: int) -> bytes:
    """The patch ``git diff --no-index /dev/null <rel>`` prints, without a git process and
    without following symlinks. Content beyond ``budget`` bytes is left out (the caller
    truncates there anyway). Non-regular files give b""."""
    full = wt / rel
    try:
        st = os.lstat(full)
        if stat.S_ISLNK(st.st_mode):
            mode, data = "120000", os.fsencode(os.readlink(full))
            size = len(data)
            sha = _blob_sha(size, [data])
        elif stat.S_ISREG(st.st_mode):
            mode = "100755" if st.st_mode & stat.S_IXUSR else "100644"
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size <= HASH_LIMIT:
                    sha = _blob_sha(size, _read_chunks(fh, size))
                    fh.seek(0)
                else:
                    sha = "0" * 40
                data = fh.read(min(size, budget + 1))
        else:
            return b""
    except OSError:
        return b""
    a, b = quote_path("a/", rel), quote_path("b/", rel)
    head = f"diff --git {a} {b}\nnew file mode {mode}\nindex 0000000..{sha[:7]}\n"
    if size == 0:
        return head.encode()
    if b"\0" in data[:BINARY_PROBE]:
        return (head + f"Binary files /dev/null and {b} differ\n").encode()
    tab = "\t" if " " in rel else ""
    complete = len(data) == size
    lines = data.split(b"\n")
    no_eol = complete and not data.endswith(b"\n")
    if lines and lines[-1] == b"" and data.endswith(b"\n"):
        lines.pop()
    count = len(lines) if complete else _count_newlines(full, size)
    hunk = "@@ -0,0 +1 @@\n" if count == 1 else f"@@ -0,0 +1,{count} @@\n"
    body = b"".join(b"+" + line + b"\n" for line in lines)
    if no_eol:
        body += b"\\ No newline at end of file\n"
    return (head + f"--- /dev/null\n+++ {b}{tab}\n" + hunk).encode() + body


def _count_newlines(path: Path, size: int) -> int:
    """Line count of a file too big to hold (only for the hunk header of a cut diff)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as fh:
            n, last = 0, b""
            for chunk in _read_chunks(fh, min(size, HASH_LIMIT)):
                n += chunk.count(b"\n")
                last = chunk[-1:]
            return n + (0 if last == b"\n" else 1)
    except OSError:
        return 0


class _Capped:
    """Collects output up to ``limit`` bytes; notes whether anything was cut."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buf = bytearray()
        self.truncated = False

    def add(self, chunk: bytes) -> bool:
        room = self.limit - len(self.buf)
        if len(chunk) > room:
            self.buf += chunk[:room]
            self.truncated = True
            return False
        self.buf += chunk
        return True

    def text(self) -> str:
        data = bytes(self.buf)
        if self.truncated and b"\n" in data:
            data = data[:data.rindex(b"\n") + 1]  # end on a whole line
        return data.decode("utf-8", "replace")


def diff(worktree_path: Path | str, base_sha: str, max_bytes: int = 1_000_000) -> DiffResult:
    """Unified diff of the working tree against ``base_sha``, untracked files included as new
    files, at most ``max_bytes`` (``truncated`` says when cut). Tracked files come first."""
    wt = _worktree_dir(worktree_path)
    validate_rev(base_sha, "base")
    limit = _validate_max_bytes(max_bytes)
    g = _Git(wt)
    sha = _rev(g, base_sha)
    if sha is None:
        raise BadRequest(f"base {base_sha!r} is not a commit in this repository")
    out = _Capped(limit)
    g.stream(["diff", "--no-color", "--no-ext-diff", "--src-prefix=a/", "--dst-prefix=b/",
              "--end-of-options", sha, "--"], out.add)
    included: list[str] = []
    if not out.truncated:
        names = g.out("ls-files", "--others", "--exclude-standard", "-z")
        for rel in sorted(_dec(n) for n in names.split(b"\0") if n):
            patch = new_file_patch(wt, rel, limit - len(out.buf))
            if not patch:
                continue
            included.append(rel)
            if not out.add(patch):
                break
    text = out.text()
    return DiffResult(base=sha, text=text, truncated=out.truncated,
                      bytes=len(text.encode("utf-8")), max_bytes=limit, untracked=included)


# ---------------------------------------------------------------------------------------------
# cleanup
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _WtEntry:
    path: str
    head: str | None
    branch: str | None  # refs/heads/...
    locked: bool
    prunable: bool


def _worktree_list(g: _Git) -> list[_WtEntry]:
    entries: list[_WtEntry] = []
    cur: dict[str, str] = {}
    for tok in [*g.out("worktree", "list", "--porcelain", "-z").split(b"\0"), b""]:
        if tok:
            key, _, value = _dec(tok).partition(" ")
            cur[key] = value
            continue
        if "worktree" in cur:
            entries.append(_WtEntry(path=cur["worktree"], head=cur.get("HEAD"),
                                    branch=cur.get("branch"), locked="locked" in cur,
                                    prunable="prunable" in cur))
        cur = {}
    return entries


def _count(g: _Git, *args: str) -> int:
    return int(g.text("rev-list", "--count", *args) or 0)


def _safety(g: _Git, head: str, base_tip: str | None) -> tuple[bool, bool, int]:
    """(merged, pushed, commits not in the base) for a commit we are about to drop."""
    if base_tip:
        unmerged = _count(g, head, "--not", base_tip)
        if unmerged:  # squash- or rebase-merged: merging it into the base would change nothing
            _, _, tree, _ = _merge_tree(g, base_tip, head)
            merged = tree is not None and tree == g.text("rev-parse", f"{base_tip}^{{tree}}")
        else:
            merged = True
    else:  # no recorded base: safe only if another (non-hive) branch holds it
        unmerged = _count(g, head, "--not", f"--exclude=refs/heads/{BRANCH_PREFIX}*", "--branches")
        merged = unmerged == 0
    pushed = merged or _count(g, head, "--not", "--remotes") == 0
    return merged, pushed, unmerged


def _uncommitted(wt_path: str) -> int:
    if not os.path.isdir(wt_path):
        return 0
    out = _Git(wt_path).out("status", "--porcelain=v2", "-z", "--untracked-files=all")
    st = parse_status(out)
    return len(set(st.staged) | set(st.unstaged) | set(st.untracked))


def remove_worktree(wt: Worktree, force: bool = False, dry_run: bool = False) -> Removal:
    """Remove a session's worktree and branch if no work can be lost: the branch is merged
    into its base or pushed, and nothing is uncommitted. Otherwise Conflict says why.

    ``dry_run`` runs every check and removes nothing (so a caller can refuse before it
    stops the agent)."""
    if not wt.branch.startswith(BRANCH_PREFIX):
        raise BadRequest(f"refusing to remove {wt.branch!r}: not a {BRANCH_PREFIX}* branch")
    validate_name(wt.branch[len(BRANCH_PREFIX):], "session name")
    base_ref = None if wt.base_ref is None else validate_full_ref(wt.base_ref)
    base_sha = None if wt.base_sha is None else validate_sha(wt.base_sha)
    if not os.path.isdir(wt.repo):
        raise NotFound(f"repository {wt.repo} does not exist")
    g = _Git(wt.repo, timeout=WRITE_TIMEOUT)
    ref = f"refs/heads/{wt.branch}"
    entries = _worktree_list(g)
    mine = _find_entry(entries, wt.path)
    others = [e for e in entries if e.branch == ref and e is not mine]
    if others:
        raise Conflict(f"branch {wt.branch} is checked out in another worktree: {others[0].path}")
    head = _rev(g, ref)
    if mine is None and head is None:
        raise NotFound(f"neither a worktree nor branch {wt.branch} is left for {wt.session}")
    tip = (_rev(g, base_ref) if base_ref else None) or base_sha
    merged, pushed, unmerged = _safety(g, head, tip) if head else (True, True, 0)
    reasons = []
    if not (merged or pushed):
        base_name = _short_ref(base_ref) if base_ref else (base_sha[:12] if base_sha else "any other branch")
        reasons.append(f"branch {wt.branch} has {unmerged} commit{'s' * (unmerged != 1)} "
                       f"not merged into {base_name} and not pushed")
    if mine is not None and mine.branch is None and mine.head:  # detached: nothing else holds it
        d_merged, d_pushed, d_unmerged = _safety(g, mine.head, tip)
        if not (d_merged or d_pushed):
            reasons.append(f"the worktree's detached HEAD has {d_unmerged} unmerged, unpushed commits")
    dirty = _uncommitted(mine.path) if mine is not None else 0
    if dirty:
        reasons.append(f"the worktree has {dirty} uncommitted change{'s' * (dirty != 1)}")
    if mine is not None and mine.locked and not force:
        reasons.append("the worktree is locked (git worktree unlock)")
    if reasons and not force:
        raise UnmergedWork("; ".join(reasons) + ". Merge or push it first, or remove with force.",
                       extra={"unmerged_commits": unmerged, "uncommitted": dirty,
                              "merged": merged, "pushed": pushed})
    if dry_run:
        return Removal(session=wt.session, branch=wt.branch, path=mine.path if mine else wt.path,
                       head=head, merged=merged, pushed=pushed, unmerged_commits=unmerged,
                       uncommitted=dirty, forced=force and bool(reasons),
                       removed_worktree=False, removed_branch=False)
    if mine is not None:
        args = ["worktree", "remove"] + (["--force", "--force"] if force else []) + ["--", mine.path]
        proc = g.run(*args, ok=(0, 1, 128))
        if proc.returncode != 0:
            raise Conflict(f"git refused to remove {mine.path}: {_stderr_text(proc.stderr)}")
    removed_branch = False
    if head is not None:
        removed_branch = g.run("update-ref", "-d", ref, head, ok=(0, 1, 128)).returncode == 0
        g.run("config", "--remove-section", f"branch.{wt.branch}", ok=(0, 1, 3, 5, 128))
    return Removal(session=wt.session, branch=wt.branch, path=mine.path if mine else wt.path,
                   head=head, merged=merged, pushed=pushed, unmerged_commits=unmerged,
                   uncommitted=dirty, forced=force and bool(reasons),
                   removed_worktree=mine is not None, removed_branch=removed_branch)


def remove_if_untouched(wt: Worktree) -> tuple[Removal | None, str]:
    """Remove a stopped session's worktree and branch if the agent left nothing in them: no
    commit beyond the base it started from, nothing uncommitted or untracked, not locked.

    Returns (the removal, why) or (None, why it was kept). A worktree with any trace of work
    stays for the user (``cleanup=worktree`` or ``git/orphans`` decide about it later).
    """
    if wt.base_sha is None:
        return None, "kept: its base commit was never recorded"
    base_sha = validate_sha(wt.base_sha)
    if not os.path.isdir(wt.repo):
        return None, f"kept: repository {wt.repo} does not exist"
    g = _Git(wt.repo)
    head = _rev(g, f"refs/heads/{wt.branch}")
    mine = _find_entry(_worktree_list(g), wt.path)
    if head is None and mine is None:
        return None, "nothing left to remove"
    for tip in {h for h in (head, mine.head if mine else None) if h}:
        ahead = _count(g, tip, "--not", base_sha)
        if ahead:
            return None, f"kept: {ahead} commit{'s' * (ahead != 1)} beyond its base"
    if mine is not None:
        if mine.locked:
            return None, "kept: the worktree is locked"
        dirty = _uncommitted(mine.path)
        if dirty:
            return None, f"kept: {dirty} uncommitted or untracked change{'s' * (dirty != 1)}"
    try:
        removal = remove_worktree(wt)
    except HiveError as exc:  # e.g. its base was rewound: keep it, say why
        return None, f"kept: {exc.detail}"
    return removal, "removed: no commits beyond its base and no changes"


def _short_ref(ref: str) -> str:
    for prefix in ("refs/heads/", "refs/remotes/"):
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return ref


def _find_entry(entries: Sequence[_WtEntry], path: str | None) -> _WtEntry | None:
    if path is None:
        return None
    want = os.path.realpath(path)
    for e in entries:
        if e.path == path or os.path.realpath(e.path) == want:
            return e
    return None


# ---------------------------------------------------------------------------------------------
# orphans
# ---------------------------------------------------------------------------------------------
def _repos_under(root: Path) -> set[Path]:
    """Repositories that own worktrees under ``<root>/<slug>/<session>`` (no git process)."""
    found: set[Path] = set()
    if not root.is_dir():
        return found
    for slug in root.iterdir():
        if not slug.is_dir() or slug.is_symlink():
            continue
        for child in slug.iterdir():
            if (child / ".git").is_file():
                try:
                    common = common_dir(child)
                except BadRequest:
                    continue
                if common.is_dir():
                    found.add(common.parent if common.name == ".git" else common)
                    break  # one live worktree names the repo of the whole slug
    return found


def _recorded_bases(g: _Git) -> dict[str, tuple[str | None, str | None]]:
    """branch -> (base sha, base ref) from ``branch.hive/<s>.hivebase``."""
    proc = g.run("config", "-z", "--get-regexp", r"^branch\.hive/.*\." + BASE_CONFIG + "$",
                 ok=(0, 1))
    bases: dict[str, tuple[str | None, str | None]] = {}
    for rec in proc.stdout.split(b"\0"):
        key, _, value = _dec(rec).partition("\n")
        if not key.startswith("branch.") or not key.endswith("." + BASE_CONFIG):
            continue
        branch = key[len("branch."):-len(BASE_CONFIG) - 1]
        sha, _, ref = value.partition(" ")
        bases[branch] = (sha if _SHA_RE.fullmatch(sha) else None,
                         ref if ref.startswith("refs/") and _valid_full(ref) else None)
    return bases


def _valid_full(ref: str) -> bool:
    try:
        validate_full_ref(ref)
        return True
    except BadRequest:
        return False


def list_orphans(root: Path | str, known_sessions: Collection[str],
                 repos: Iterable[Path | str] = ()) -> list[Worktree]:
    """Hive worktrees and ``hive/*`` branches whose session is not in ``known_sessions``.

    Looks in every repository owning a worktree under ``root`` plus ``repos`` (pass the repos
    of stored sessions: a branch whose worktree folder is gone is only found there).
    Each result can be passed to ``remove_worktree`` (same safety rules).
    """
    mains = _repos_under(Path(root))
    for r in repos:
        try:
            mains.add(_repo_id(r).main)
        except (BadRequest, GitError, NotFound):
            continue  # gone or no longer a repository: nothing of ours to find there
    orphans: dict[tuple[str, str], Worktree] = {}
    for main in sorted(mains):
        for o in _orphans_in(main, Path(root), set(known_sessions)):
            orphans[(o.repo, o.session)] = o
    return sorted(orphans.values(), key=lambda o: (o.repo, o.session))


def _orphans_in(main: Path, root: Path, known: set[str]) -> list[Worktree]:
    g = _Git(main)
    real_root = root.resolve() if root.exists() else root
    bases = _recorded_bases(g)
    branches = {_dec(n)[len("refs/heads/"):] for n in g.out(
        "for-each-ref", "--format=%(refname)", f"refs/heads/{BRANCH_PREFIX}").split(b"\n") if n}
    by_session: dict[str, Worktree] = {}

    def add(session: str, path: str | None) -> None:
        branch = BRANCH_PREFIX + session
        sha, ref = bases.get(branch, (None, None))
        by_session[session] = Worktree(session=session, repo=str(main), path=path,
                                       branch=branch, base_sha=sha, base_ref=ref)

    for e in _worktree_list(g):
        name = None
        if e.branch and e.branch.startswith("refs/heads/" + BRANCH_PREFIX):
            name = e.branch[len("refs/heads/" + BRANCH_PREFIX):]
        elif _inside(Path(os.path.realpath(e.path)), real_root):
            name = Path(e.path).name  # under our root but switched branch or detached
        if name and _is_name(name) and name not in known:
            add(name, e.path)
    for branch in branches:
        name = branch[len(BRANCH_PREFIX):]
        if _is_name(name) and name not in known and name not in by_session:
            add(name, None)
    return list(by_session.values())


def _is_name(name: str) -> bool:
    try:
        validate_name(name)
        return True
    except BadRequest:
        return False


# ---------------------------------------------------------------------------------------------
# collisions
# ---------------------------------------------------------------------------------------------
def overlaps(changes: Mapping[str, Collection[str]],
             committed: Mapping[str, Collection[str]] | None = None,
             repo: str | None = None) -> list[Overlap]:
    """Files changed by more than one session (``changes``: session -> paths, all of one repo).
    ``committed`` (session -> paths changed by commits) marks which changes merge-tree sees."""
    by_path: dict[str, list[str]] = {}
    for session, paths in changes.items():
        for p in set(paths):
            by_path.setdefault(p, []).append(session)
    done_by = {s: set(paths) for s, paths in (committed or {}).items()}
    result = []
    for path in sorted(by_path):
        sessions = sorted(by_path[path])
        if len(sessions) > 1:
            done = [s for s in sessions if path in done_by.get(s, ())]
            result.append(Overlap(path=path, sessions=sessions, committed=done, repo=repo))
    return result


class ConflictPredictor:
    """``git merge-tree`` between session heads, cached by the pair of commit ids (a verdict
    never changes for the same two commits), so recomputing on every change is cheap."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._cache = _LRU(max_entries)
        self.hits = 0
        self.misses = 0

    def predict_pair(self, repo: Path | str, a: str, head_a: str, b: str, head_b: str) -> Prediction:
        """Would merging session ``a``'s head and session ``b``'s head conflict, and where?

        ``repo`` is where git runs and names the cache: pass the common git dir
        (``GitState.repo``), which git accepts as a working directory.
        """
        head_a, head_b = validate_sha(head_a), validate_sha(head_b)
        (a, head_a), (b, head_b) = sorted([(a, head_a), (b, head_b)])
        key = (str(repo), *sorted((head_a, head_b)))
        hit = self._cache.get(key)
        if hit is None:
            self.misses += 1
            if head_a == head_b:
                hit = (False, [], None)
            else:
                conflict, paths, _, error = _merge_tree(_Git(repo), head_a, head_b)
                hit = (conflict, paths, error)
            self._cache.put(key, hit)
            cached = False
        else:
            self.hits += 1
            cached = True
        conflict, paths, error = hit
        return Prediction(sessions=(a, b), heads=(head_a, head_b), conflict=conflict,
                          paths=list(paths), repo=str(repo), error=error, cached=cached)

    def predict(self, repo: Path | str, heads: Mapping[str, str],
                pairs: Iterable[tuple[str, str]]) -> list[Prediction]:
        """Predictions for ``pairs`` of sessions (``heads``: session -> head commit)."""
        return [self.predict_pair(repo, a, heads[a], b, heads[b]) for a, b in pairs]


def collisions(states: Mapping[str, GitState], predictor: ConflictPredictor) -> Collisions:
    """Overlaps (committed or not) and predicted conflicts across sessions, per repository.

    merge-tree runs only for pairs whose *committed* changes share a file: it cannot see
    uncommitted edits, and without a shared file two branches cannot conflict on content.
    """
    by_repo: dict[str, dict[str, GitState]] = {}
    for session, st in states.items():
        by_repo.setdefault(st.repo, {})[session] = st
    all_overlaps: list[Overlap] = []
    preds: list[Prediction] = []
    for repo, group in sorted(by_repo.items()):
        all_overlaps += overlaps({s: st.changed_paths() for s, st in group.items()},
                                 {s: st.committed for s, st in group.items()}, repo=repo)
        committed = {s: set(st.committed) for s, st in group.items() if st.head and st.committed}
        pairs = [(a, b) for a, b in combinations(sorted(committed), 2) if committed[a] & committed[b]]
        if pairs:
            heads = {s: group[s].head or "" for s in committed}
            preds += predictor.predict(repo, heads, pairs)
    return Collisions(overlaps=all_overlaps, conflicts=[p for p in preds if p.conflict],
                      predictions=preds)



# ---------------------------------------------------------------------------------------------
# pipelines: Hive Lab commits a stage's work and moves one branch forward (never a force)
# ---------------------------------------------------------------------------------------------
COMMIT_IDENTITY = ("-c", "user.name=Hive Lab", "-c", "user.email=hive-lab@localhost")


def commit_all(worktree_path: Path | str, message: str) -> str | None:
    """Commit everything changed in the worktree (ignored files stay out); the new head, or
    None when there was nothing to commit. The pipeline does this at the end of an agent's
    turn, so what the next stage sees is a commit, not a working tree that may still move."""
    g = _Git(_worktree_dir(worktree_path), timeout=WRITE_TIMEOUT)
    g.run("add", "-A", "--", ".")
    if g.run("diff", "--cached", "--quiet", ok=(0, 1)).returncode == 0:
        return None
    g.run(*COMMIT_IDENTITY, "commit", "--no-verify", "-q", "-m", message[:2000])
    return g.text("rev-parse", "HEAD")


def head_sha(worktree_path: Path | str) -> str:
    return _Git(_worktree_dir(worktree_path)).text("rev-parse", "HEAD")


def fast_forward(worktree_path: Path | str, rev: str) -> str:
    """Move the worktree's branch forward to ``rev`` (``merge --ff-only``: never a rewrite);
    GitError when it is not a fast-forward. Returns the new head."""
    validate_rev(rev, "revision")
    g = _Git(_worktree_dir(worktree_path), timeout=WRITE_TIMEOUT)
    g.run("merge", "--ff-only", "-q", "--end-of-options", rev)
    return g.text("rev-parse", "HEAD")


def diff_range(repo: Path | str, base: str, head: str, max_bytes: int = 200_000) -> DiffResult:
    """``git diff base...head`` (what ``head`` changed since it left ``base``), capped."""
    validate_rev(base, "base")
    validate_rev(head, "head")
    limit = _validate_max_bytes(max_bytes)
    g = _Git(_worktree_dir(repo))
    sha = _rev(g, base)
    if sha is None:
        raise BadRequest(f"base {base!r} is not a commit in this repository")
    out = _Capped(limit)
    g.stream(["diff", "--no-color", "--no-ext-diff", "--src-prefix=a/", "--dst-prefix=b/",
              f"{sha}...{head}", "--"], out.add)
    text = out.text()
    return DiffResult(base=sha, text=text, truncated=out.truncated,
                      bytes=len(text.encode("utf-8")), max_bytes=limit, untracked=[])


def head_sha_of(repo: Path | str, rev: str) -> str:
    """``rev`` as a commit id in ``repo``; BadRequest when it names no commit."""
    validate_rev(rev, "base")
    g = _Git(_worktree_dir(repo))
    sha = _rev(g, rev)
    if sha is None:
        raise BadRequest(f"{rev!r} is not a commit in this repository")
    return sha


def branch_name(repo: Path | str, rev: str) -> str | None:
    """The local branch ``rev`` names (``HEAD``: the branch checked out), else None."""
    validate_rev(rev, "base")
    g = _Git(_worktree_dir(repo))
    if rev == "HEAD":
        name = g.text("symbolic-ref", "--short", "-q", "HEAD", ok=(0, 1))
        return name or None
    ok = g.run("show-ref", "--verify", "--quiet", f"refs/heads/{rev}", ok=(0, 1))
    return rev if ok.returncode == 0 else None
