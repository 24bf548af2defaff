"""The backstop audit over changed-file lists (what gitwatch reports after a refresh)."""
from __future__ import annotations

import unicodedata

from hive_lab.orchestrate.audit import Violation, audit
from hive_lab.orchestrate.tasks import Task


def t(id: str, scope: tuple[str, ...], shared: tuple[str, ...] = ()) -> Task:
    return Task(id=id, prompt="p", repo="/r", scope=scope, shared=shared)


def test_clean_and_violations() -> None:
    task = t("api", ("src/**", "tests/test_api.py"), ("CHANGELOG.md",))
    others = [t("billing", ("src/billing/**",)), task]
    changed = ["src/api.py", "tests/test_api.py", "CHANGELOG.md", "docs/x.md",
               "src/billing/pay.py", "src/api.py"]
    got = audit(changed, task, others)
    assert [v.path for v in got] == ["docs/x.md", "src/billing/pay.py"]
    assert got[0].owner is None and "outside the scope of task api" in got[0].reason
    assert got[1].owner == "billing" and "billing" in got[1].reason
    assert got[1].to_json() == {"path": "src/billing/pay.py", "reason": got[1].reason, "owner": "billing"}
    assert audit(["src/a.py"], task, others) == []


def test_read_only_and_hostile_names() -> None:
    ro = t("review", ())
    assert [v.path for v in audit(["a", "b"], ro, [])] == ["a", "b"]
    task = t("api", (unicodedata.normalize("NFC", "docs/café/**"),))
    assert audit([unicodedata.normalize("NFD", "docs/café/x.md")], task, []) == []
    v = audit(["x\x1b[31m\n.md"], task, [])
    assert len(v) == 1 and isinstance(v[0], Violation) and "\x1b" not in v[0].reason
