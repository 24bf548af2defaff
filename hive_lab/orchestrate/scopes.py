"""File scopes: glob patterns over repository-relative POSIX paths, and where a path really is.

Why not ``fnmatch``: its ``*`` crosses ``/`` and it knows no ``**``, so ``src/*.py`` would match
``src/a/b.py`` and ``src/**`` would be an ordinary star. The rules here, which every part of
orchestration (guard, audit, planner, prompts) shares:

- Patterns are anchored at the repository root: ``*.md`` is a top-level file, ``**/*.md`` any.
- ``*`` and ``?`` stay inside one path segment; ``[abc]`` / ``[!abc]`` are one-character classes.
- A whole segment ``**`` is zero or more segments: ``src/**`` is everything under ``src/``,
  ``a/**/b`` matches ``a/b`` and ``a/x/y/b``. A pattern ending in ``/`` means ``dir/**``.
- Case-sensitive (the file systems this runs on are); both sides are NFC-normalised, so a path
  typed in NFD matches a pattern written in NFC.
"""
from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable, Mapping, Protocol, Sequence

from hive_lab.core.errors import BadRequest

from .edge import parse_list

MAX_PATTERNS = 200
MAX_PATTERN_LEN = 1024
_GLOB_CHARS = frozenset("*?[")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class Scoped(Protocol):
    """What scope functions need of a task (``Task`` has it; tests may pass anything similar)."""

    id: str
    scope: Sequence[str]
    shared: Sequence[str]


# ---------------------------------------------------------------- validation


def validate_patterns(value: Any, what: str = "scope") -> tuple[str, ...]:
    """Check a list of globs from a request body; return them NFC-normalised, in order, unique."""
    return parse_list(value, what, MAX_PATTERNS, validate_pattern, "glob strings")


def validate_pattern(item: Any, what: str = "scope") -> str:
    """One glob: relative, no ``..``, no control characters, no backslashes, bounded."""
    if not isinstance(item, str) or not item.strip():
        raise BadRequest(f"{what} patterns must be non-empty strings")
    shown = item[:80]
    if len(item) > MAX_PATTERN_LEN:
        raise BadRequest(f"{what} pattern {shown!r}... is longer than {MAX_PATTERN_LEN}")
    if _CONTROL_RE.search(item):
        raise BadRequest(f"{what} pattern {shown!r} contains control characters")
    if "\\" in item:
        raise BadRequest(f"{what} pattern {shown!r}: use '/' (backslashes are not allowed)")
    if item.startswith("/") or item.startswith("~"):
        raise BadRequest(f"{what} pattern {shown!r} must be relative to the repository root")
    pattern = unicodedata.normalize("NFC", item)
    while pattern.startswith("./"):
        pattern = pattern[2:]
    if pattern.endswith("/"):
        pattern = pattern.rstrip("/") + "/**"
    segments = pattern.split("/")
    if any(s == ".." for s in segments):
        raise BadRequest(f"{what} pattern {shown!r} must not contain '..'")
    if any(s in ("", ".") for s in segments):
        raise BadRequest(f"{what} pattern {shown!r} has an empty or '.' segment")
    if segments[0] == ".git" or (segments[0] == "**" and len(segments) > 1 and segments[1] == ".git"):
        raise BadRequest(f"{what} pattern {shown!r}: .git is never in scope")
    for seg in segments:
        if seg != "**" and "**" in seg:
            raise BadRequest(f"{what} pattern {shown!r}: '**' must be a whole segment")
        _segment_regex(seg)  # raises on a malformed class
    return pattern


# ---------------------------------------------------------------- matching


@lru_cache(maxsize=4096)
def _segment_regex(seg: str) -> str:
    """Regex source for one segment glob (no ``/`` inside)."""
    out: list[str] = []
    i, n = 0, len(seg)
    while i < n:
        c = seg[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + 1
            if j < n and seg[j] in "!^":
                j += 1
            if j < n and seg[j] == "]":
                j += 1
            while j < n and seg[j] != "]":
                j += 1
            if j >= n:
                raise BadRequest(f"unclosed '[' in pattern segment {seg[:80]!r}")
            body = seg[i + 1:j]
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\").replace("^", "\\^")
            out.append(f"[^/{body}]" if negate else f"[{body}]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@lru_cache(maxsize=8192)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The compiled regex of a validated pattern (cached: scopes repeat on every tick)."""
    segments = pattern.split("/")
    parts: list[str] = []
    last = len(segments) - 1
    for k, seg in enumerate(segments):
        if seg == "**":
            if k == last:
                # trailing: one or more segments (everything under the directory)
                parts.append("[^/]+(?:/[^/]+)*" if k == 0 else "/[^/]+(?:/[^/]+)*")
            else:
                # zero or more whole segments followed by '/'
                parts.append("(?:[^/]+/)*" if k == 0 else "/(?:[^/]+/)*")
            continue
        prev_globstar = k > 0 and segments[k - 1] == "**"
        if k > 0 and not prev_globstar:
            parts.append("/")
        parts.append(_segment_regex(seg))
    return re.compile("".join(parts))


def nfc(path: str) -> str:
    return unicodedata.normalize("NFC", path)


def matches(path: str, pattern: str) -> bool:
    """Whether the repo-relative POSIX ``path`` matches one pattern."""
    return compile_pattern(pattern).fullmatch(nfc(path)) is not None


def first_match(path: str, patterns: Iterable[str]) -> str | None:
    """The first pattern that matches ``path`` (the one to name in a reason), or None."""
    p = nfc(path)
    for pattern in patterns:
        if compile_pattern(pattern).fullmatch(p) is not None:
            return pattern
    return None


def in_scope(path: str, task: Scoped) -> bool:
    """May ``task`` change ``path`` as far as its own lists go (scope or shared)?"""
    return first_match(path, task.scope) is not None or first_match(path, task.shared) is not None


def owner_of(path: str, active_tasks: Iterable[Scoped]) -> tuple[str, str] | None:
    """(task id, pattern) of the active task whose *scope* holds ``path``, lowest id first.

    ``shared`` patterns make no one an owner: they are the files several tasks may touch.
    """
    for task in sorted(active_tasks, key=lambda t: t.id):
        hit = first_match(path, task.scope)
        if hit is not None:
            return task.id, hit
    return None


def dir_covered(rel_dir: str, patterns: Iterable[str]) -> bool:
    """Is everything under directory ``rel_dir`` in scope? (For writes to a glob like ``d/*.py``.)

    Only ``L/**`` (or ``**``) patterns with ``rel_dir`` at or under literal ``L`` prove it.
    """
    d = nfc(rel_dir).strip("/")
    for pattern in patterns:
        if pattern == "**":
            return True
        if pattern.endswith("/**"):
            head = pattern[:-3]
            if not (_GLOB_CHARS & set(head)) and (d == head or d.startswith(head + "/")):
                return True
    return False


# ---------------------------------------------------------------- overlap


def _is_literal(seg: str) -> bool:
    return not (_GLOB_CHARS & set(seg))


def _literal_prefix(seg: str) -> str:
    for i, c in enumerate(seg):
        if c in _GLOB_CHARS:
            return seg[:i]
    return seg


def _literal_suffix(seg: str) -> str:
    for i in range(len(seg) - 1, -1, -1):
        if seg[i] in _GLOB_CHARS or seg[i] == "]":
            return seg[i + 1:]
    return seg


@lru_cache(maxsize=65536)
def _segments_disjoint(a: str, b: str) -> bool:
    """True only if no single segment can match both segment globs."""
    if a == b:
        return False
    la, lb = _is_literal(a), _is_literal(b)
    if la and lb:
        return True
    if la:
        return re.fullmatch(_segment_regex(b), a) is None
    if lb:
        return re.fullmatch(_segment_regex(a), b) is None
    pa, pb = _literal_prefix(a), _literal_prefix(b)
    if not (pa.startswith(pb) or pb.startswith(pa)):
        return True
    sa, sb = _literal_suffix(a), _literal_suffix(b)
    return not (sa.endswith(sb) or sb.endswith(sa))


@lru_cache(maxsize=65536)
def patterns_overlap(a: str, b: str) -> bool:
    """Conservative: False only when no path can match both patterns."""
    if a == b:
        return True
    sa, sb = a.split("/"), b.split("/")
    star_a, star_b = "**" in sa, "**" in sb
    if not star_a and not star_b and len(sa) != len(sb):
        return False  # different fixed depths
    # a fixed-depth pattern cannot meet one that needs more segments (a trailing ** needs one)
    min_a = sum(1 for s in sa if s != "**") + (1 if sa[-1] == "**" else 0)
    min_b = sum(1 for s in sb if s != "**") + (1 if sb[-1] == "**" else 0)
    if (not star_a and min_b > len(sa)) or (not star_b and min_a > len(sb)):
        return False
    # segments at fixed positions from the front, then from the back, must be compatible
    for x, y in zip(sa, sb):
        if x == "**" or y == "**":
            break
        if _segments_disjoint(x, y):
            return False
    for x, y in zip(reversed(sa), reversed(sb)):
        if x == "**" or y == "**":
            break
        if _segments_disjoint(x, y):
            return False
    return True


def overlapping_pair(a: Sequence[str], b: Sequence[str]) -> tuple[str, str] | None:
    """The first (pattern of a, pattern of b) that may overlap, or None if provably disjoint."""
    for x in a:
        for y in b:
            if patterns_overlap(x, y):
                return x, y
    return None


def scopes_overlap(a: Sequence[str], b: Sequence[str]) -> bool:
    """Could some file be in both pattern lists? Overlap unless provably disjoint.

    An empty list (a read-only task) overlaps nothing.
    """
    return overlapping_pair(a, b) is not None


def head_key(pattern: str) -> str | None:
    """The literal first segment of a pattern (for indexing), or None if it is a glob."""
    first = pattern.split("/", 1)[0]
    return first if _is_literal(first) else None


# ---------------------------------------------------------------- where a path really is

WORKTREE, OTHER_WORKTREE, MAIN_CHECKOUT, GIT_DIR, OUTSIDE = (
    "worktree", "other_worktree", "main_checkout", "git_dir", "outside")


@dataclass(frozen=True)
class Location:
    """Where a written path lands. ``rel`` is repo-relative for the three in-repo kinds."""

    kind: str
    rel: str | None = None
    abs: str = ""
    task: str | None = None  # the task whose worktree it is, for OTHER_WORKTREE


def _real(path: str) -> str:
    return os.path.realpath(path)


def _under(path: str, root: str) -> str | None:
    """``path`` relative to ``root`` if it is at or below it (both real, absolute), else None."""
    if path == root:
        return ""
    prefix = root if root.endswith("/") else root + "/"
    if path.startswith(prefix):
        return path[len(prefix):]
    return None


def locate(path: str, worktree: str, repo_root: str, *, cwd: str | None = None,
           other_worktrees: Mapping[str, str] | None = None) -> Location:
    """Resolve what an agent passed to a tool into where it really writes.

    Relative paths are taken from ``cwd`` (default: the worktree); ``..``, ``//``, trailing
    slashes and symlinks (every existing component, the way the kernel will) are resolved, so a
    symlink inside the worktree pointing elsewhere lands where it points. ``other_worktrees``
    maps a worktree directory to its task id. The longest root wins, so worktrees nested inside
    the main checkout are told apart from it.
    """
    if not isinstance(path, str) or not path or "\x00" in path:
        return Location(OUTSIDE)
    base = cwd or worktree
    joined = path if path.startswith("/") else os.path.join(base, path)
    real = _real(joined)
    roots: list[tuple[str, str, str | None]] = [(_real(worktree), WORKTREE, None)]
    for wt, task_id in (other_worktrees or {}).items():
        roots.append((_real(wt), OTHER_WORKTREE, task_id))
    roots.append((_real(repo_root), MAIN_CHECKOUT, None))
    roots.sort(key=lambda r: len(r[0]), reverse=True)
    for root, kind, owner in roots:
        rel = _under(real, root)
        if rel is None:
            continue
        rel = nfc(rel)
        if rel == ".git" or rel.startswith(".git/"):
            return Location(GIT_DIR, rel, real, owner)
        return Location(kind, rel, real, owner)
    return Location(OUTSIDE, None, real)


def normalise(path: str, worktree: str, repo_root: str, *, cwd: str | None = None) -> str | None:
    """The repo-relative path a write in ``worktree`` really changes, or None (not in it)."""
    loc = locate(path, worktree, repo_root, cwd=cwd)
    return loc.rel if loc.kind == WORKTREE and loc.rel else None
