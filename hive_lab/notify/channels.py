"""Where notifications go: any URL apprise understands, and an optional command.

URLs may carry secrets (tokens, passwords, webhook paths). They live only inside the channel
objects: the API and our own log lines show :attr:`Channel.label` (apprise's own privacy
rendering), the store keeps :attr:`Channel.id` (a hash), and :class:`SecretFilter` scrubs them
from apprise's and urllib3's log records, which name hosts and paths when a send fails.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import subprocess
from dataclasses import dataclass, field
from typing import Any, Sequence
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

COMMAND_TIMEOUT = 30.0
SCRUBBED_LOGGERS = ("apprise", "urllib3", "urllib3.connectionpool", "requests", "ServerApp", "HiveLab",
                    "hive_lab", "hive_lab.notify")
MASK = "****"


@dataclass
class Outcome:
    ok: bool
    error: str = ""


@dataclass
class Channel:
    """One destination. ``send`` runs in the delivery thread, never on the event loop."""

    id: str
    label: str  # safe to show and log

    def send(self, title: str, body: str, data: dict[str, Any]) -> Outcome:  # pragma: no cover
        raise NotImplementedError


def _hash(kind: str, value: str) -> str:
    return kind + "-" + hashlib.sha256(value.encode()).hexdigest()[:12]


@dataclass
class AppriseChannel(Channel):
    url: str = field(default="", repr=False)

    @classmethod
    def parse(cls, url: Any, index: int) -> "AppriseChannel":
        """Load ``url`` with apprise now, so bad config fails at start; the message hides it."""
        import apprise

        if not isinstance(url, str) or not url.strip():
            raise ValueError(f"notify_urls[{index}] must be a non-empty string")
        plugin = apprise.Apprise.instantiate(url.strip())
        if plugin is None:
            scheme = url.split("://", 1)[0] if "://" in url else "?"
            raise ValueError(f"notify_urls[{index}] (scheme {line_safe(scheme)!r}) is not a URL "
                             "apprise understands")
        try:
            label = plugin.url(privacy=True)
        except Exception:
            label = ""
        password = _password(url)
        label = _short_label(str(label or ""))
        if not label or url.strip() in label or (password and password in label):
            label = f"{line_safe(url.split('://', 1)[0])}://…"
        return cls(id=_hash("url", url.strip()), label=_mask_tokens(label), url=url.strip())

    def send(self, title: str, body: str, data: dict[str, Any]) -> Outcome:
        import apprise

        sender = apprise.Apprise()
        if not sender.add(self.url):
            return Outcome(False, "apprise refused the URL")
        kind = apprise.NotifyType.WARNING if data.get("urgent") else apprise.NotifyType.INFO
        try:
            ok = bool(sender.notify(body=body, title=title, notify_type=kind,
                                    body_format=apprise.NotifyFormat.TEXT))
        except Exception as exc:  # a plugin bug must not kill the delivery thread
            return Outcome(False, type(exc).__name__)
        return Outcome(ok, "" if ok else "not delivered (see the server log)")


@dataclass
class CommandChannel(Channel):
    argv: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def parse(cls, argv: Any) -> "CommandChannel":
        if (not isinstance(argv, (list, tuple)) or not argv
                or not all(isinstance(a, str) for a in argv) or not argv[0]):
            raise ValueError("notify_command must be a non-empty list of strings (an argv)")
        return cls(id=_hash("cmd", json.dumps(list(argv))), label=f"command {argv[0]}",
                   argv=tuple(argv))

    def send(self, title: str, body: str, data: dict[str, Any]) -> Outcome:
        """Run the command with the notification as JSON on stdin; exit 0 means delivered."""
        payload = json.dumps({**data, "title": title, "body": body}, ensure_ascii=False)
        try:
            done = subprocess.run(list(self.argv), input=payload.encode(), capture_output=True,
                                  timeout=COMMAND_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Outcome(False, f"{self.label}: {type(exc).__name__}")
        if done.returncode != 0:
            return Outcome(False, f"{self.label} exited {done.returncode}")
        return Outcome(True)


def line_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9+._-]", "", text)[:20]


def _password(url: str) -> str | None:
    try:
        return urlsplit(url.strip()).password
    except ValueError:
        return None


def _mask_tokens(label: str) -> str:
    """apprise's privacy form keeps the path of generic webhooks (json://, form://...), where
    tokens often live: mask path segments that look like one (8+ characters with a digit)."""
    scheme, sep, rest = label.partition("://")
    if not sep:
        return label
    head, slash, path = rest.partition("/")
    parts = [MASK if len(seg) >= 8 and any(c.isdigit() for c in seg) else seg
             for seg in path.split("/")]
    return f"{scheme}://{head}{slash}{'/'.join(parts)}"


def _short_label(label: str) -> str:
    """apprise appends its default options (``?method=POST&overflow=...``): noise in a list."""
    return label.split("?", 1)[0][:200]


def secrets_of(url: str) -> set[str]:
    """Every part of ``url`` that may be a secret (over-approximated: logs lose a little)."""
    out = {url}
    try:
        parts = urlsplit(url)
    except ValueError:
        return out
    candidates: list[str] = []
    if parts.password:
        candidates.append(parts.password)
    host = parts.hostname or ""
    if host and "." not in host and host != "localhost":  # slack://TOKEN/..., tgram://BOT/...
        candidates.append(host)
    candidates += [seg for seg in parts.path.split("/") if seg]
    for _, value in parse_qsl(parts.query, keep_blank_values=False):
        candidates += [value, *value.split()]  # "Bearer TOKEN": the token alone too
    for value in candidates:
        for form in (value, unquote(value), quote(value, safe=""), quote_plus(value)):
            if len(form) >= 4:
                out.add(form)
    return out


class SecretFilter(logging.Filter):
    """Rewrites log records so no configured secret reaches a handler."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__("hive_lab.notify.secrets")
        self.secrets = sorted(set(secrets), key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        clean = self.scrub(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            text = self.scrub(logging.Formatter().formatException(record.exc_info))
            record.msg = f"{record.msg}\n{text}"
            record.exc_info, record.exc_text = None, None
        return True


def install_filter(urls: Sequence[Any]) -> SecretFilter:
    """Scrub the secrets of ``urls`` from the loggers that could print them.

    Installed before apprise first sees a URL: loading one already logs it ("Loaded JSON
    URL: ..." at debug level, with the path and the headers in clear).
    """
    secrets: set[str] = set()
    for url in urls:
        if isinstance(url, str) and url.strip():
            secrets |= secrets_of(url.strip())
    filt = SecretFilter(sorted(secrets))
    for name in SCRUBBED_LOGGERS:
        logging.getLogger(name).addFilter(filt)
    return filt


def remove_filter(filt: SecretFilter) -> None:
    for name in SCRUBBED_LOGGERS:
        logging.getLogger(name).removeFilter(filt)
