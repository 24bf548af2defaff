"""Fixtures only: a real Jupyter server (subprocess) with Hive Lab, a kernel it started, a
scratch dir. Shared helpers live in the ``support`` package."""
from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest

from support import HiveServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = HiveServer(tmp_path_factory.mktemp("hive")).start()
    yield srv
    srv.stop()
    srv.kill_tmux()


@pytest.fixture
def kernel(server: HiveServer):
    """A kernel started by the server itself (as JupyterLab does), driven over its WebSocket."""
    from support.kernel import RemoteKernel

    asyncio.set_event_loop(asyncio.new_event_loop())
    k = RemoteKernel(server)
    yield k
    k.close()


@pytest.fixture
def workdir(server: HiveServer, tmp_path: Path) -> Path:
    """A scratch directory under the server's root, unique per test."""
    d = server.root / f"w-{secrets.token_hex(4)}"
    d.mkdir()
    return d


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the session (support/postgres.py); skips with the reason."""
    from support.postgres import PostgresServer, missing_reason

    why = missing_reason()
    if why:
        pytest.skip(why)
    pg = PostgresServer().start()
    yield pg
    pg.stop()


@pytest.fixture
def pg_url(postgres):
    """A fresh, empty database on the session's PostgreSQL; dropped after the test."""
    url = postgres.create_database()
    yield url
    postgres.drop_database(url.rsplit("/", 1)[1])
