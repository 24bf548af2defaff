"""pandas frames of review pipelines: ``pipelines``, ``stages``, ``findings``.

Same rules as :mod:`hive_lab.frames` (fixed columns, exact dtypes, empty or not); the schemas
join :data:`hive_lab.frames.SCHEMAS`. A control-room view draws ``stages`` as a row per
pipeline (``seq`` orders the visits; ``round`` is the review round) and lists ``findings``.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from .frames import SCHEMAS, _build, _categorical
from .wire import PIPELINE_STATES, STAGE_KINDS, STAGE_STATES

if TYPE_CHECKING:
    from .client import HiveClient

SCHEMAS.update({
    "pipelines": [
        ("id", "string"), ("title", "string"), ("state", "category"),
        ("reason", "string"), ("since", "time"), ("created", "time"),
        ("stage", "Int64"), ("stage_kind", "category"), ("round", "Int64"),
        ("max_review_rounds", "Int64"), ("stages", "object"), ("criteria", "object"),
        ("scope", "object"), ("checks", "object"), ("branch", "string"),
        ("base", "string"), ("base_branch", "string"), ("repo", "string"),
        ("can_retry", "boolean"), ("tasks", "object"),
    ],
    "stages": [
        ("pipeline", "string"), ("seq", "Int64"), ("idx", "Int64"), ("kind", "category"),
        ("round", "Int64"), ("state", "category"), ("reason", "string"),
        ("task", "string"), ("started", "time"), ("ended", "time"), ("cost", "Float64"),
        ("verdict", "category"), ("findings", "Int64"), ("checks", "Int64"),
        ("checks_passed", "boolean"),
    ],
    "findings": [
        ("pipeline", "string"), ("id", "Int64"), ("seq", "Int64"), ("round", "Int64"),
        ("file", "string"), ("line", "Int64"), ("severity", "category"), ("text", "string"),
        ("created", "time"),
    ],
})

#: Categorical columns whose categories are fixed (in this order), empty frame or not.
_FIXED: dict[str, dict[str, tuple[str, ...]]] = {
    "pipelines": {"state": PIPELINE_STATES},
    "stages": {"kind": STAGE_KINDS, "state": STAGE_STATES},
}


def _frame(records: Iterable[Mapping[str, Any]], schema: str) -> pd.DataFrame:
    """Build with the frames rules; the fixed categoricals get their categories in order."""
    rows = list(records)
    frame = _build(rows, schema)
    for name, cats in _FIXED.get(schema, {}).items():
        frame[name] = _categorical([r.get(name) for r in rows], cats)
    return frame


def pipelines_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    out = []
    for p in records:
        state = p.get("state") or {}
        out.append({**{k: p.get(k) for k in ("id", "title", "created", "stage", "stage_kind",
                                              "round", "branch", "base", "base_branch", "repo",
                                              "can_retry", "stages", "criteria", "scope",
                                              "checks", "tasks")},
                    "state": state.get("name"), "reason": state.get("reason"),
                    "since": state.get("since"),
                    "max_review_rounds": p.get("max_review_rounds_now",
                                               p.get("max_review_rounds"))})
    return _frame(out, "pipelines")


def stages_frame(pipeline: Mapping[str, Any]) -> pd.DataFrame:
    """One pipeline's ``GET pipelines/{id}`` -> one row per stage visit, oldest first."""
    return _frame(_stage_rows(pipeline), "stages")


def _stage_rows(pipeline: Mapping[str, Any]) -> list[dict[str, Any]]:
    findings: dict[int, int] = {}
    for f in pipeline.get("findings") or []:
        findings[f["stage_row"]] = findings.get(f["stage_row"], 0) + 1
    checks: dict[int, list[bool]] = {}
    for c in pipeline.get("checks") or []:
        checks.setdefault(c["stage_row"], []).append(bool(c["passed"]))
    rows = []
    for s in pipeline.get("history") or []:
        ran = checks.get(s["id"])
        rows.append({"pipeline": pipeline.get("id"), "seq": s["id"], "idx": s["idx"],
                     "kind": s["kind"], "round": s["round"], "state": s["state"],
                     "reason": s["reason"], "task": s["task_id"], "started": s["started"],
                     "ended": s["ended"], "cost": s["cost"],
                     "verdict": (s.get("verdict") or {}).get("verdict"),
                     "findings": findings.get(s["id"], 0),
                     "checks": len(ran) if ran is not None else None,
                     "checks_passed": all(ran) if ran else None})
    return rows


def findings_frame(pipeline: Mapping[str, Any]) -> pd.DataFrame:
    return _frame(_finding_rows(pipeline), "findings")


def _finding_rows(pipeline: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"pipeline": pipeline.get("id"), "id": f["id"], "seq": f["stage_row"],
             "round": f["round"], "file": f["file"], "line": f["line"],
             "severity": f["severity"], "text": f["text"], "created": f["created"]}
            for f in pipeline.get("findings") or []]


def pipelines(client: HiveClient, state: str | None = None) -> pd.DataFrame:
    """The server's pipelines, one row each: ``state`` (category of
    :data:`~hive_lab.wire.PIPELINE_STATES`), ``stage`` (index into ``stages``), ``round``
    (the review round), ``can_retry`` (a person's retry would let it go on), ..."""
    return pipelines_frame(client.pipelines(state=state))


def stages(client: HiveClient, pipeline_id: str | None = None) -> pd.DataFrame:
    """Every stage visit (of one pipeline, or of all): ``kind``, ``round``, ``state``,
    ``task`` (the stage's task), ``verdict`` (review), ``findings``/``checks`` (counts),
    ``cost`` (Float64 USD of the stage's task, NA if unknown)."""
    ids = [pipeline_id] if pipeline_id else [p["id"] for p in client.pipelines()]
    return _frame([r for i in ids for r in _stage_rows(client.pipeline(i))], "stages")


def findings(client: HiveClient, pipeline_id: str | None = None) -> pd.DataFrame:
    """Every reviewer finding: ``file``, ``line``, ``severity``, ``text``, ``round``."""
    ids = [pipeline_id] if pipeline_id else [p["id"] for p in client.pipelines()]
    return _frame([r for i in ids for r in _finding_rows(client.pipeline(i))], "findings")
