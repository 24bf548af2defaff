"""``hive-lab hosts add|ls|rm``: the nodes a control room federates, in its hosts file.

The file holds each node's name, URL, labels and the *path* of its token file, never a token;
the control room re-reads it when it changes. ``ls --live`` asks the running control room for
each node's health instead (``GET hosts``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .client import HiveClient
from .fleet.hosts import Host, HostConfigError, HostsFile, default_hosts_file


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("hosts", help="nodes this control room federates (the hosts file)")
    p.add_argument("--file", help="hosts file (default: $HIVE_LAB_HOSTS or "
                                  "<jupyter config dir>/hive_lab_hosts.json)")
    verbs = p.add_subparsers(dest="hosts_verb", required=True)
    a = verbs.add_parser("add", help="add a node")
    a.add_argument("name")
    a.add_argument("url", help="the node's Jupyter URL, e.g. http://10.0.0.5:8888/ "
                               "(or http://127.0.0.1:PORT/ through `ssh -L`)")
    a.add_argument("--token-file", help="file holding the node's Jupyter token")
    a.add_argument("--label", action="append", default=[], help="a label (repeatable)")
    a.add_argument("--capacity", type=int, help="live agents it may run")
    a.add_argument("--ssh", metavar="USER@HOST[:PORT]",
                   help="reach the node through SSH (url is then its loopback URL there)")
    a.add_argument("--ssh-key", help="private key file for --ssh")
    a.add_argument("--known-hosts", help="known_hosts file holding the SSH host's key")
    a.add_argument("--replace", action="store_true")
    a.set_defaults(func=cmd_hosts_add)
    ls = verbs.add_parser("ls", help="list nodes")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--live", action="store_true", help="health from the running control room")
    ls.set_defaults(func=cmd_hosts_ls)
    rm = verbs.add_parser("rm", help="remove a node")
    rm.add_argument("name")
    rm.set_defaults(func=cmd_hosts_rm)


def _file(args: argparse.Namespace) -> HostsFile:
    return HostsFile(Path(args.file).expanduser() if args.file else default_hosts_file())


def cmd_hosts_add(args: argparse.Namespace) -> int:
    record = {"name": args.name, "url": args.url, "labels": args.label}
    if args.token_file:
        path = Path(args.token_file).expanduser().resolve()
        if not path.is_file():
            print(f"hive-lab: token file {path} does not exist", flush=True)
            return 1
        record["token_file"] = str(path)
    if args.capacity is not None:
        record["capacity"] = args.capacity
    if args.ssh:
        user, _, where = args.ssh.rpartition("@")
        host, _, port = where.partition(":")
        record["ssh"] = {"user": user, "host": host, "port": int(port) if port.isdigit() else 22,
                         "key_file": str(Path(args.ssh_key or "").expanduser().resolve())
                         if args.ssh_key else "",
                         "known_hosts": str(Path(args.known_hosts).expanduser().resolve())
                         if args.known_hosts else ""}
    try:
        _file(args).add(Host.parse(record), replace=args.replace)
    except HostConfigError as exc:
        print(f"hive-lab: {exc}")
        return 1
    print(f"added {args.name}")
    return 0


def cmd_hosts_rm(args: argparse.Namespace) -> int:
    try:
        _file(args).remove(args.name)
    except HostConfigError as exc:
        print(f"hive-lab: {exc}")
        return 1
    print(f"removed {args.name}")
    return 0


def cmd_hosts_ls(args: argparse.Namespace) -> int:
    if args.live:
        rows = HiveClient.discover(url=args.url, token=args.token).request("GET", "hosts")["hosts"]
    else:
        try:
            rows = [h.to_json() for h in _file(args).load()]
        except HostConfigError as exc:
            print(f"hive-lab: {exc}")
            return 1
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        state = f"  {r['state']}" + (f" (last seen {r.get('last_seen')})"
                                     if r.get("state") not in (None, "ok") else "") \
            if "state" in r else ""
        print(f"{r['name']:<16} {r.get('url') or '(this server)':<36} "
              f"{','.join(r.get('labels') or []) or '-'}{state}")
    return 0
