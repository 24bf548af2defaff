"""``hive-lab pipeline ...``: review pipelines from the command line (add, ls, show, cancel,
retry). Talks to the REST API with the Jupyter token, like the rest of the CLI."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from typing import Any, Callable

from .client import HiveClient
from .taskcli import _ago, _clean, _client, _json, _table, read_prompt
from .wire import PIPELINE_STATES

Handler = Callable[[argparse.Namespace], int]


def cmd_add(args: argparse.Namespace) -> int:
    prompt = read_prompt(args, "pipeline add")
    if prompt is None:
        return 2
    try:
        checks = [shlex.split(c) for c in args.check or []]
    except ValueError as exc:
        print(f"hive-lab pipeline add: --check: {exc}", file=sys.stderr)
        return 2
    stages = [s.strip() for s in args.stages.split(",")] if args.stages else None
    body: dict[str, Any] = {
        "id": args.id, "title": args.title, "prompt": prompt,
        "repo": os.path.abspath(args.repo or os.getcwd()), "base": args.base,
        "scope": args.scope, "criteria": args.criterion, "checks": checks or None,
        "stages": stages, "implementer": args.implementer, "reviewer": args.reviewer,
        "tester": args.tester, "test_scope": args.test_scope,
        "max_review_rounds": args.max_review_rounds, "max_check_rounds": args.max_check_rounds}
    p = _client(args).add_pipeline(body)
    if args.json:
        _json(p)
    else:
        print(f"pipeline {p['id']} added: {' -> '.join(p['stages'])} (branch {p['branch']})")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    pipes = _client(args).pipelines(state=args.state)
    if args.json:
        _json(pipes)
        return 0
    if not pipes:
        print("no pipelines")
        return 0
    now = time.time()
    rows = [("ID", "STATE", "SINCE", "STAGE", "ROUND", "REASON")]
    for p in pipes:
        rows.append((p["id"], p["state"]["name"], _ago(p["state"]["since"], now),
                     f"{p['stage'] + 1}/{len(p['stages'])} {p['stage_kind']}", str(p["round"]),
                     _clean(p["state"]["reason"], 100)))
    _table(rows)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    p = _client(args).pipeline(args.id)
    if args.json:
        _json(p)
        return 0
    state = p["state"]
    row = "  ".join(("[" + k + "]") if i == p["stage"] else k for i, k in enumerate(p["stages"]))
    lines = [f"pipeline {p['id']}: {_clean(p['title'])}",
             f"  state     {state['name']} since {_ago(state['since'])}: {_clean(state['reason'])}",
             f"  stages    {row}",
             f"  round     {p['round']} of {p['max_review_rounds_now']} (review)",
             f"  branch    {p['branch']} (base {p['base_branch'] or p['base_sha'][:12]})",
             f"  scope     {', '.join(p['scope'])}; tests {', '.join(p['test_scope'])}",
             "  criteria"]
    lines += [f"    - {_clean(c, 160)}" for c in p["criteria"]]
    lines.append("  history")
    for s in p["history"]:
        cost = f" ${s['cost']:.4f}" if s.get("cost") is not None else ""
        verdict = f" verdict {s['verdict']['verdict']}" if s.get("verdict") else ""
        lines.append(f"    {s['kind']:<9} r{s['round']} {s['state']:<9} {s['task_id'] or '-'}"
                     f"{verdict}{cost}: {_clean(s['reason'], 120)}")
    if p["findings"]:
        lines.append("  findings")
        for f in p["findings"]:
            where = f"{_clean(f['file'], 80)}" + (f":{f['line']}" if f["line"] is not None else "")
            lines.append(f"    r{f['round']} [{f['severity']}] {where}: {_clean(f['text'], 160)}")
    if p.get("can_retry"):
        lines.append(f"  needs you: `hive-lab pipeline retry {p['id']}` goes on (one more "
                     f"round), `hive-lab pipeline cancel {p['id']}` stops it")
    print("\n".join(lines))
    return 0


def _one(action: Callable[[HiveClient, str], dict[str, Any]], past: str) -> Handler:
    def run(args: argparse.Namespace) -> int:
        result = action(_client(args), args.id)
        if args.json:
            _json(result)
        else:
            print(f"pipeline {result['id']} {past}: now {result['state']['name']} "
                  f"({_clean(result['state']['reason'], 160)})")
        return 0
    return run


def add_parser(sub: Any) -> None:
    """Register ``pipeline`` and its verbs on the ``hive-lab`` subparsers."""
    p = sub.add_parser("pipeline", help="review pipelines: implement, checks, review, tests",
                       description="Review pipelines: a change described once goes through "
                                   "implement -> checks -> review -> tests -> checks -> ready.")
    verbs = p.add_subparsers(dest="pipeline_verb", required=True, metavar="VERB")

    def verb(name: str, func: Handler, help: str, **kw: Any) -> argparse.ArgumentParser:
        q = verbs.add_parser(name, help=help, description=help, **kw)
        q.add_argument("--json", action="store_true", help="print the server's JSON")
        q.set_defaults(func=func)
        return q

    q = verb("add", cmd_add, "add a pipeline", epilog=(
        "example: hive-lab pipeline add --id login --scope 'src/**' --criterion 'redirects "
        "to /home' --check 'ruff check src' --check 'pytest -q' --prompt 'Fix the login'"))
    q.add_argument("--id", required=True, help="1-48 of A-Z a-z 0-9 _ - (the implementer's "
                                               "branch is hive/<id>-impl)")
    q.add_argument("--title")
    q.add_argument("--prompt", help="the change; - reads stdin")
    q.add_argument("--prompt-file")
    q.add_argument("--repo", help="the git repository (default: the current directory)")
    q.add_argument("--base", help="branch, tag or commit (default HEAD)")
    q.add_argument("--scope", action="append", required=True, metavar="GLOB",
                   help="what the implementer may change (repeatable)")
    q.add_argument("--criterion", action="append", required=True, metavar="TEXT",
                   help="an acceptance criterion, written by you (repeatable)")
    q.add_argument("--check", action="append", metavar="COMMAND",
                   help="a check, cheapest first (repeatable; split like a shell, run without one)")
    q.add_argument("--stages", help="comma list, e.g. implement,checks,review,review,ready")
    q.add_argument("--implementer", help="the implementer's profile")
    q.add_argument("--reviewer", help="the reviewer's profile (default: another installed one)")
    q.add_argument("--tester", help="the tester's profile")
    q.add_argument("--test-scope", action="append", metavar="GLOB",
                   help="what the tester may change (default tests/**)")
    q.add_argument("--max-review-rounds", type=int)
    q.add_argument("--max-check-rounds", type=int)

    q = verb("ls", cmd_ls, "list pipelines")
    q.add_argument("--state", choices=PIPELINE_STATES)
    q = verb("show", cmd_show, "one pipeline: stages, rounds, verdicts, findings, costs")
    q.add_argument("id")
    for name, call, past, text in (
            ("cancel", HiveClient.cancel_pipeline, "canceled",
             "cancel a pipeline (its stage tasks stop; worktrees keep the work)"),
            ("retry", HiveClient.retry_pipeline, "retried",
             "let a pipeline that needs you go on (one more round, or its failed task again)")):
        q = verb(name, _one(call, past), text)
        q.add_argument("id")
