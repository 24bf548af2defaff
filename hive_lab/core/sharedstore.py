"""The shared store: the orchestration tables in PostgreSQL, behind the ``sqlite3`` calls they use.

With ``c.HiveLab.store_url = "postgresql://..."`` several control servers share one task board.
The task, claim and recovery code is written against ``sqlite3.Connection``; rather than fork
it, :class:`PgConnection` offers the part of that interface the code uses (``execute``,
``with conn:`` as one transaction, rows by index or by name, ``rowcount``, ``lastrowid``,
``IntegrityError``) on a psycopg 3 connection, and :func:`to_postgres` is the dialect step that
turns our few SQLite spellings into PostgreSQL ones. The migrations are the same list
(``core/schema.py``), applied through that step and counted in ``hive_schema`` instead of
``PRAGMA user_version``; tests/test_postgres_store.py proves both stores end up with the same
tables and columns.

The store going away is not an error of the caller: every driver failure becomes
:class:`StoreUnavailable` (503), the connection is dropped and made again on the next call,
and :attr:`PgConnection.health` says since when it is down and why, without the password.
"""
from __future__ import annotations

import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import urlsplit, urlunsplit

from .errors import HiveError, StoreUnavailable

PG_SCHEMES = ("postgresql", "postgres")
_SCHEMA_LOCK = 0x4856_4C42  # pg_advisory_xact_lock key: two servers migrating at once wait


def is_postgres(url: str | None) -> bool:
    return bool(url) and urlsplit(url or "").scheme in PG_SCHEMES


def redact(url: str) -> str:
    """The URL without its password (for status answers and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


# ------------------------------------------------------------------------- the dialect step

_SERIAL_RE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+) \(\s*id INTEGER PRIMARY KEY AUTOINCREMENT",
                        re.I)
_INSERT_RE = re.compile(r"^\s*INSERT\s+(OR\s+(IGNORE|REPLACE)\s+)?INTO\s+(\w+)\s*(\(([^)]*)\))?",
                        re.I)
_JSON_EACH_RE = re.compile(r"json_each\(([^)]*)\)", re.I)


def serial_tables(migrations: Sequence[str]) -> frozenset[str]:
    """Tables whose ``id`` the database assigns (an INSERT then reports ``lastrowid``)."""
    return frozenset(m.group(1) for script in migrations for m in _SERIAL_RE.finditer(script))


def to_postgres_ddl(statement: str) -> str:
    """A migration statement in PostgreSQL's spelling (types; everything else is shared SQL)."""
    out = re.sub(r"INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY", statement, flags=re.I)
    out = re.sub(r"\bREAL\b", "DOUBLE PRECISION", out)  # PG's REAL is 4 bytes: times need 8
    out = re.sub(r"\bINTEGER\b", "BIGINT", out)
    return out


def to_postgres(sql: str, columns: dict[str, tuple[str, ...]] | None = None,
                keys: dict[str, tuple[str, ...]] | None = None) -> str:
    """A query in PostgreSQL's spelling: ``?`` placeholders, ``INSERT OR ...``, ``json_each``.

    ``columns``/``keys`` (table -> column names / primary key) are needed for ``INSERT OR
    REPLACE``, which becomes ``ON CONFLICT (key) DO UPDATE``. Our SQL has no ``?`` or ``%``
    inside literals apart from ``%`` in LIKE patterns, which are escaped here.
    """
    out = sql.replace("%", "%%").replace("?", "%s")
    out = _JSON_EACH_RE.sub(r"jsonb_array_elements_text((\1)::jsonb) AS json_each(value)", out)
    out = re.sub(r"^\s*BEGIN\s+IMMEDIATE\b", "BEGIN", out, flags=re.I)
    m = _INSERT_RE.match(out)
    if m and m.group(1):
        kind, table = m.group(2).upper(), m.group(3)
        out = out[:m.start(1)] + out[m.end(1):]
        if kind == "IGNORE":
            out += " ON CONFLICT DO NOTHING"
        else:
            cols = tuple(c.strip() for c in m.group(5).split(",")) if m.group(5) else \
                (columns or {}).get(table, ())
            pk = (keys or {}).get(table)
            if not pk or not cols:
                raise ValueError(f"INSERT OR REPLACE into {table}: its columns are not known")
            sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c not in pk)
            out += f" ON CONFLICT ({', '.join(pk)}) " + (f"DO UPDATE SET {sets}" if sets else "DO NOTHING")
    return out


# ------------------------------------------------------------------------- rows and results


class Row(tuple):  # type: ignore[type-arg]
    """A row by index (``row[0]``) or by column name (``row["state"]``), like ``sqlite3.Row``."""

    _index: dict[str, int]

    def __new__(cls, values: Sequence[Any], index: dict[str, int]) -> "Row":
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return super().__getitem__(self._index[key])
        return super().__getitem__(key)

    def keys(self) -> list[str]:
        return list(self._index)


class Result:
    """What ``execute`` returns: the rows (already fetched), ``rowcount``, ``lastrowid``."""

    def __init__(self, rows: list[Row], rowcount: int, lastrowid: int | None) -> None:
        self._rows = rows
        self._pos = 0
        self.rowcount = rowcount
        self.lastrowid = lastrowid

    def fetchone(self) -> Row | None:
        if self._pos >= len(self._rows):
            return None
        self._pos += 1
        return self._rows[self._pos - 1]

    def fetchall(self) -> list[Row]:
        rest, self._pos = self._rows[self._pos:], len(self._rows)
        return rest

    def __iter__(self) -> Iterator[Row]:
        while (row := self.fetchone()) is not None:
            yield row


# ------------------------------------------------------------------------- the connection


class PgConnection:
    """A psycopg 3 connection that answers the ``sqlite3.Connection`` calls our stores make.

    Autocommit outside ``with conn:`` (each statement on its own, as the stores expect from
    SQLite's mode), one transaction inside it. Used from one thread at a time (the server's
    event loop); a lock keeps a stray second thread from interleaving.
    """

    dialect = "postgresql"

    def __init__(self, url: str, migrations: Sequence[str] | None = None,
                 connect_timeout: float = 3.0, statement_timeout_ms: int = 10000) -> None:
        from .schema import MIGRATIONS

        self.url = url
        self.migrations = tuple(MIGRATIONS if migrations is None else migrations)
        self.serial = serial_tables(self.migrations)
        self.connect_timeout = connect_timeout
        self.statement_timeout_ms = statement_timeout_ms
        self.row_factory: Any = None  # accepted and ignored: rows always work both ways
        self._conn: Any = None
        self._tx: list[Any] = []
        self._lock = threading.RLock()
        self._columns: dict[str, tuple[str, ...]] = {}
        self._keys: dict[str, tuple[str, ...]] = {}
        self.version = 0
        self.down_since: float | None = None
        self.last_error = ""
        self.up_since: float | None = None
        try:
            self._ensure()
        except StoreUnavailable:
            pass  # down at start-up: reported by health(), connected on the first call that works

    # -- health --------------------------------------------------------------------------
    @property
    def available(self) -> bool:
        return self.down_since is None

    def health(self) -> dict[str, Any]:
        return {"kind": "postgresql", "url": redact(self.url), "reachable": self.available,
                "down_since": self.down_since, "error": self.last_error,
                "schema_version": self.version}

    def ping(self) -> bool:
        """Reconnect if needed and run a trivial query; True when the store answers."""
        try:
            self.execute("SELECT 1")
            return True
        except StoreUnavailable:
            return False

    # -- plumbing ------------------------------------------------------------------------
    def _ensure(self) -> Any:
        import psycopg

        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        if self._tx:
            raise self._down("the connection to the shared store broke inside a transaction")
        self._drop()
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout)),
                                   options=f"-c statement_timeout={self.statement_timeout_ms}")
        except psycopg.Error as exc:
            raise self._down(_first_line(exc)) from None
        self._conn = conn
        try:
            self._migrate()
        except psycopg.OperationalError as exc:
            raise self._down(_first_line(exc)) from None
        if self.down_since is not None or self.up_since is None:
            self.up_since = time.time()
        self.down_since, self.last_error = None, ""
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail; it is gone
                pass
        self._conn = None

    def _down(self, why: str) -> StoreUnavailable:
        self._drop()
        self._tx.clear()
        if self.down_since is None:
            self.down_since = time.time()
        self.last_error = why[:300]
        return StoreUnavailable(f"the shared store ({redact(self.url)}) is unreachable: {self.last_error}",
                                extra={"store": redact(self.url)})

    def _migrate(self) -> None:
        """Bring the PostgreSQL schema to the migration list's version (once per server)."""
        conn = self._conn
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS hive_schema (one INTEGER PRIMARY KEY "
                         "CHECK (one = 1), version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM hive_schema").fetchone()
            current = int(row[0]) if row else 0
            if current > len(self.migrations):
                from .schema import SchemaTooNew

                raise SchemaTooNew(f"the shared store is at schema version {current}, this Hive "
                                   f"Lab knows {len(self.migrations)}: upgrade Hive Lab")
            for script in self.migrations[current:]:
                for statement in _statements(script):
                    conn.execute(to_postgres_ddl(statement))
            conn.execute("INSERT INTO hive_schema (one, version) VALUES (1, %s) ON CONFLICT (one) "
                         "DO UPDATE SET version = EXCLUDED.version", (len(self.migrations),))
        self.version = len(self.migrations)
        self._load_catalog()

    def _load_catalog(self) -> None:
        rows = self._conn.execute(
            "SELECT c.table_name, c.column_name FROM information_schema.columns c "
            "WHERE c.table_schema = current_schema() ORDER BY c.table_name, c.ordinal_position"
        ).fetchall()
        cols: dict[str, list[str]] = {}
        for table, column in rows:
            cols.setdefault(table, []).append(column)
        self._columns = {t: tuple(c) for t, c in cols.items()}
        keys: dict[str, list[str]] = {}
        for table, column in self._conn.execute(
                "SELECT tc.table_name, kcu.column_name FROM information_schema.table_constraints tc "
                "JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = "
                "tc.constraint_name AND kcu.table_schema = tc.table_schema WHERE tc.constraint_type "
                "= 'PRIMARY KEY' AND tc.table_schema = current_schema() ORDER BY tc.table_name, "
                "kcu.ordinal_position").fetchall():
            keys.setdefault(table, []).append(column)
        self._keys = {t: tuple(c) for t, c in keys.items()}

    # -- the sqlite3-shaped interface ----------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Result:
        import psycopg

        stripped = sql.strip().upper()
        if stripped.startswith("PRAGMA"):
            return Result([], -1, None)  # SQLite tuning; PostgreSQL has its own settings
        if stripped in ("BEGIN", "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"):
            raise NotImplementedError("use `with conn:` for a transaction on the shared store")
        query = to_postgres(sql, self._columns, self._keys)
        m = _INSERT_RE.match(query)
        returning = bool(m and m.group(3) in self.serial and "RETURNING" not in stripped)
        if returning:
            query += " RETURNING id"
        with self._lock:
            conn = self._ensure()
            try:
                cur = conn.execute(query, list(params) if not isinstance(params, dict) else params)
                rows: list[Row] = []
                lastrowid = None
                if cur.description is not None:
                    index = {c.name: i for i, c in enumerate(cur.description)}
                    rows = [Row(r, index) for r in cur.fetchall()]
                    if returning:
                        lastrowid = int(rows[0][0]) if rows else None
                        rows = []
                return Result(rows, cur.rowcount, lastrowid)
            except psycopg.IntegrityError as exc:
                raise sqlite3.IntegrityError(_first_line(exc)) from None
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if isinstance(exc, psycopg.errors.QueryCanceled):
                    raise StoreUnavailable(f"the shared store did not answer in time: {_first_line(exc)}") \
                        from None
                raise self._down(_first_line(exc)) from None

    def cursor(self) -> "PgConnection":
        return self

    def __enter__(self) -> "PgConnection":
        with self._lock:
            conn = self._ensure()
            tx = conn.transaction()
            try:
                tx.__enter__()
            except Exception as exc:  # noqa: BLE001 - the driver's kinds; all mean "down"
                raise self._down(_first_line(exc)) from None
            self._tx.append(tx)
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        import psycopg

        with self._lock:
            if not self._tx:  # the connection broke inside: nothing left to end
                return
            tx = self._tx.pop()
            try:
                tx.__exit__(kind, exc, tb)
            except psycopg.IntegrityError as error:
                raise sqlite3.IntegrityError(_first_line(error)) from None
            except psycopg.Error as error:
                if exc is None:
                    raise self._down(_first_line(error)) from None

    def close(self) -> None:
        with self._lock:
            self._drop()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def connect_store(db_path: Path | str, store_url: str | None) -> Any:
    """The orchestration tables' connection: PostgreSQL for a ``postgresql://`` URL, else SQLite.

    The SQLite one is exactly what the stores always had (the node's ``hive.db``, Python's
    transaction mode). Another URL scheme is refused, naming the ones we know.
    """
    if not store_url:
        conn = sqlite3.connect(str(db_path), timeout=5.0, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=5000")
        return conn
    if not is_postgres(store_url):
        raise HiveError(f"store_url must start with postgresql:// (got {urlsplit(store_url).scheme!r}://)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise HiveError("store_url is a PostgreSQL URL but psycopg is not installed: "
                        "pip install 'hive-lab[postgres]'") from None
    return PgConnection(store_url)


def dialect(conn: Any) -> str:
    """``"postgresql"`` for the shared store, ``"sqlite"`` otherwise."""
    return str(getattr(conn, "dialect", "sqlite"))


def node_id(data_dir: Path | str) -> str:
    """This control server's stable name on a shared store: ``<host>:<random>``, kept in the
    data dir, so a restarted server owns (and re-adopts) the tasks it started before."""
    import os
    import secrets
    import socket

    path = Path(data_dir) / "node_id"
    try:
        value = path.read_text().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    value = f"{socket.gethostname()}:{secrets.token_hex(6)}"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(value + "\n")
    os.replace(tmp, path)
    return value
