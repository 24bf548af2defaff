"""The pre-tool decision: may this agent's tool call run, given its task's scope?

A pure function of the hook payload and the tasks, so phase 2 only has to turn a ``Decision``
into each CLI's hook answer. The policy, and why:

- A file tool (Write, Edit, ... or a Codex patch) writing outside the scope, into another
  active task's scope, into the main checkout, another worktree or ``.git``: **deny**, with a
  reason the agent can act on (who owns it, the exact command to ask for more scope). File tools
  name their paths exactly, so a deny is never a guess.
- A shell command that visibly writes there: **ask** (a person decides). Shell parsing is best
  effort, so it must not deny on a guess, nor allow silently.
- Git that destroys work in a tree (reset --hard, clean -f, stash, checkout -f/., switch
  --discard-changes, a force push to the base): **deny** with the reason.
- Read-only and unknown tools: **allow**; the backstop audit catches what slips through.
"""
from __future__ import annotations

import os
import re
import shlex
import tempfile
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from . import scopes, shellscan
from .scopes import GIT_DIR, MAIN_CHECKOUT, OTHER_WORKTREE, OUTSIDE, WORKTREE

ALLOW, DENY, ASK = "allow", "deny", "ask"
MAX_REASON = 2000

#: File tools and the tool_input keys that hold the path they write.
FILE_TOOLS: dict[str, tuple[str, ...]] = {
    # Claude Code
    "Write": ("file_path",), "Edit": ("file_path",), "MultiEdit": ("file_path",),
    "NotebookEdit": ("notebook_path",),
    # Gemini CLI (write_file / replace; older and alias names)
    "write_file": ("file_path", "path", "absolute_path"), "replace": ("file_path", "path"),
    "edit": ("file_path", "path"), "edit_file": ("file_path", "path"),
    "create_file": ("file_path", "path"),
}
#: Shell tools: (key of the command, key of its working directory).
SHELL_TOOLS: dict[str, tuple[str, str | None]] = {
    "Bash": ("command", None), "run_shell_command": ("command", "directory"),
    "shell": ("command", "workdir"), "local_shell": ("command", "workdir"),
    "exec_command": ("cmd", "workdir"), "container.exec": ("command", "workdir"),
}
PATCH_TOOLS = ("apply_patch",)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_PATCH_FILE_RE = re.compile(r"^\*\*\* (?:Add|Update|Delete) File: (.+?)\s*$|^\*\*\* Move to: (.+?)\s*$", re.M)


@dataclass(frozen=True)
class Decision:
    action: str  # allow | deny | ask
    reason: str = ""
    paths: tuple[str, ...] = ()  # the repo-relative (or absolute) paths that decided it


def show(value: str, cap: int = 200) -> str:
    """An agent-supplied string made safe to put in a reason: no control chars, bounded."""
    text = _CONTROL_RE.sub("?", value)
    return text if len(text) <= cap else text[:cap] + "..."


def request_command(task_id: str, glob: str) -> str:
    return f'hive-lab task request-scope {task_id} {shlex.quote(show(glob))} --why "<why this task needs it>"'


def scope_words(patterns: Sequence[str]) -> str:
    return ", ".join(patterns) if patterns else "none: read-only"


@dataclass
class _Ctx:
    task: Any
    others: list[Any]
    worktree: str
    repo_root: str
    other_worktrees: dict[str, str]
    scratch: tuple[str, ...]


def _scratch_dirs() -> tuple[str, ...]:
    dirs = {os.path.realpath(d) for d in (tempfile.gettempdir(), "/tmp", "/var/tmp")}
    plans = os.path.expanduser("~/.claude/plans")  # Claude Code's plan mode writes there
    return tuple(sorted(dirs | {os.path.realpath(plans)}))


def check_path(path: str, cwd: str | None, ctx: _Ctx) -> tuple[bool, str, str]:
    """(ok, reason, shown path) for one write by the task's agent."""
    task = ctx.task
    loc = scopes.locate(path, ctx.worktree, ctx.repo_root, cwd=cwd,
                        other_worktrees=ctx.other_worktrees)
    shown = show(loc.rel if loc.rel else (loc.abs or path))
    if loc.kind == OUTSIDE:
        if loc.abs and any(loc.abs == d or loc.abs.startswith(d + "/") for d in ctx.scratch):
            return True, "", shown
        return False, (f"{shown} is outside the repository; task {task.id} may only change files "
                       f"in its worktree {show(ctx.worktree)} within its scope ({scope_words(task.scope)})."), shown
    if loc.kind == GIT_DIR:
        return False, f"{shown} is inside .git: change the repository with git commands, not file writes.", shown
    if loc.kind == MAIN_CHECKOUT:
        return False, (f"{show(loc.abs)} is in the main checkout, not in the worktree of task {task.id}; "
                       f"write {show(os.path.join(ctx.worktree, loc.rel or ''))} instead."), shown
    if loc.kind == OTHER_WORKTREE:
        return False, (f"{show(loc.abs)} is in the worktree of task {loc.task}; task {task.id} works only "
                       f"in {show(ctx.worktree)}."), shown
    assert loc.kind == WORKTREE
    rel = loc.rel or ""
    if not rel:
        return False, f"{shown} is the worktree itself, not a file.", shown
    return check_rel(rel, ctx.task, ctx.others)


def check_rel(rel: str, task: Any, others: Iterable[Any]) -> tuple[bool, str, str]:
    """The scope rules for a repo-relative path (shared by the guard and the audit)."""
    shown = show(rel)
    if not task.scope:
        return False, (f"task {task.id} is read-only (its scope is empty): do not change {shown}; "
                       f"report what you found instead. If it must write, ask: "
                       f"{request_command(task.id, rel)}"), shown
    if scopes.first_match(rel, task.shared):
        return True, "", shown
    owner = scopes.owner_of(rel, [o for o in others if o.id != task.id])
    if owner is not None:
        other, pattern = owner
        return False, (f"{shown} belongs to task {other} (its scope has {show(pattern)}), which is "
                       f"active; leave it to that task. If task {task.id} must change it, ask: "
                       f"{request_command(task.id, rel)}"), shown
    if scopes.first_match(rel, task.scope):
        return True, "", shown
    return False, (f"{shown} is outside the scope of task {task.id} ({scope_words(task.scope)}). "
                   f"If the task needs it, ask: {request_command(task.id, rel)} and wait; "
                   f"otherwise leave it unchanged."), shown


def decide(tool_name: str, tool_input: Any, cwd: str | None, task: Any, others: Iterable[Any],
           worktree: str, repo_root: str, *, scratch_dirs: Sequence[str] | None = None,
           home: str | None = None) -> Decision:
    """Allow, deny or ask for one tool call of ``task``'s agent (see the module docstring).

    ``others`` are the other active tasks (``id``, ``scope``, ``shared``, optional
    ``worktree``); ``cwd`` is the agent's working directory from the hook payload.
    """
    others = list(others)
    ctx = _Ctx(task, others, worktree, repo_root,
               {o.worktree: o.id for o in others if getattr(o, "worktree", None)},
               tuple(scratch_dirs) if scratch_dirs is not None else _scratch_dirs())
    inp = tool_input if isinstance(tool_input, dict) else {}
    if tool_name in FILE_TOOLS:
        path = next((inp[k] for k in FILE_TOOLS[tool_name] if isinstance(inp.get(k), str)), None)
        if not path:
            return Decision(DENY, f"{tool_name} without a file path: the guard cannot check it.")
        return _file_decision(tool_name, [path], cwd, ctx)
    if tool_name in PATCH_TOOLS:
        patch = _patch_text(inp)
        if patch is None:
            return Decision(DENY, f"{tool_name} without a patch: the guard cannot check it.")
        return _patch_decision(tool_name, patch, cwd, ctx)
    if tool_name in SHELL_TOOLS:
        key, dir_key = SHELL_TOOLS[tool_name]
        command = inp.get(key)
        run_cwd = cwd
        if dir_key and isinstance(inp.get(dir_key), str):
            run_cwd = os.path.join(cwd or worktree, inp[dir_key])
        if isinstance(command, list) and all(isinstance(c, str) for c in command):
            if command[:1] == ["apply_patch"] and len(command) >= 2:
                return _patch_decision("apply_patch", command[1], run_cwd, ctx)
            if len(command) >= 3 and os.path.basename(command[0]) in ("bash", "sh", "zsh") \
                    and command[1] in ("-c", "-lc"):
                command = command[2]
            else:
                command = shlex.join(command)
        if not isinstance(command, str):
            return Decision(ALLOW, "")
        return _shell_decision(command, run_cwd or worktree, ctx, home)
    return Decision(ALLOW, "")


def _file_decision(tool: str, paths: list[str], cwd: str | None, ctx: _Ctx) -> Decision:
    bad = []
    for p in paths:
        ok, reason, shown = check_path(p, cwd, ctx)
        if not ok:
            bad.append((reason, shown))
    if bad:
        return Decision(DENY, _join(f"hive-lab guard: {r}" for r, _ in bad), tuple(s for _, s in bad))
    return Decision(ALLOW, "", tuple(show(p) for p in paths))


def _patch_text(inp: Mapping[str, Any]) -> str | None:
    for key in ("input", "patch", "content"):
        if isinstance(inp.get(key), str):
            return inp[key]
    cmd = inp.get("command")
    if isinstance(cmd, list) and len(cmd) >= 2 and isinstance(cmd[1], str):
        return cmd[1]
    return cmd if isinstance(cmd, str) else None


def patch_paths(patch: str) -> list[str]:
    """Every file a Codex ``apply_patch`` adds, updates, deletes or moves to."""
    return [m.group(1) or m.group(2) for m in _PATCH_FILE_RE.finditer(patch)]


def _patch_decision(tool: str, patch: str, cwd: str | None, ctx: _Ctx) -> Decision:
    paths = patch_paths(patch)
    if not paths:
        return Decision(DENY, f"{tool}: no '*** Add/Update/Delete File:' lines, the guard cannot check it.")
    return _file_decision(tool, paths, cwd, ctx)


def _shell_decision(command: str, cwd: str, ctx: _Ctx, home: str | None) -> Decision:
    try:
        findings = shellscan.scan(command, cwd, home or os.path.expanduser("~"))
    except Exception as exc:  # a bug in the scan must not let a write through: a person decides
        return Decision(ASK, f"hive-lab guard: cannot read this command ({show(str(exc), 80)}); "
                             "a person decides.")
    denies: list[str] = []
    asks: list[str] = []
    paths: list[str] = []
    base = re.sub(r"^(refs/heads/|origin/)", "", ctx.task.base)
    for f in dict.fromkeys(findings):
        if f.kind == shellscan.DESTRUCTIVE:
            denies.append(f"{f.what}, in a tree other work may share; commit or ask a person instead.")
        elif f.kind == shellscan.FORCE_PUSH:
            if f.target is None:
                asks.append("git push --force without a branch named: a person decides.")
            elif f.target in (base, "main", "master") or f.target == "HEAD":
                denies.append(f"git push --force to {show(f.target)}, the base of task {ctx.task.id}, "
                              "rewrites history others build on.")
        elif f.kind == shellscan.UNKNOWN:
            asks.append(f"{f.what}: the guard cannot tell where it writes.")
        else:
            ok, reason, shown = _shell_target(f, ctx, home)
            if not ok:
                asks.append(f"{f.what} writes {reason}")
                paths.append(shown)
    if denies:
        return Decision(DENY, _join(f"hive-lab guard: {d}" for d in denies))
    if asks:
        return Decision(ASK, _join(f"hive-lab guard: {a}" for a in asks), tuple(paths))
    return Decision(ALLOW, "")


def _shell_target(f: shellscan.Finding, ctx: _Ctx, home: str | None) -> tuple[bool, str, str]:
    target = f.target or ""
    if "$" in target or "`" in target or (f.cwd is None and not target.startswith(("/", "~"))):
        return False, f"{show(target)}, a place the guard cannot resolve.", show(target)
    if target.startswith("~"):
        target = (home or os.path.expanduser("~")) + target[1:] if target[:2] in ("~", "~/") else target
    if any(c in target for c in "*?["):
        # a glob: fine only if the whole directory it ranges over is in scope (and nobody's)
        segs = target.split("/")
        k = next(i for i, seg in enumerate(segs) if any(c in seg for c in "*?["))
        directory = "/".join(segs[:k]) or ("/" if target.startswith("/") else ".")
        loc = scopes.locate(directory, ctx.worktree, ctx.repo_root, cwd=f.cwd,
                            other_worktrees=ctx.other_worktrees)
        if loc.kind == WORKTREE and loc.rel is not None and ctx.task.scope:
            rel_glob = "/".join(([loc.rel] if loc.rel else []) + segs[k:])
            if scopes.dir_covered(loc.rel or ".", ctx.task.scope) and not any(
                    scopes.scopes_overlap([rel_glob], o.scope) for o in ctx.others if o.id != ctx.task.id):
                return True, "", show(target)
        return False, f"{show(target)}, files the guard cannot prove are all in scope ({scope_words(ctx.task.scope)}).", show(target)
    ok, reason, shown = check_path(target, f.cwd, ctx)
    return ok, reason, shown


def _join(parts: Iterable[str]) -> str:
    text = " ".join(dict.fromkeys(parts))
    return text if len(text) <= MAX_REASON else text[:MAX_REASON] + "..."
