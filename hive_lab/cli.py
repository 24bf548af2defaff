"""``hive-lab``: the command line. Every verb goes through the running server's API.

``usage`` is the exception on purpose: it reads transcript files directly, so it works with no
server at all.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Sequence

from . import dashcli, hostcli, mergecli, pipecli, taskcli
from .client import HiveAPIError, HiveClient


def _client(args: argparse.Namespace) -> HiveClient:
    return HiveClient.discover(url=args.url, token=args.token)


def _print(data: Any, as_json: bool = True) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False) if as_json else data)


def _state_text(state: dict[str, Any]) -> str:
    extra = [str(x) for x in (state.get("reason"), state.get("tool")) if x]
    if state.get("exit_status") is not None:
        extra.append(f"status {state['exit_status']}")
    return state["name"] + (f" ({', '.join(extra)})" if extra else "")


def cmd_ls(args: argparse.Namespace) -> int:
    sessions = _client(args).sessions()
    if args.json:
        _print(sessions)
        return 0
    if not sessions:
        print("no sessions")
        return 0
    rows = [("NAME", "AGENT", "STATE", "SOURCE", "CWD")]
    rows += [(s["name"], s["agent"], _state_text(s["state"]), s["state"]["source"], s["cwd"])
             for s in sessions]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def cmd_spawn(args: argparse.Namespace) -> int:
    env = dict(kv.split("=", 1) for kv in args.env or [])
    session = _client(args).spawn(
        args.name, agent=args.agent, command=args.command or None, cwd=args.cwd, env=env or None,
        prompt=args.prompt, worktree=args.worktree, base=args.base)
    _print(session)
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.text == "-" else args.text
    _client(args).send(args.name, text, enter=not args.no_enter)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    _client(args).keys(args.name, args.keys)
    return 0


def cmd_screen(args: argparse.Namespace) -> int:
    sys.stdout.write(_client(args).screen(args.name, args.lines))
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    _print(_client(args).kill(args.name, cleanup="worktree" if args.cleanup else None,
                              force=args.force))
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    client = _client(args)
    for event in client.events(after=args.after, session=args.session, event=args.event,
                               limit=args.limit):
        print(json.dumps(event, ensure_ascii=False) if args.json else
              f"{event['id']:>6} {event['time']} {event['session']:<16} {event['event']:<18} "
              f"{event['summary']}")
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    """List orphaned worktrees (no live session); remove the safe ones with --yes."""
    client = _client(args)
    if not args.yes:
        orphans = client.request("GET", "git/orphans")["orphans"]
        if not orphans:
            print("no orphaned worktrees")
        for o in orphans:
            print(f"{o['session']:<20} {o['branch']:<28} {o.get('path') or '(branch only)'}")
        if orphans:
            print("run again with --yes to remove those that are merged or pushed")
        return 0
    body = {"sessions": args.sessions or None, "force": args.force}
    results = client.request("POST", "git/orphans", body)["results"]
    for r in results:
        print(f"{r['session']:<20} " + ("removed" if r["removed"] else f"kept: {r['reason']}"))
    return 0 if all(r["removed"] for r in results) else 1


def cmd_install_hooks(args: argparse.Namespace) -> int:
    result = _client(args).request("POST", "installs", {
        "dir": str(Path(args.dir).resolve()), "agent": args.agent, "remove": args.remove})
    _print(result)
    return 0


def cmd_usage(args: argparse.Namespace, rest: list[str]) -> int:
    from .usage import report as usage_cli

    return usage_cli.main(rest)


def cmd_lab(args: argparse.Namespace) -> int:
    """Open JupyterLab on the HiveOS notebook; every other flag goes to Jupyter as given."""
    argv = lab_argv(args.notebook, [*args.jupyter_args, *args.command],
                    root=_effective_uid() == 0)
    if argv is None:
        print("hive-lab: jupyter is not installed in this environment", file=sys.stderr)
        return 2
    if "--allow-root" in argv and "--allow-root" not in [*args.jupyter_args, *args.command]:
        print("hive-lab: running as root, so passing --allow-root to Jupyter", file=sys.stderr)
    sys.stderr.flush()
    os.execv(argv[0], argv)
    return 0  # pragma: no cover


def _effective_uid() -> int:
    return os.geteuid() if hasattr(os, "geteuid") else -1


def lab_argv(notebook: str | None, extra: list[str], root: bool) -> list[str] | None:
    """The ``jupyter lab`` command line: notebook first, then the user's flags (they win)."""
    path = Path(notebook or _default_notebook())
    jupyter = shutil.which("jupyter", path=str(Path(sys.executable).parent)) or shutil.which("jupyter")
    if jupyter is None:
        return None
    argv = [jupyter, "lab"]
    if path.exists():
        path = path.resolve()
        argv += [f"--ServerApp.root_dir={path.parent.parent}",
                 f"--LabApp.default_url=/lab/tree/{path.parent.name}/{path.name}"]
    if root and "--allow-root" not in extra:
        argv.append("--allow-root")
    return argv + extra


def _default_notebook() -> str:
    here = Path.cwd() / "notebooks" / "HiveOS.ipynb"
    return str(here)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hive-lab", description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="Jupyter server URL (default: found automatically)")
    parser.add_argument("--token", help="Jupyter token (default: found automatically)")
    sub = parser.add_subparsers(dest="verb", required=True)

    p = sub.add_parser("lab", help="open JupyterLab on notebooks/HiveOS.ipynb",
                       epilog="Any other flag goes to Jupyter: hive-lab lab --no-browser --port 9000 "
                              "(as root, --allow-root is added for you)")
    p.add_argument("--notebook")
    p.set_defaults(func=cmd_lab, jupyter_args=[])

    p = sub.add_parser("ls", help="list sessions")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("spawn", help="start an agent session")
    p.add_argument("name")
    p.add_argument("--agent", default="shell")
    p.add_argument("--cwd")
    p.add_argument("--prompt")
    p.add_argument("--env", action="append", metavar="K=V")
    p.add_argument("--worktree", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--base")
    p.set_defaults(func=cmd_spawn, command=[])
    p.epilog = "Give the program to run after '--': hive-lab spawn NAME -- python3 -i"


    p = sub.add_parser("send", help="type text into a session (then Enter)")
    p.add_argument("name")
    p.add_argument("text", help="the text, or - to read stdin")
    p.add_argument("--no-enter", action="store_true")
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("keys", help="press keys (Enter, Escape, C-c, 1, ...)")
    p.add_argument("name")
    p.add_argument("keys", nargs="+")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("screen", help="print a session's screen")
    p.add_argument("name")
    p.add_argument("--lines", type=int)
    p.set_defaults(func=cmd_screen)

    p = sub.add_parser("kill", help="stop a session and its whole process tree")
    p.add_argument("name")
    p.add_argument("--cleanup", action="store_true", help="also remove its worktree (if merged)")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_kill)

    p = sub.add_parser("events", help="print stored events")
    p.add_argument("--after", type=int, default=0)
    p.add_argument("--session")
    p.add_argument("--event")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_events)

    p = sub.add_parser("cleanup", help="remove worktrees whose session is gone (merged/pushed only)")
    p.add_argument("sessions", nargs="*")
    p.add_argument("--yes", action="store_true", help="remove (default: only list)")
    p.add_argument("--force", action="store_true", help="remove even unmerged work (careful)")
    p.set_defaults(func=cmd_cleanup)

    p = sub.add_parser("install-hooks", help="hook up an agent started outside Hive Lab")
    p.add_argument("dir")
    p.add_argument("--agent", default="claude", choices=["claude", "gemini"])
    p.add_argument("--remove", action="store_true")
    p.set_defaults(func=cmd_install_hooks)

    taskcli.add_parser(sub)
    mergecli.add_parser(sub)
    hostcli.add_parser(sub)
    pipecli.add_parser(sub)
    dashcli.add_parser(sub)

    sub.add_parser("usage", help="token usage and cost from transcripts (no server needed)",
                   add_help=False)
    return parser


def _verb(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """The subcommand in ``argv`` (after the global --url/--token options)."""
    i = 0
    while i < len(argv):
        if argv[i] in ("--url", "--token"):
            i += 2
        elif argv[i].startswith(("--url=", "--token=")):
            i += 1
        else:
            return argv[i]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    entry_point = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["usage"]:
        status = cmd_usage(argparse.Namespace(), argv[1:])
        if entry_point:  # the process is ours alone: skip the teardown of a big report
            from .usage import report as usage_cli

            usage_cli.finish(status)
        return status
    command: list[str] = []
    if "--" in argv:  # everything after '--' is the agent's argv, untouched
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1:]
    parser = build_parser()
    if _verb(parser, argv) == "lab":
        # `lab` passes whatever it does not know to Jupyter (flags and their values)
        args, unknown = parser.parse_known_args(argv)
        args.jupyter_args = unknown
    else:
        args = parser.parse_args(argv)
    args.command = command
    try:
        return int(args.func(args) or 0)
    except HiveAPIError as exc:
        print(f"hive-lab: {exc.error}: {exc.detail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
