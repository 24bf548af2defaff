"""``hive-lab merge ...``: the merge queue from the command line (through the REST API).

``ls`` shows the queue in order with the reason for each place; ``approve`` is the one call a
person makes per merge (unless ``merge_auto``); ``offer`` queues any local branch.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
from typing import Any, Callable

from .client import HiveClient
from .wire import MERGE_STATES

Handler = Callable[[argparse.Namespace], int]


def _client(args: argparse.Namespace) -> HiveClient:
    return HiveClient.discover(url=args.url, token=args.token)


def _out(args: argparse.Namespace, data: Any, text: str) -> int:
    print(json.dumps(data, indent=2, ensure_ascii=False) if args.json else text)
    return 0


def _line(m: dict[str, Any]) -> str:
    place = f"{m['position']}." if m.get("position") else "-"
    return (f"#{m['id']:<4} {place:<4} {m['state']:<18} {m['branch']} -> {m['base']}  "
            f"{m.get('reason', '')}" + (f"\n{'':11}order: {m['order_reason']}"
                                        if m.get("order_reason") and m.get("position") else ""))


def cmd_ls(args: argparse.Namespace) -> int:
    items = _client(args).merges(state=args.state, repo=args.repo)
    items.sort(key=lambda m: (m.get("position") is None, m.get("position") or 0, m["id"]))
    return _out(args, items, "\n".join(_line(m) for m in items) or "the merge queue is empty")


def cmd_show(args: argparse.Namespace) -> int:
    m = _client(args).merge(args.id)
    runs = "\n".join(f"  check {shlex.join(r['check'])}: {r['reason']}" for r in m["check_runs"])
    return _out(args, m, _line(m) + (f"\n{runs}" if runs else ""))


def _action(verb: str) -> Handler:
    def run(args: argparse.Namespace) -> int:
        m = getattr(_client(args), f"{verb}_merge")(args.id)
        return _out(args, m, _line(m))
    return run


def cmd_offer(args: argparse.Namespace) -> int:
    checks = [shlex.split(c) for c in args.check or []]
    m = _client(args).offer_merge(os.path.abspath(args.repo or "."), args.branch, args.base,
                                  checks, source="cli")
    return _out(args, m, _line(m))


def add_parser(sub: Any) -> None:
    """Register ``merge`` and its verbs on the ``hive-lab`` subparsers."""
    p = sub.add_parser("merge", help="the merge queue: ls, offer, approve, reject, cancel, retry",
                       description="Branches merged into their base one at a time.")
    verbs = p.add_subparsers(dest="merge_verb", required=True, metavar="VERB")

    def verb(name: str, func: Handler, help: str) -> argparse.ArgumentParser:
        q = verbs.add_parser(name, help=help, description=help)
        q.add_argument("--json", action="store_true", help="print the server's JSON")
        q.set_defaults(func=func)
        return q

    q = verb("ls", cmd_ls, "the queue, in order, with why each is where it is")
    q.add_argument("--state", choices=MERGE_STATES)
    q.add_argument("--repo")
    q = verb("show", cmd_show, "one queued branch, with its check runs")
    q.add_argument("id", type=int)
    for name, help in (("approve", "approve a merge (it merges once its checks pass)"),
                       ("reject", "reject a merge: it is not merged"),
                       ("cancel", "withdraw a branch from the queue"),
                       ("retry", "put a needs_you branch back in line")):
        q = verb(name, _action(name), help)
        q.add_argument("id", type=int)
    q = verb("offer", cmd_offer, "queue a local branch for merging into its base")
    q.add_argument("branch")
    q.add_argument("--base", help="default: the branch checked out in the repo")
    q.add_argument("--repo", help="default: the current directory")
    q.add_argument("--check", action="append", metavar="CMD",
                   help="a check to run (shell-split into an argv, never run by a shell); "
                        "repeatable, cheapest first")
