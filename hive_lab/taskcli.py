"""``hive-lab task ...``: tasks, scope requests and out-of-scope changes from the command line.

Every verb but one talks to the server's REST API with the Jupyter token, like the rest of the
CLI. ``request-scope`` is run by an *agent* inside its session, which has no token: it posts to
the hook channel's ``hooks/scope-request`` with the session's secret instead (the credential
every hook uses) and prints the server's answer: the request's number, or why it was refused.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from . import hook
from .client import HiveClient
from .wire import (HEADER_AGENT, HEADER_SECRET, HEADER_SESSION, HOOKS_PATH, SCOPE_REQUEST_PATH,
                   SCOPE_REQUEST_STATES, TASK_STATES)

Handler = Callable[[argparse.Namespace], int]


def _client(args: argparse.Namespace) -> HiveClient:
    return HiveClient.discover(url=args.url, token=args.token)


def _json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def _clean(text: Any, limit: int = 0) -> str:
    """One line of agent- or user-written text, safe for a terminal (no escape sequences)."""
    out = "".join(c if c.isprintable() else " " for c in str(text or ""))
    return out[: limit - 1] + "…" if limit and len(out) > limit else out


def _ago(when: Any, now: float | None = None) -> str:
    if not isinstance(when, (int, float)) or not when:
        return ""
    s = max(0, int((now or time.time()) - when))
    return f"{s}s ago" if s < 120 else f"{s // 60}m ago" if s < 7200 else f"{s // 3600}h ago"


def _explain(task: dict[str, Any]) -> str:
    """What a person wants to know about a task's state: why it waits, or what it did."""
    return _clean(task.get("why") or task["state"].get("reason"))


# -- the verbs --------------------------------------------------------------------------------
def read_prompt(args: argparse.Namespace, command: str) -> str | None:
    """The prompt from ``--prompt TEXT``, ``--prompt-file PATH`` or ``-`` (stdin); None after
    saying on stderr what is wrong."""
    if sum(x is not None for x in (args.prompt, args.prompt_file)) != 1:
        print(f"hive-lab {command}: give the prompt with --prompt TEXT, --prompt-file PATH or "
              "--prompt - (read stdin)", file=sys.stderr)
        return None
    if args.prompt == "-" or args.prompt_file == "-":
        return sys.stdin.read()
    if args.prompt_file is not None:
        try:
            return Path(args.prompt_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"hive-lab {command}: --prompt-file: {exc}", file=sys.stderr)
            return None
    return str(args.prompt)


def cmd_add(args: argparse.Namespace) -> int:
    prompt = read_prompt(args, "task add")
    if prompt is None:
        return 2
    try:
        check = shlex.split(args.check) if args.check is not None else None
    except ValueError as exc:
        print(f"hive-lab task add: --check {args.check!r}: {exc}", file=sys.stderr)
        return 2
    body = {"id": args.id, "title": args.title, "prompt": prompt,
            "repo": str(Path(args.repo or os.getcwd()).resolve()), "base": args.base,
            "scope": args.scope, "shared": args.shared, "requires": _split(args.requires),
            "agent": args.agent, "depends_on": _split(args.depends_on),
            "priority": args.priority, "check": check, "max_attempts": args.max_attempts}
    task = _client(args).add_task({k: v for k, v in body.items() if v is not None})
    if args.json:
        _json(task)
    else:
        print(f"added task {task['id']}: {task['state']['name']} ({_explain(task)})")
        print(f"  scope: {', '.join(task['scope']) or '(none: read-only)'}; "
              f"branch {task['branch']}; see `hive-lab task show {task['id']}`")
    return 0


def _split(values: list[str] | None) -> list[str] | None:
    """Repeatable options that also take comma lists: --requires a,b --requires c."""
    if values is None:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def cmd_ls(args: argparse.Namespace) -> int:
    tasks = _client(args).tasks(state=args.state, repo=args.repo, session=args.session)
    if args.json:
        _json(tasks)
        return 0
    if not tasks:
        print("no tasks")
        return 0
    now = time.time()
    rows = [("ID", "STATE", "SINCE", "PRI", "AGENT", "TRIES", "WHY / REASON")]
    for t in tasks:
        tries = f"{len(t['attempts'])}/{t['max_attempts']}"
        agent = (t["attempts"][-1]["profile"] if t["attempts"] else None) or t["agent"] or "any"
        rows.append((t["id"], t["state"]["name"], _ago(t["state"]["since"], now),
                     str(t["priority"]), agent, tries, _explain(t)[:100]))
    _table(rows)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    client = _client(args)
    t = client.task(args.id)
    if args.json:
        _json(t)
        return 0
    state = t["state"]
    lines = [f"task {t['id']}: {_clean(t['title'])}",
             f"  state     {state['name']} since {_ago(state['since'])}: {_clean(state['reason'])}"]
    if t.get("why"):
        lines.append(f"  why       {_clean(t['why'])}")
    check = shlex.join(t["check"]) if t.get("check") else "(none: done when the turn ends)"
    lines += [
        f"  repo      {t['repo']} (base {t['base']}, branch {t['branch']})",
        f"  scope     {', '.join(t['scope']) or '(none: read-only)'}",
        f"  shared    {', '.join(t['shared']) or '-'}",
        f"  requires  {', '.join(t['requires']) or '-'}; agent {t['agent'] or 'any'}; "
        f"priority {t['priority']}",
        f"  depends   {', '.join(t['depends_on']) or '-'}",
        f"  check     {check}",
        f"  session   {t['session'] or '-'}  worktree {t['worktree'] or '-'}",
    ]
    flags = t.get("flags") or {}
    for v in flags.get("violations", []):
        lines.append(f"  OUT OF SCOPE  {_clean(v.get('path'))}: {_clean(v.get('reason'))} "
                     f"(accept with `hive-lab task accept {t['id']} PATH`, or revert it)")
    for span in flags.get("guard_degraded", []):
        lines.append(f"  guard away    {span.get('events', 1)} tool call(s) from "
                     f"{_ago(span.get('from'))}; the audit checked what it missed")
    lines.append(f"  attempts  {len(t['attempts'])} of {t['max_attempts']}")
    for a in t["attempts"]:
        outcome = a.get("outcome") or "running"
        lines.append(f"    #{a['n']} {a.get('profile') or '?'} {outcome}"
                     f" ({a.get('rounds') or 0} round(s)) {_clean(a.get('reason'), 120)}")
    for r in client.scope_requests(task=t["id"]):
        lines.append(f"  request {r['id']} {r['state']}: {_clean(r['glob'])}: {_clean(r['why'], 120)}")
    print("\n".join(lines))
    print("  prompt:")
    for line in t["prompt"].splitlines()[:20]:
        print("    " + _clean(line))
    return 0


def _one(action: Callable[[HiveClient, str], dict[str, Any]], past: str) -> Handler:
    def run(args: argparse.Namespace) -> int:
        result = action(_client(args), args.id)
        if args.json:
            _json(result)
        elif "state" in result:
            print(f"task {result['id']} {past}: now {result['state']['name']} "
                  f"({_explain(result)})")
        else:
            print(f"task {result['id']} {past}")
        return 0
    return run


def cmd_requests(args: argparse.Namespace) -> int:
    state = None if args.all else args.state
    requests = _client(args).scope_requests(task=args.task, state=state)
    if args.json:
        _json(requests)
        return 0
    if not requests:
        print("no scope requests" + (f" in state {state}" if state else ""))
        return 0
    rows = [("ID", "TASK", "STATE", "ASKED", "GLOB", "WHY")]
    rows += [(str(r["id"]), r["task_id"], r["state"], _ago(r["created"]), _clean(r["glob"], 60),
              _clean(r["why"], 80)) for r in requests]
    _table(rows)
    if any(r["state"] == "pending" for r in requests):
        print("decide with `hive-lab task approve ID` or `hive-lab task refuse ID --note WHY`")
    return 0


def _decide(approve: bool) -> Handler:
    def run(args: argparse.Namespace) -> int:
        client = _client(args)
        call = client.approve_scope if approve else client.refuse_scope
        r = call(args.rid, note=args.note)
        if args.json:
            _json(r)
        else:
            what = "joins the scope of" if approve else "stays outside the scope of"
            print(f"request {r['id']} {r['state']}: {_clean(r['glob'])} {what} task "
                  f"{r['task_id']}; the agent is told")
        return 0
    return run


def cmd_accept(args: argparse.Namespace) -> int:
    t = _client(args).accept_violations(args.id, args.paths)
    if args.json:
        _json(t)
    else:
        left = len((t.get("flags") or {}).get("violations", []))
        print(f"accepted {len(args.paths)} change(s) on task {t['id']}; {left} still open; "
              f"task is {t['state']['name']} ({_explain(t)})")
    return 0


# -- request-scope: the agent's side ------------------------------------------------------------
class ScopeRequestError(Exception):
    """Why a scope request cannot be sent (said in words an agent understands)."""


def _check_glob(glob: str) -> str:
    """The obvious mistakes, caught here so the agent hears of them (the server checks again)."""
    if not glob.strip() or any(not c.isprintable() for c in glob):
        raise ScopeRequestError("the glob must be a non-empty, printable pattern like 'docs/**'")
    if glob.startswith(("/", "~")) or "\\" in glob:
        raise ScopeRequestError(f"{glob!r}: give a pattern relative to the repository root, "
                                "with '/', like 'docs/**' or 'src/app/*.py'")
    if ".." in glob.split("/"):
        raise ScopeRequestError(f"{glob!r}: '..' is not allowed; the scope stays in the repository")
    if len(glob) > 1024:
        raise ScopeRequestError("the glob is too long (at most 1024 characters)")
    return glob


class ScopeRequestRefused(ScopeRequestError):
    """The server answered and said no: its one-line reason."""


class ScopeRequestNotSent(ScopeRequestError):
    """The server did not answer: nothing was recorded (nothing is spooled either)."""


EXIT_REFUSED, EXIT_USAGE, EXIT_NOT_SENT = 1, 2, 3
SEND_TIMEOUT = 10.0


def send_scope_request(task: str, glob: str, why: str,
                       env: dict[str, str] | None = None) -> str:
    """Ask the server for ``glob`` on ``task`` from inside its session and return what the agent
    should read. The session's secret is the credential (no token), as for hooks, but the
    answer is synchronous: ScopeRequestRefused carries the server's reason, ScopeRequestNotSent
    says the server is away and nothing was saved (the agent asks again later: a request
    spooled for later could be refused with no one to tell), ScopeRequestError a local mistake."""
    env = dict(os.environ if env is None else env)
    session, data_dir = env.get(hook.SESSION_ENV), env.get(hook.DIR_ENV)
    agent = env.get(hook.AGENT_ENV, "")
    if not session or not data_dir:
        raise ScopeRequestError(
            "this is not a Hive Lab agent session (HIVE_LAB_SESSION and HIVE_LAB_DIR are not "
            "set). Only an agent working on a task asks for scope this way; a person widens a "
            "task's scope from the notebook, hive.patch_task(id, scope=[...]), or approves a "
            "request with `hive-lab task approve ID`.")
    if task != session:
        raise ScopeRequestError(
            f"this session works on task {session!r}, not {task!r}: ask for your own task, "
            f"`hive-lab task request-scope {session} '{glob}' --why '...'`")
    _check_glob(glob)
    if not why.strip():
        raise ScopeRequestError("say why you need it with --why '...': a person reads it")
    again = (f"Nothing was recorded: run `hive-lab task request-scope {task} '{glob}' --why "
             "'...'` again in a minute, and until then do not write outside your scope.")
    try:
        url = hook.read_hooks_url(data_dir).rstrip("/") + SCOPE_REQUEST_PATH[len(HOOKS_PATH):]
        secret = hook.read_secret(f"{data_dir}/sessions/{session}/secret")
    except hook.Undelivered as exc:
        raise ScopeRequestNotSent(f"not sent: the Hive Lab server is not answering ({exc}). "
                                  + again) from None
    body = json.dumps({"task": task, "glob": glob, "why": why, "cwd": os.getcwd()}).encode()
    headers = [(HEADER_SESSION, session), (HEADER_SECRET, secret), (HEADER_AGENT, agent)]
    try:
        status, answer = hook.http_post(url, headers, body, time.monotonic() + SEND_TIMEOUT)
    except hook.Undelivered as exc:
        raise ScopeRequestNotSent(f"not sent: the Hive Lab server is not answering ({exc}). "
                                  + again) from None
    try:
        data = json.loads(answer.decode("utf-8")) if answer.strip() else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    if 400 <= status < 500:
        detail = _clean(data.get("detail") or f"HTTP {status}", 500)
        raise ScopeRequestRefused(f"refused: {detail}")
    request = data.get("request") if isinstance(data.get("request"), dict) else None
    if status != 201 or request is None:
        raise ScopeRequestNotSent(f"the server failed (HTTP {status}); the request may not "
                                  "be recorded. " + again)
    rid = request.get("id")
    return (f"request {rid} sent; wait for a person.\n"
            f"Asked for {_clean(request.get('glob'))} on task {task} (why: {_clean(why.strip())}). "
            "Stop now and wait: a person decides, and you will be told here "
            f"(\"Your scope now includes {_clean(request.get('glob'))}\", or that it was refused). "
            "Until then, do not write outside your current scope.")


def cmd_request_scope(args: argparse.Namespace) -> int:
    try:
        print(send_scope_request(args.task, args.glob, args.why))
    except ScopeRequestRefused as exc:
        print(f"hive-lab task request-scope: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except ScopeRequestNotSent as exc:
        print(f"hive-lab task request-scope: {exc}", file=sys.stderr)
        return EXIT_NOT_SENT
    except ScopeRequestError as exc:
        print(f"hive-lab task request-scope: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


# -- the parser -------------------------------------------------------------------------------
EPILOG = """\
A task is a prompt with boundaries: a repository, a scope (globs of files it may change), what
it requires of an agent profile, a check that decides when it is done. Hive Lab starts it on a
profile that has the capabilities, in its own worktree on branch hive/<id>; `ls` says why a
task waits. Agents ask for more scope with `request-scope`; you decide with `approve`/`refuse`.
"""


def add_parser(sub: Any) -> None:
    """Register ``task`` and its verbs on the ``hive-lab`` subparsers."""
    p = sub.add_parser("task", help="tasks: add, list, cancel, retry; scope requests",
                       description="Tasks, scope requests and out-of-scope changes.", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="task_verb", required=True, metavar="VERB")

    def verb(name: str, func: Handler, help: str, json_flag: bool = True,
             **kw: Any) -> argparse.ArgumentParser:
        q = verbs.add_parser(name, help=help, description=help, **kw)
        if json_flag:
            q.add_argument("--json", action="store_true", help="print the server's JSON")
        q.set_defaults(func=func)
        return q

    q = verb("add", cmd_add, "add a task", epilog=(
        "example: hive-lab task add --id fix-login --scope 'src/auth/**' --requires implement "
        "--check 'pytest -q tests/test_auth.py' --prompt 'Fix the login redirect'"))
    q.add_argument("--id", required=True, help="task id: 1-64 of A-Z a-z 0-9 _ - (its session "
                                               "and branch hive/<id> are named after it)")
    q.add_argument("--title", help="one line for lists (default: the prompt's first line)")
    q.add_argument("--prompt", help="what the agent is asked to do; - reads stdin")
    q.add_argument("--prompt-file", help="read the prompt from this file (- for stdin)")
    q.add_argument("--repo", help="the git repository (default: the current directory)")
    q.add_argument("--base", help="branch, tag or commit the worktree starts from (default HEAD)")
    q.add_argument("--scope", action="append", metavar="GLOB",
                   help="files the task may change, relative to the repo root, e.g. 'src/**' "
                        "(repeatable; none = read-only)")
    q.add_argument("--shared", action="append", metavar="GLOB",
                   help="files other tasks may change at the same time (e.g. a changelog)")
    q.add_argument("--requires", action="append", metavar="CAP",
                   help="capabilities a profile must have (repeatable or comma-separated)")
    q.add_argument("--agent", help="run on this profile only (default: any that qualifies)")
    q.add_argument("--depends-on", action="append", metavar="TASK",
                   help="start only after these tasks are done (repeatable or comma-separated)")
    q.add_argument("--priority", type=int, help="higher starts first (default 0)")
    q.add_argument("--check", metavar="COMMAND",
                   help="run in the worktree when the agent's turn ends; exit 0 = done. One "
                        "string, split like a shell would (shlex) into an argv, but run "
                        "WITHOUT a shell: write 'sh -c \"...\"' for pipes or &&")
    q.add_argument("--max-attempts", type=int, help="sessions tried before it fails (default 3)")

    q = verb("ls", cmd_ls, "list tasks with their state and why they wait")
    q.add_argument("--state", choices=TASK_STATES)
    q.add_argument("--repo", help="only tasks of this repository (its root path)")
    q.add_argument("--session", help="only the task run by this session")

    q = verb("show", cmd_show, "one task in full: state, scope, attempts, requests")
    q.add_argument("id")

    for name, call, past, text in (
            ("cancel", HiveClient.cancel_task, "canceled",
             "cancel a task (its session stops; the worktree keeps the work)"),
            ("retry", HiveClient.retry_task, "retried", "put a failed task back to ready"),
            ("delete", HiveClient.delete_task, "deleted", "delete a task's record")):
        q = verb(name, _one(call, past), text)
        q.add_argument("id")

    q = verb("requests", cmd_requests, "agents' requests for more scope (pending by default)")
    q.add_argument("--task")
    q.add_argument("--state", choices=SCOPE_REQUEST_STATES, default="pending")
    q.add_argument("--all", action="store_true", help="every state")

    for name, approve, text in (("approve", True, "approve a scope request: the glob joins "
                                                  "the task's scope and the agent continues"),
                                ("refuse", False, "refuse a scope request: the agent is told "
                                                  "and continues within its scope")):
        q = verb(name, _decide(approve), text)
        q.add_argument("rid", type=int, metavar="ID", help="the request id (see `requests`)")
        q.add_argument("--note", default="", help="a word for the agent")

    q = verb("accept", cmd_accept, "accept out-of-scope changes the audit flagged on a task")
    q.add_argument("id")
    q.add_argument("paths", nargs="+", metavar="PATH", help="repository-relative paths")

    q = verb("request-scope", cmd_request_scope,
             "(for agents, inside their session) ask for more scope; needs no token",
             json_flag=False, epilog=(
                 "Run by an agent in its Hive Lab session: it reads HIVE_LAB_DIR, "
                 "HIVE_LAB_SESSION and HIVE_LAB_AGENT and sends the request with the "
                 "session's hook secret (no token). Exit 0: request N sent, the task is "
                 "blocked until a person decides and the agent is then told in its terminal; "
                 "1: the server refused it (its reason on stderr); 2: a mistake caught "
                 "before sending; 3: not sent (the server is away; nothing is saved, ask "
                 "again later)."))
    q.add_argument("task", help="your task id (the name of your session)")
    q.add_argument("glob", help="the files you need, relative to the repo root, e.g. 'docs/**'")
    q.add_argument("--why", required=True, help="why you need them: a person reads this")
