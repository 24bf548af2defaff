"""Host records: a node's name, URL, token file and labels.

Hosts come from ``c.HiveLab.hosts`` (a list of dicts) and from a hosts file that
``hive-lab hosts add|ls|rm`` edits (JSON, re-read when it changes, so no restart is needed).
The token is never stored in a record: only the path of the file holding it, read at each
use. ``repr`` and ``to_json`` never show it.
"""
from __future__ import annotations

import json
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..wire import NAME_RE, NAME_RULE
from .tunnel import SshTarget

HOSTS_FILE_ENV = "HIVE_LAB_HOSTS"
LABEL_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}")
FIELDS = {"name", "url", "token_file", "labels", "capacity", "ssh"}


class HostConfigError(ValueError):
    """A host record that cannot be used (the message says which field and why)."""


@dataclass(frozen=True)
class Host:
    """One node. ``capacity``: live agents it may run (None: no limit known here)."""

    name: str
    url: str
    token_file: str | None = None
    labels: tuple[str, ...] = ()
    capacity: int | None = None
    ssh: SshTarget | None = None  # reach ``url`` (as seen from that host) through SSH

    def __repr__(self) -> str:  # the token file's path is harmless; its content never shown
        return f"Host({self.name!r}, {self.url!r}, labels={list(self.labels)!r})"

    @property
    def api_url(self) -> str:
        return self.url.rstrip("/") + "/hive_lab/api/"

    def token(self) -> str:
        """The node's Jupyter token, read now (so a rotated token is picked up)."""
        if not self.token_file:
            return ""
        try:
            return Path(self.token_file).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise HostConfigError(f"host {self.name!r}: token file unreadable "
                                  f"({exc.strerror or exc.__class__.__name__})") from None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "labels": list(self.labels),
                "capacity": self.capacity, "token": "<redacted>" if self.token_file else None,
                "ssh": self.ssh.to_json() if self.ssh else None}

    def to_record(self) -> dict[str, Any]:
        """What the hosts file keeps (the token file's path, never the token)."""
        out: dict[str, Any] = {"name": self.name, "url": self.url, "labels": list(self.labels)}
        if self.token_file:
            out["token_file"] = self.token_file
        if self.capacity is not None:
            out["capacity"] = self.capacity
        if self.ssh is not None:
            t = self.ssh
            out["ssh"] = {"host": t.host, "port": t.port, "user": t.user, "key_file": t.key_file,
                          "known_hosts": t.known_hosts}
        return out

    @classmethod
    def parse(cls, data: Any) -> "Host":
        if not isinstance(data, dict):
            raise HostConfigError("a host must be an object {name, url, token_file, labels}")
        unknown = set(data) - FIELDS
        if unknown:
            raise HostConfigError(f"unknown host field(s): {', '.join(sorted(map(str, unknown)))}"
                                  " (a token goes in a file: token_file)")
        name = data.get("name")
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise HostConfigError(f"host name must be {NAME_RULE}")
        url = data.get("url")
        parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname \
                or parts.query or parts.fragment or parts.username or parts.password:
            raise HostConfigError(f"host {name!r}: url must be http(s)://host:port/base/ "
                                  "(no credentials or query in it)")
        token_file = data.get("token_file")
        if token_file is not None and (not isinstance(token_file, str) or not token_file):
            raise HostConfigError(f"host {name!r}: token_file must be a path")
        labels = data.get("labels", [])
        if isinstance(labels, str):
            labels = [labels]
        if not isinstance(labels, list) or not all(
                isinstance(x, str) and LABEL_RE.fullmatch(x) for x in labels):
            raise HostConfigError(f"host {name!r}: labels must be a list of short names")
        capacity = data.get("capacity")
        if capacity is not None and (isinstance(capacity, bool) or not isinstance(capacity, int)
                                     or capacity < 0):
            raise HostConfigError(f"host {name!r}: capacity must be a whole number >= 0")
        assert isinstance(url, str)
        ssh = None
        if data.get("ssh") is not None:
            try:
                ssh = SshTarget.parse(data["ssh"], f"host {name!r}")
            except ValueError as exc:
                raise HostConfigError(str(exc)) from None
            if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost"):
                raise HostConfigError(f"host {name!r}: with ssh, url is the node's loopback "
                                      "address on that host (http://127.0.0.1:PORT/)")
        return cls(name, url.rstrip("/") + "/", token_file, tuple(dict.fromkeys(labels)),
                   capacity, ssh)


def parse_hosts(items: Iterable[Any], reserved: Iterable[str] = ()) -> list[Host]:
    """Parse and check a list of host records (names unique, not a reserved name)."""
    hosts: list[Host] = []
    seen = set(reserved)
    for item in items:
        host = Host.parse(item)
        if host.name in seen:
            raise HostConfigError(f"host name {host.name!r} is used twice (or reserved)")
        seen.add(host.name)
        hosts.append(host)
    return hosts


def default_hosts_file() -> Path:
    env = os.environ.get(HOSTS_FILE_ENV)
    if env:
        return Path(env).expanduser()
    from jupyter_core.paths import jupyter_config_dir

    return Path(jupyter_config_dir()) / "hive_lab_hosts.json"


class HostsFile:
    """The JSON list of host records ``hive-lab hosts`` edits and the control room reads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._hosts: list[Host] = []

    def load(self) -> list[Host]:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        try:
            data = json.loads(raw) if raw.strip() else []
        except ValueError as exc:
            raise HostConfigError(f"{self.path}: not valid JSON ({exc})") from None
        if not isinstance(data, list):
            raise HostConfigError(f"{self.path}: must hold a JSON list of hosts")
        return parse_hosts(data)

    def changed(self) -> bool:
        """True when the file changed since the last :meth:`cached` read."""
        return self._stat() != self._stamp

    def cached(self) -> list[Host]:
        stamp = self._stat()
        if stamp != self._stamp:
            self._hosts = self.load()
            self._stamp = stamp
        return self._hosts

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def save(self, hosts: list[Host]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps([h.to_record() for h in hosts], indent=2) + "\n")
        os.replace(tmp, self.path)

    def add(self, host: Host, replace: bool = False) -> list[Host]:
        hosts = self.load()
        if any(h.name == host.name for h in hosts) and not replace:
            raise HostConfigError(f"host {host.name!r} exists (use --replace)")
        hosts = [h for h in hosts if h.name != host.name] + [host]
        self.save(hosts)
        return hosts

    def remove(self, name: str) -> list[Host]:
        hosts = self.load()
        if not any(h.name == name for h in hosts):
            raise HostConfigError(f"no host named {name!r}")
        hosts = [h for h in hosts if h.name != name]
        self.save(hosts)
        return hosts
