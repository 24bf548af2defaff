"""The hook client's stdlib-only copies of the wire vocabulary agree with hive_lab.wire."""
from __future__ import annotations

import pytest

from hive_lab import hook, wire
from hive_lab.core.errors import BadRequest
from hive_lab.core.names import validate_name


def test_hook_client_headers_are_the_wire_headers() -> None:
    for name in ("SESSION", "INSTALL", "SECRET", "KEY", "FIRED", "AGENT", "CLIENT"):
        assert getattr(hook, f"HEADER_{name}") == getattr(wire, f"HEADER_{name}")
    assert hook.CLIENT_C1 == wire.CLIENT_C1


@pytest.mark.parametrize("name", [
    "a", "agent-1", "A_b-9", "x" * 64, "_lead", "-lead", "", "x" * 65, "a b", "a;b", "z#(touch f)",
    "../x", "$0", "é", "a\n", "a.b", "a/b", "-", "9",
])
def test_server_and_hook_client_accept_exactly_the_same_names(name: str) -> None:
    try:
        validate_name(name)
        server_ok = True
    except BadRequest:
        server_ok = False
    assert hook.valid_name(name) == server_ok == bool(wire.NAME_RE.fullmatch(name))


def test_task_vocabulary_is_the_orchestrators() -> None:
    from hive_lab.orchestrate import runtime, tasks

    assert wire.TASK_STATES == tasks.STATES
    assert wire.SCOPE_REQUEST_HOOK == runtime.SCOPE_REQUEST_HOOK
