"""Hive Lab hook client: the command an agent CLI runs for every hook event.

Run as ``<python> -S -E -s .../hive_lab/hook.py [--agent NAME] [--install ID] [--argv-payload]``
(see "Hook protocol" in docs/CONTRACTS.md). It POSTs the raw payload to the server's ingest
endpoint and passes the server's decision back to the agent; when the server cannot take the
event it appends it to a spool file that the server drains later (``hive_lab.spool``).

Why it is written the way it is:

- It runs on *every* agent event, so start-up time is its cost. On the 2-core reference
  machine an empty ``python -S`` takes ~8 ms, and importing ``json`` or ``socket`` adds ~9 ms
  each (they pull in ``re``, ``enum``, ``collections``...), ``os`` ~1 ms. So this file imports
  only built-in or C modules: ``posix``, ``time``, ``_socket``, ``fcntl``, ``_json``; it speaks
  HTTP/1.1 over a raw socket and uses the C JSON scanner/encoder directly (falling back to
  ``json`` if a Python lacks them).
- It never breaks the agent: every failure ends in exit 0 within a time budget (connect +
  send + receive, ``HIVE_LAB_HOOK_TIMEOUT`` seconds, default 2). Only an explicit answer of
  the server (stdout JSON, exit 2 + stderr) changes what the agent sees.
- The secret travels only in a header; it is read from a 0600 file, never from argv or env.
- It is one self-contained file (no ``hive_lab`` import: ``-S`` means no site-packages). The
  server imports the constants below as ``hive_lab.hook``, so importing it has no side effects.
- Run as a ``.py`` script the whole file is compiled at every call (~4 ms); ``compile_to()``
  writes the same client as a ``.pyc`` that ``python -S -E -s`` runs without compiling
  (benchmarks/RESULTS.md has the figures).
- Python start-up alone is ~7 ms, over the 5 ms a guarded call may take, so the server
  installs ``hookc/hive_hook.c`` (same protocol, same spool bytes; ~2-3 ms) when it can build
  it; this client is the fallback, and what the C one execs for an https server.
"""
import sys

if __name__ == "__main__" and sys.path:
    # sys.path[0] is this file's directory (hive_lab/): a module there must never shadow a
    # stdlib module we import below.
    del sys.path[0]

import posix  # built in; `os` would cost an extra ~1 ms of imports
import time  # built in

PROTOCOL_VERSION = 1
MAX_BODY = 1 << 20  # the server answers 413 above this; such payloads are never spooled
DEFAULT_TIMEOUT = 2.0
SPOOL_LOCK_TIMEOUT = 1.0  # waiting for a spool file lock; then a private spool file is used

DIR_ENV = "HIVE_LAB_DIR"
SESSION_ENV = "HIVE_LAB_SESSION"
AGENT_ENV = "HIVE_LAB_AGENT"
TIMEOUT_ENV = "HIVE_LAB_HOOK_TIMEOUT"

HEADER_SESSION = "X-Hive-Session"
HEADER_INSTALL = "X-Hive-Install"
HEADER_SECRET = "X-Hive-Secret"
HEADER_KEY = "X-Hive-Key"
HEADER_FIRED = "X-Hive-Fired"
HEADER_AGENT = "X-Hive-Agent"
# The C client (hive_lab/hookc/hive_hook.c) sends ``X-Hive-Client: c1`` and gets its answer
# without JSON: see ``c1_answer``.
HEADER_CLIENT = "X-Hive-Client"
CLIENT_C1 = "c1"
HEADER_EXIT_CODE = "X-Hive-Exit-Code"
HEADER_STDERR = "X-Hive-Stderr"
HEADER_EVENT_ID = "X-Hive-Id"
HEADER_DUPLICATE = "X-Hive-Duplicate"

SERVER_JSON = "server.json"
SPOOL_DIRNAME = "spool"
SPOOL_SUFFIX = ".jsonl"
SESSION_SPOOL_PREFIX = "session-"
INSTALL_SPOOL_PREFIX = "install-"

_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_FS_ENCODING = sys.getfilesystemencoding()


class Undelivered(Exception):
    """The server did not take the event, but may later: spool it."""


class Refused(Exception):
    """The server said no for good (4xx): drop the event, do not spool."""


def valid_name(value: str) -> bool:
    """Same rule as ``hive_lab.wire.NAME_RE`` (1-64 of ``A-Za-z0-9_-``, no leading ``-``),
    without importing ``re``."""
    return 0 < len(value) <= 64 and value[0] != "-" and _NAME_CHARS.issuperset(value)


def spool_file_name(session: str | None, install: str | None) -> str:
    """One spool file per session (or install), so a drain replays a session in order."""
    if install is not None:
        return INSTALL_SPOOL_PREFIX + install + SPOOL_SUFFIX
    return SESSION_SPOOL_PREFIX + str(session) + SPOOL_SUFFIX


# --- JSON through the C accelerators (importing `json` costs ~9 ms) -------------------------


class _ScanContext:
    """The attributes ``_json.make_scanner`` reads from a ``JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        raise ValueError("NaN/Infinity are not JSON: " + name)


def loads(text: str):
    """Parse one JSON document (the C scanner, else ``json.loads``)."""
    try:
        import _json

        scan = _json.make_scanner(_ScanContext)  # type: ignore[arg-type]
    except Exception:  # a Python without the C accelerator
        import json

        return json.loads(text)
    start = len(text) - len(text.lstrip(" \t\n\r"))
    try:
        value, end = scan(text, start)
    except StopIteration:
        raise ValueError("no JSON value") from None
    if text[end:].strip(" \t\n\r"):
        raise ValueError("extra data after JSON value")
    return value


def quote(text: str) -> str:
    """A JSON string literal, ASCII only (lone surrogates become ``\\udcXX`` escapes)."""
    try:
        from _json import encode_basestring_ascii
    except ImportError:
        from json.encoder import encode_basestring_ascii
    return encode_basestring_ascii(text)


def dumps(value) -> str:
    """Serialise a decoded JSON value (the server's ``output``) back to JSON text."""
    try:
        from _json import encode_basestring_ascii, make_encoder

        encode = make_encoder(
            None, _not_json, encode_basestring_ascii, None, ": ", ", ", False, False, False
        )
        return "".join(encode(value, 0))
    except Exception:
        import json

        return json.dumps(value)


def _not_json(value):
    raise TypeError("not JSON serialisable: " + type(value).__name__)


# --- small I/O helpers on raw file descriptors --------------------------------------------


def _env(name: str) -> str | None:
    value = posix.environ.get(name.encode())
    return None if value is None else value.decode(_FS_ENCODING, "surrogateescape")


def _read_fd(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = posix.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _read_file(path: str) -> bytes:
    fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    try:
        return _read_fd(fd)
    finally:
        posix.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[posix.write(fd, view) :]


# --- configuration --------------------------------------------------------------------------


class Options:
    """What the command line says about this call (a plain class: ``dataclasses`` imports
    ``re`` and ``inspect``, several ms)."""

    __slots__ = ("agent", "install", "data_dir", "argv_payload", "payload_arg")

    def __init__(self) -> None:
        self.agent: str | None = None
        self.install: str | None = None
        self.data_dir: str | None = None
        self.argv_payload = False
        self.payload_arg: str | None = None


def parse_args(argv: list[str]) -> Options:
    """``--agent NAME``, ``--install ID``, ``--dir PATH``, ``--argv-payload``.

    With ``--argv-payload`` the last argument is the payload (Codex ``notify`` appends it), so
    it is never read as an option. Unknown options are ignored: an agent must not fail because
    a newer installer added a flag.
    """
    opts = Options()
    args = list(argv)
    if "--argv-payload" in args[:-1]:
        opts.argv_payload = True
        opts.payload_arg = args.pop()
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if name in ("--agent", "--install", "--dir"):
            if not eq:
                i += 1
                value = args[i] if i < len(args) else ""
            setattr(opts, "data_dir" if name == "--dir" else name[2:], value)
        elif arg == "--argv-payload":  # given as the only/last argument: no payload at all
            opts.argv_payload = True
        i += 1
    return opts


def default_data_dir() -> str | None:
    """``<jupyter data dir>/hive_lab`` for hand-installed hooks started without ``HIVE_LAB_DIR``.

    Mirrors ``jupyter_core.paths.jupyter_data_dir()`` on POSIX, without importing it.
    """
    base = _env("JUPYTER_DATA_DIR")
    if not base:
        home = _env("HOME")
        if not home:
            return None
        if sys.platform == "darwin":
            platform_dirs = (_env("JUPYTER_PLATFORM_DIRS") or "").lower() in ("1", "true", "yes", "on")
            base = home + ("/Library/Application Support/jupyter" if platform_dirs else "/Library/Jupyter")
        else:
            base = (_env("XDG_DATA_HOME") or home + "/.local/share") + "/jupyter"
    return base + "/hive_lab"


def hook_timeout() -> float:
    try:
        value = float(_env(TIMEOUT_ENV) or DEFAULT_TIMEOUT)
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if 0 < value < 3600 else DEFAULT_TIMEOUT


def read_secret(path: str) -> str:
    """The secret file's content: visible ASCII only (it goes into a header)."""
    try:
        secret = _read_file(path).strip().decode("ascii")
    except (OSError, UnicodeDecodeError):
        raise Undelivered("no secret at " + path) from None
    if not secret or len(secret) > 512 or not all("!" <= c <= "~" for c in secret):
        raise Undelivered("unusable secret in " + path)
    return secret


def read_hooks_url(data_dir: str) -> str:
    """``hooks_url`` of the running server; ``Undelivered`` if none is running.

    A server that crashed leaves a stale ``server.json``: when its ``pid`` is gone the event
    is spooled at once, rather than posted to whatever may have taken over the port.
    """
    try:
        info = loads(_read_file(data_dir + "/" + SERVER_JSON).decode("utf-8"))
    except (OSError, ValueError):
        raise Undelivered("no readable " + SERVER_JSON) from None
    url = info.get("hooks_url") if isinstance(info, dict) else None
    if not isinstance(url, str) or not url:
        raise Undelivered(SERVER_JSON + " has no hooks_url")
    pid = info.get("pid")
    if type(pid) is int and pid > 0:
        try:
            posix.kill(pid, 0)
        except ProcessLookupError:
            raise Undelivered("server pid %d is gone" % pid) from None
        except OSError:  # EPERM: it exists, under another user
            pass
    return url


# --- HTTP/1.1 over a raw socket -------------------------------------------------------------


def split_url(url: str) -> tuple[str, str, int, str]:
    """``(scheme, host, port, path)`` of an ``http``/``https`` URL."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https"):
        raise Undelivered("unsupported hooks_url " + url)
    rest = rest.partition("#")[0]
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    hostport, path = rest[:cut], rest[cut:] or "/"
    if path.startswith("?"):
        path = "/" + path
    port = 443 if scheme == "https" else 80
    if hostport.startswith("["):  # IPv6 literal
        host, _, tail = hostport[1:].partition("]")
        if tail.startswith(":"):
            port = int(tail[1:])
    elif ":" in hostport:
        host, _, port_text = hostport.rpartition(":")
        port = int(port_text)
    else:
        host = hostport
    if not host or "@" in host or any(c in url for c in "\r\n\0 "):
        raise Undelivered("bad hooks_url " + url)
    return scheme, host, port, path


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise Undelivered("timed out")
    return left


def _connect(scheme: str, host: str, port: int, deadline: float):
    import _socket

    error: Exception = Undelivered("no address for " + host)
    # A str host makes getaddrinfo import the idna codec (and with it `re`: ~7 ms).
    name = host.encode("ascii") if host.isascii() else host
    for family, kind, proto, _, address in _socket.getaddrinfo(name, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(_remaining(deadline))
            sock.connect(address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        if scheme == "https":  # TLS costs the ssl import (~20 ms); only used when configured
            import socket
            import ssl

            plain = socket.socket(family, kind, proto, fileno=sock.detach())
            plain.settimeout(_remaining(deadline))
            return ssl.create_default_context().wrap_socket(plain, server_hostname=host)
        return sock
    raise error


def http_post(url: str, headers: list[tuple[str, str]], body: bytes, deadline: float) -> tuple[int, bytes]:
    """POST ``body``; return ``(status, response body)``. Raises ``Undelivered`` on any failure."""
    scheme, host, port, path = split_url(url)
    host_header = ("[" + host + "]" if ":" in host else host) + ":" + str(port)
    head = [
        "POST " + path + " HTTP/1.1",
        "Host: " + host_header,
        "Content-Type: application/json",
        "Content-Length: " + str(len(body)),
        "Connection: close",
    ]
    head.extend(name + ": " + value for name, value in headers)
    request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
    try:
        sock = _connect(scheme, host, port, deadline)
        try:
            sock.settimeout(_remaining(deadline))
            sock.sendall(request)
            return _read_response(sock, deadline)
        finally:
            sock.close()
    except Undelivered:
        raise
    except Exception as exc:  # refused, reset, timeout, DNS, TLS...
        raise Undelivered(type(exc).__name__ + ": " + str(exc)) from None


def _read_response(sock, deadline: float) -> tuple[int, bytes]:
    buf = b""
    status = 0
    head_end = -1
    length = -1
    chunked = False
    while True:
        if head_end < 0:
            head_end = buf.find(b"\r\n\r\n")
            if head_end >= 0:
                lines = buf[:head_end].decode("latin-1").split("\r\n")
                parts = lines[0].split(None, 2)
                if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                    raise Undelivered("not an HTTP response")
                status = int(parts[1])
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    name = name.strip().lower()
                    if name == "content-length":
                        length = int(value.strip())
                    elif name == "transfer-encoding" and "chunked" in value.lower():
                        chunked = True
                if status in (204, 304) or 100 <= status < 200:
                    length = 0
        if head_end >= 0:
            payload = buf[head_end + 4 :]
            if chunked:
                body = _dechunk(payload)
                if body is not None:
                    return status, body
            elif 0 <= length <= len(payload):
                return status, payload[:length]
        sock.settimeout(_remaining(deadline))
        chunk = sock.recv(1 << 16)
        if not chunk:  # connection closed: the body ends here (if no length was announced)
            if head_end >= 0 and length < 0 and not chunked:
                return status, buf[head_end + 4 :]
            if 400 <= status < 500:
                return status, b""
            raise Undelivered("connection closed mid-response")
        buf += chunk


def _dechunk(data: bytes) -> bytes | None:
    """Body of a complete chunked message, or None while incomplete."""
    out: list[bytes] = []
    pos = 0
    while True:
        line_end = data.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(data[pos:line_end].split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return b"".join(out)
        start = line_end + 2
        if len(data) < start + size + 2:
            return None
        out.append(data[start : start + size])
        pos = start + size + 2


# --- the spool ------------------------------------------------------------------------------


def spool_line(
    session: str | None, install: str | None, agent: str, key: str, fired: float, body: bytes
) -> bytes:
    """One spool line. ``body`` is decoded with ``surrogateescape`` so invalid UTF-8 survives
    the round trip exactly (``hive_lab.spool`` re-encodes it the same way)."""

    def opt(value: str | None) -> str:
        return "null" if value is None else quote(value)

    text = body.decode("utf-8", "surrogateescape")
    return (
        '{"v": %d, "session": %s, "install": %s, "agent": %s, "key": %s, "fired": %r, "body": %s}\n'
        % (PROTOCOL_VERSION, opt(session), opt(install), quote(agent), quote(key), fired, quote(text))
    ).encode("ascii")


def _lock(fd: int, deadline: float) -> bool:
    import fcntl

    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.002)


def append_line(path: str, line: bytes, lock_timeout: float = SPOOL_LOCK_TIMEOUT) -> bool:
    """Append ``line`` with one ``write()`` under ``flock``; False if the lock never came.

    After locking, the open file must still be the one at ``path``: a drain renames the file
    and then locks it, so a writer holding a stale descriptor would write into a file already
    read. A partial line left by a killed writer is closed with a newline first (the reader
    keeps it aside as corrupt) so it cannot swallow ours; a short write of our own is undone.
    """
    deadline = time.monotonic() + lock_timeout
    flags = posix.O_RDWR | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC | posix.O_NOFOLLOW
    for _ in range(100):
        fd = posix.open(path, flags, 0o600)
        try:
            if not _lock(fd, deadline):
                return False
            mine = posix.fstat(fd)
            try:
                there = posix.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if (there.st_ino, there.st_dev) != (mine.st_ino, mine.st_dev):
                continue  # renamed away by a drain: open the new file
            size = mine.st_size
            data = line
            if size and posix.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + line
            written = posix.write(fd, data)
            if written != len(data):
                posix.ftruncate(fd, size)
                raise OSError("short write to spool " + path)
            return True
        finally:
            posix.close(fd)  # also releases the lock
    return False


def spool(data_dir: str, name: str, line: bytes) -> bool:
    """Append to the shared spool file, or to a private one if its lock is stuck."""
    spool_dir = data_dir + "/" + SPOOL_DIRNAME
    try:
        posix.mkdir(spool_dir, 0o700)
    except FileExistsError:
        pass
    if append_line(spool_dir + "/" + name, line):
        return True
    stem = name[: -len(SPOOL_SUFFIX)]
    private = "%s/%s.%d-%s%s" % (spool_dir, stem, posix.getpid(), posix.urandom(4).hex(), SPOOL_SUFFIX)
    return append_line(private, line)


# --- for the server ------------------------------------------------------------------------


def compile_to(target: str) -> str:
    """Write this client as bytecode, runnable as ``<python> -S -E -s <target>``.

    Run as a ``.py`` script, the whole file is compiled at every call (~4 ms here, about a
    third of a hook call); a ``.pyc`` skips that. Same interpreter only (the magic number is
    checked), so the server writes it at start-up with its own ``sys.executable``.
    """
    import py_compile

    mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
    compiled = py_compile.compile(__file__, cfile=target, doraise=True, invalidation_mode=mode)
    return compiled or target


def c1_answer(result: dict) -> tuple[list[tuple[str, str]], bytes]:
    """The ingest answer for a ``c1`` client: headers, and the body to copy to stdout.

    What the Python client would do with ``result`` (``respond``), pre-chewed so the C client
    needs no JSON parser: exit code 2 or 0, stderr as UTF-8 percent-encoded (visible ASCII
    but ``%`` stays as is, so it is a safe header value), stdout = ``output`` as JSON + newline
    exactly as ``dumps`` writes it, or nothing.
    """
    import json

    output = result.get("output")
    stderr = result.get("stderr")
    text = stderr.encode("utf-8", "replace") if isinstance(stderr, str) else b""
    encoded = "".join(chr(b) if 0x21 <= b <= 0x7E and b != 0x25 else "%%%02X" % b for b in text)
    headers = [
        (HEADER_EXIT_CODE, "2" if result.get("exit_code") == 2 else "0"),
        (HEADER_STDERR, encoded),
        (HEADER_EVENT_ID, str(result.get("id", ""))),
        (HEADER_DUPLICATE, "1" if result.get("duplicate") else "0"),
    ]
    body = b"" if output is None else (json.dumps(output) + "\n").encode("utf-8")
    return headers, body


# --- the hook call --------------------------------------------------------------------------


def deliver(
    data_dir: str,
    session: str | None,
    install: str | None,
    agent: str,
    key: str,
    fired: float,
    body: bytes,
    timeout: float,
) -> dict:
    """POST the event; return the server's answer object. Raises ``Undelivered``/``Refused``."""
    url = read_hooks_url(data_dir)
    if install is not None:
        secret = read_secret(data_dir + "/installs/" + install + ".secret")
        who = (HEADER_INSTALL, install)
    else:
        secret = read_secret(data_dir + "/sessions/" + str(session) + "/secret")
        who = (HEADER_SESSION, str(session))
    headers = [
        who,
        (HEADER_SECRET, secret),
        (HEADER_KEY, key),
        (HEADER_FIRED, repr(fired)),
        (HEADER_AGENT, agent),
    ]
    status, answer = http_post(url, headers, body, time.monotonic() + timeout)
    if 400 <= status < 500 and status not in (408, 429):  # those two mean "not now"
        raise Refused(status)
    if not 200 <= status < 300:
        raise Undelivered("HTTP %d" % status)
    if not answer.strip():
        return {}
    try:
        result = loads(answer.decode("utf-8"))
    except ValueError:
        raise Undelivered("unreadable answer") from None
    if not isinstance(result, dict):
        raise Undelivered("answer is not an object")
    return result


def respond(result: dict) -> int:
    """Pass the server's decision to the agent: ``output`` on stdout, ``stderr``, exit code."""
    output = result.get("output")
    stderr = result.get("stderr")
    code = 2 if result.get("exit_code") == 2 else 0
    try:
        if output is not None:
            _write_all(1, (dumps(output) + "\n").encode("utf-8"))
        if isinstance(stderr, str) and stderr:
            _write_all(2, stderr.encode("utf-8", "replace"))
    except OSError:  # the agent closed our pipes: nothing left to tell it
        pass
    return code


def main(argv: list[str]) -> int:
    """One hook call. Returns the exit code; every failure path returns 0."""
    try:
        opts = parse_args(argv)
        if opts.argv_payload:
            arg = opts.payload_arg or ""
            body = arg.encode(_FS_ENCODING, "surrogateescape")
        else:
            body = _read_fd(0)  # read it all even if we then stay silent: the agent is writing
        install = opts.install
        if install is not None and _env(SESSION_ENV):
            return 0  # a managed session's own hook entry reports this event: don't double it
        session = None if install is not None else _env(SESSION_ENV)
        data_dir = opts.data_dir or _env(DIR_ENV)
        if not data_dir and install is not None:
            data_dir = default_data_dir()
        if not data_dir or (install is None and not session):
            return 0  # agent started outside Hive Lab
        if not valid_name(install if install is not None else str(session)):
            return 0  # would be a path outside the data dir: refuse quietly
        agent = opts.agent or _env(AGENT_ENV) or ""
        if not valid_name(agent):
            agent = ""
        key = posix.urandom(16).hex()
        fired = time.time()
    except BaseException:  # incl. KeyboardInterrupt: Ctrl-C in the agent's pane reaches us too
        return 0
    try:
        result = deliver(data_dir, session, install, agent, key, fired, body, hook_timeout())
    except Refused:
        return 0
    except BaseException:  # Undelivered, Ctrl-C, or a bug here: it may still be delivered later
        if len(body) <= MAX_BODY:
            try:
                line = spool_line(session, install, agent, key, fired, body)
                spool(data_dir, spool_file_name(session, install), line)
            except BaseException:
                pass
        return 0
    try:
        return respond(result)
    except BaseException:
        return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    # Skip interpreter finalisation: every output went through raw file descriptors already.
    posix._exit(code)
