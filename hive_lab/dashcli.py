"""``hive-lab dashboard``: the control room as a page of its own, for a second screen.

The page is Voilà rendering the dashboard notebook inside the running Jupyter server
(``/voila/render/...``), so the server's authentication applies: the URL printed carries the
token, as Jupyter's own start-up URL does, and without it the page is refused.
"""
from __future__ import annotations

import argparse
import os
import sys
import urllib.parse
import webbrowser
from pathlib import Path
from typing import Any

from .client import find_server, running_servers
from .widgets.dashboard import NOTEBOOK_NAME, notebook_text

CANDIDATES = (f"notebooks/{NOTEBOOK_NAME}", NOTEBOOK_NAME)


def server_root(url: str) -> Path | None:
    """The ``root_dir`` of the running server at ``url`` (from its runtime file), if local."""
    for info in running_servers():
        if str(info.get("url", "")).rstrip("/") == url.rstrip("/"):
            root = info.get("root_dir") or info.get("notebook_dir")
            return Path(root) if root else None
    return None


def notebook_path(root: Path | None, given: str | None, write: bool = True) -> str:
    """The notebook's path relative to the server root: ``given``, an existing dashboard
    notebook, or one written there (only when none exists; never overwritten)."""
    if given:
        return given.lstrip("/")
    if root is None:
        return CANDIDATES[0]
    for rel in CANDIDATES:
        if (root / rel).is_file():
            return rel
    if write:
        target = root / NOTEBOOK_NAME
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(notebook_text())
        print(f"hive-lab: wrote {target}", file=sys.stderr)
    return NOTEBOOK_NAME


def dashboard_url(url: str, token: str, path: str) -> str:
    base = url.rstrip("/") + "/voila/render/" + urllib.parse.quote(path)
    return base + (f"?token={urllib.parse.quote(token)}" if token else "")


def cmd_dashboard(args: argparse.Namespace) -> int:
    info = find_server(args.url, args.token)
    rel = notebook_path(server_root(info.url), args.notebook)
    link = dashboard_url(info.url, info.token, rel)
    print(link)
    if args.open:
        webbrowser.open(link)
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("dashboard", help="the control room as a page of its own (Voila)",
                       description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--notebook", help="notebook path under the server root "
                                      f"(default: {' or '.join(CANDIDATES)}, written if absent)")
    p.add_argument("--open", action="store_true", help="open it in the default browser")
    p.set_defaults(func=cmd_dashboard)
