"""Review pipelines: a change described once, a list of stages, and what each outcome leads to.

Pure: no I/O, no clock. The driver (:mod:`.pipelining`) turns task outcomes, check runs and
verdicts into calls of :func:`after_turn`, :func:`after_checks` and :func:`after_verdict`, and
applies the :class:`Decision` it gets back (with its reason) to the store, the tasks and git.

Nothing the implementer writes decides that the change is done: the criteria come from the
person, the verdicts from another agent, the checks from Hive Lab. Every loop is bounded (check
rounds per checks stage, review rounds per pipeline); past a bound the pipeline needs a person,
who may retry (one more round) or cancel.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from hive_lab.core.errors import BadRequest
from hive_lab.core.names import validate_name

from .scopes import validate_patterns
from .tasks import _CONTROL_RE, parse_check, parse_int, parse_ref, validate_repo

# -- stages and states ------------------------------------------------------------------------
IMPLEMENT, CHECKS, REVIEW, TESTS, READY = "implement", "checks", "review", "tests", "ready"
KINDS = (IMPLEMENT, CHECKS, REVIEW, TESTS, READY)
AGENT_KINDS = frozenset({IMPLEMENT, REVIEW, TESTS})
DEFAULT_STAGES = (IMPLEMENT, CHECKS, REVIEW, TESTS, CHECKS, READY)
DEFAULT_TEST_SCOPE = ("tests/**",)

P_RUNNING, P_NEEDS_YOU, P_READY, P_CANCELED = "running", "needs_you", "ready", "canceled"
P_STATES = (P_RUNNING, P_NEEDS_YOU, P_READY, P_CANCELED)

#: Stage rows (one per visit of a stage): running, then passed / changes / failed / needs_you /
#: canceled. ``changes``: a reviewer asked for changes; ``failed``: a check failed (it goes back).
S_RUNNING, S_PASSED, S_CHANGES, S_FAILED, S_NEEDS_YOU, S_CANCELED = (
    "running", "passed", "changes", "failed", "needs_you", "canceled")

MAX_ID = 48  # the stage tasks are named <id>-rev<i>-<n>: they must stay within 64 characters
MAX_PROMPT = 100_000
MAX_CRITERIA = 50
MAX_CRITERION = 2000
MAX_CHECKS = 20
MAX_STAGES = 20
MAX_FINDINGS = 100
MAX_FINDING_TEXT = 4000
SEVERITIES = ("info", "minor", "major", "critical")

# -- decisions -------------------------------------------------------------------------------
ADVANCE, FEEDBACK, ASK_AGAIN, NEEDS_YOU, TO_READY = (
    "advance", "feedback", "ask_again", "needs_you", "ready")


@dataclass(frozen=True)
class Decision:
    """What happens next, and why. ``goto`` is the next stage index; ``to_stage`` the agent
    stage whose session gets ``text`` as its next prompt; ``retry`` what a person's retry
    does after a ``needs_you`` (the decision the bound stopped)."""

    action: str
    reason: str
    goto: int | None = None
    to_stage: int | None = None
    text: str = ""
    stage_state: str = S_PASSED  # how the current stage's row ends
    next_round: bool = False  # a review asked for changes: the review round moves on
    retry: "Decision | None" = None


@dataclass(frozen=True)
class Finding:
    file: str
    line: int | None
    severity: str
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "severity": self.severity,
                "text": self.text}


@dataclass(frozen=True)
class Verdict:
    verdict: str  # approve | changes
    findings: tuple[Finding, ...] = ()
    summary: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "summary": self.summary,
                "findings": [f.to_json() for f in self.findings]}


@dataclass(frozen=True)
class CheckOutcome:
    argv: tuple[str, ...]
    passed: bool
    exit_code: int | None
    reason: str
    output_tail: str


# -- the spec at the edge --------------------------------------------------------------------
SPEC_FIELDS = ("id", "title", "prompt", "repo", "base", "scope", "criteria", "checks", "stages",
               "implementer", "reviewer", "tester", "test_scope", "max_review_rounds",
               "max_check_rounds", "budget")


@dataclass(frozen=True)
class PipelineSpec:
    """A validated ``POST pipelines`` body; ``repo`` is the repository root."""

    id: str
    title: str
    prompt: str
    repo: str
    base: str = "HEAD"
    scope: tuple[str, ...] = ()
    criteria: tuple[str, ...] = ()
    checks: tuple[tuple[str, ...], ...] = ()
    stages: tuple[str, ...] = DEFAULT_STAGES
    implementer: str | None = None
    reviewer: str | None = None
    tester: str | None = None
    test_scope: tuple[str, ...] = DEFAULT_TEST_SCOPE
    max_review_rounds: int = 3
    max_check_rounds: int = 3
    budget: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "prompt": self.prompt, "repo": self.repo,
                "base": self.base, "scope": list(self.scope), "criteria": list(self.criteria),
                "checks": [list(c) for c in self.checks], "stages": list(self.stages),
                "implementer": self.implementer, "reviewer": self.reviewer,
                "tester": self.tester, "test_scope": list(self.test_scope),
                "max_review_rounds": self.max_review_rounds,
                "max_check_rounds": self.max_check_rounds, "budget": self.budget}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "PipelineSpec":
        return cls(
            id=data["id"], title=data["title"], prompt=data["prompt"], repo=data["repo"],
            base=data["base"], scope=tuple(data["scope"]), criteria=tuple(data["criteria"]),
            checks=tuple(tuple(c) for c in data["checks"]), stages=tuple(data["stages"]),
            implementer=data["implementer"], reviewer=data["reviewer"], tester=data["tester"],
            test_scope=tuple(data["test_scope"]), max_review_rounds=data["max_review_rounds"],
            max_check_rounds=data["max_check_rounds"], budget=data.get("budget"))

    @classmethod
    def parse(cls, body: Any, find_repo: Callable[[str], str | None]) -> "PipelineSpec":
        if not isinstance(body, dict):
            raise BadRequest("pipeline body must be a JSON object")
        unknown = sorted(str(k)[:40] for k in body if k not in SPEC_FIELDS)
        if unknown:
            raise BadRequest(f"unknown pipeline field(s): {unknown}; allowed: {list(SPEC_FIELDS)}")
        pid = validate_name(body.get("id"), "pipeline id")
        if len(pid) > MAX_ID:
            raise BadRequest(f"pipeline id is {len(pid)} characters; at most {MAX_ID}")
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_PROMPT \
                or "\x00" in prompt:
            raise BadRequest(f"prompt must be a non-empty string of at most {MAX_PROMPT} "
                             "characters")
        title = body.get("title") or ""
        if not isinstance(title, str) or len(title) > 200:
            raise BadRequest("title must be a string of at most 200 characters")
        title = _CONTROL_RE.sub(" ", title).strip() or prompt.strip().splitlines()[0][:80]
        _, root = validate_repo(body.get("repo"), find_repo)
        scope = validate_patterns(body.get("scope"), "scope")
        if not scope:
            raise BadRequest("scope must list what the implementer may change (e.g. [\"src/**\"])")
        criteria = _criteria(body.get("criteria"))
        checks = _checks(body.get("checks"))
        stages = _stages(body.get("stages"), bool(checks))
        test_scope = (validate_patterns(body["test_scope"], "test_scope")
                      if body.get("test_scope") is not None else DEFAULT_TEST_SCOPE)
        if TESTS in stages and not test_scope:
            raise BadRequest("test_scope must not be empty when there is a tests stage")
        names = {}
        for key in ("implementer", "reviewer", "tester"):
            value = body.get(key)
            names[key] = None if value is None else validate_name(value, key)
        from .tasks import parse_budget
        return cls(
            id=pid, title=title, prompt=prompt, repo=os.path.realpath(root),
            base=parse_ref(body.get("base")), scope=scope, criteria=criteria, checks=checks,
            stages=stages, test_scope=test_scope,
            max_review_rounds=3 if body.get("max_review_rounds") is None else parse_int(
                body["max_review_rounds"], "max_review_rounds", 1, 20),
            max_check_rounds=3 if body.get("max_check_rounds") is None else parse_int(
                body["max_check_rounds"], "max_check_rounds", 1, 20),
            budget=parse_budget(body.get("budget")), **names)


def _criteria(value: Any) -> tuple[str, ...]:
    if value is None:
        raise BadRequest("criteria are required: what must be true for the change to be done "
                         "(a person writes them, not the implementer)")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or len(value) > MAX_CRITERIA:
        raise BadRequest(f"criteria must be a non-empty list of at most {MAX_CRITERIA} strings")
    out = []
    for item in value:
        if not isinstance(item, str) or not item.strip() or len(item) > MAX_CRITERION \
                or "\x00" in item:
            raise BadRequest(f"each criterion must be a non-empty string of at most "
                             f"{MAX_CRITERION} characters")
        out.append(item.strip())
    return tuple(out)


def _checks(value: Any) -> tuple[tuple[str, ...], ...]:
    """A list of argv lists, cheapest first (run in that order; the first failure stops)."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_CHECKS:
        raise BadRequest(f"checks must be a list of at most {MAX_CHECKS} argv lists")
    out = []
    for i, argv in enumerate(value):
        try:
            parsed = parse_check(argv)
        except BadRequest as exc:
            raise BadRequest(f"checks[{i}]: {exc.detail}") from None
        if parsed is None:
            raise BadRequest(f"checks[{i}] must be an argv list, not null")
        out.append(parsed)
    return tuple(out)


def _stages(value: Any, has_checks: bool) -> tuple[str, ...]:
    if value is None:
        stages = DEFAULT_STAGES if has_checks else tuple(s for s in DEFAULT_STAGES if s != CHECKS)
        return stages
    if not isinstance(value, list) or not value or len(value) > MAX_STAGES:
        raise BadRequest(f"stages must be a non-empty list of at most {MAX_STAGES} stage kinds")
    bad = [str(s)[:20] for s in value if s not in KINDS]
    if bad:
        raise BadRequest(f"unknown stage kind(s) {bad}; one of {list(KINDS)}")
    stages = tuple(value)
    if stages[0] != IMPLEMENT or stages.count(IMPLEMENT) != 1:
        raise BadRequest("stages must begin with implement, and have it once")
    if READY in stages[:-1]:
        raise BadRequest("ready can only be the last stage")
    if stages[-1] != READY:
        stages = (*stages, READY)
    if CHECKS in stages and not has_checks:
        raise BadRequest("a checks stage needs checks (a list of argv lists)")
    return stages


# -- the decisions ---------------------------------------------------------------------------
def owner_of(stages: tuple[str, ...], idx: int) -> int | None:
    """The agent stage whose work a checks stage at ``idx`` checks: the nearest implement or
    tests stage before it (a reviewer writes nothing, so it is never the owner)."""
    for i in range(idx - 1, -1, -1):
        if stages[i] in (IMPLEMENT, TESTS):
            return i
    return None


def advance(stages: tuple[str, ...], idx: int, reason: str,
            stage_state: str = S_PASSED) -> Decision:
    nxt = idx + 1
    if nxt >= len(stages) or stages[nxt] == READY:
        return Decision(TO_READY, reason + "; every stage passed: ready",
                        goto=len(stages) - 1, stage_state=stage_state)
    return Decision(ADVANCE, f"{reason}; next: {stages[nxt]}", goto=nxt, stage_state=stage_state)


def after_turn(stages: tuple[str, ...], idx: int) -> Decision:
    """An implementer's or tester's turn ended (its work is committed): on to the next stage."""
    return advance(stages, idx, f"the {stages[idx]} turn ended")


def after_checks(stages: tuple[str, ...], idx: int, outcomes: list[CheckOutcome],
                 failures_so_far: int, max_rounds: int) -> Decision:
    """All passed: on. A failure goes back to the owner's same session with its output, at
    most ``max_rounds`` times for this stage; then a person."""
    failed = next((o for o in outcomes if not o.passed), None)
    if failed is None:
        return advance(stages, idx, f"{len(outcomes)} check(s) passed")
    owner = owner_of(stages, idx)
    what = f"check {' '.join(failed.argv)[:120]!r} failed: {failed.reason}"
    back = Decision(FEEDBACK, f"{what}; its output goes back to the {stages[owner]} agent "
                    f"(round {failures_so_far + 1} of {max_rounds})" if owner is not None else what,
                    goto=owner, to_stage=owner, text=check_prompt(failed, failures_so_far + 1,
                                                                  max_rounds),
                    stage_state=S_FAILED)
    if owner is None:
        return Decision(NEEDS_YOU, f"{what}; no agent stage before it to fix it",
                        stage_state=S_NEEDS_YOU)
    if failures_so_far + 1 > max_rounds:
        return Decision(NEEDS_YOU, f"{what}; {max_rounds} round(s) of fixes did not pass: "
                        "a person decides (retry gives one more round)", stage_state=S_NEEDS_YOU,
                        retry=back)
    return back


def implement_index(stages: tuple[str, ...]) -> int:
    return stages.index(IMPLEMENT)


def after_verdict(stages: tuple[str, ...], idx: int, verdict: Verdict | None, error: str,
                  asked_again: bool, review_round: int, max_rounds: int) -> Decision:
    """approve: on. changes: the findings go to the implementer's same session and checks and
    review run again, at most ``max_rounds`` rounds. Malformed: asked once more, then a person."""
    if verdict is None:
        ask = Decision(ASK_AGAIN, f"the review verdict is malformed ({error}); asked once more",
                       goto=idx, to_stage=idx, text=ask_again_prompt(error),
                       stage_state=S_FAILED)
        if not asked_again:
            return ask
        return Decision(NEEDS_YOU, f"the review verdict is malformed again ({error}): a person "
                        "decides", stage_state=S_NEEDS_YOU, retry=ask)
    if verdict.verdict == "approve":
        return advance(stages, idx, f"the reviewer approved (round {review_round})")
    impl = implement_index(stages)
    n = len(verdict.findings)
    back = Decision(FEEDBACK, f"the reviewer asked for changes ({n} finding(s), round "
                    f"{review_round} of {max_rounds}); they go to the implementer",
                    goto=impl, to_stage=impl, text=changes_prompt(verdict, review_round),
                    stage_state=S_CHANGES, next_round=True)
    if review_round >= max_rounds:
        return Decision(NEEDS_YOU, f"the reviewer still asks for changes after {review_round} "
                        f"round(s) ({n} finding(s)): a person decides", stage_state=S_NEEDS_YOU,
                        retry=back)
    return back


# -- verdicts ---------------------------------------------------------------------------------
_FENCE_RE = re.compile(r"```(?:json|JSON)?[ \t]*\n(.*?)```", re.S)


def parse_verdict(text: Any) -> tuple[Verdict | None, str]:
    """The verdict in a reviewer's message: the last fenced JSON block (or the whole text as
    JSON). (verdict, "") or (None, what is wrong). The text is hostile: bounded, validated."""
    if not isinstance(text, str) or not text.strip():
        return None, "no message from the reviewer"
    text = text[-200_000:]
    blocks = _FENCE_RE.findall(text)
    candidates = [b for b in reversed(blocks)] or [text]
    last_error = "no JSON block"
    if not blocks:
        try:
            return verdict_from(json.loads(text))
        except ValueError:
            return None, "no fenced JSON block in the last message, and it is not JSON itself"
    for raw in candidates:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            last_error = f"the JSON block does not parse: {exc}"[:200]
            continue
        return verdict_from(data)
    return None, last_error


def verdict_from(data: Any) -> tuple[Verdict | None, str]:
    if not isinstance(data, dict):
        return None, "the verdict must be a JSON object"
    kind = data.get("verdict")
    if kind not in ("approve", "changes"):
        return None, "\"verdict\" must be \"approve\" or \"changes\""
    summary = data.get("summary", "")
    summary = _clean(summary, 2000) if isinstance(summary, str) else ""
    raw = data.get("findings", [])
    if not isinstance(raw, list) or len(raw) > MAX_FINDINGS:
        return None, f"\"findings\" must be a list of at most {MAX_FINDINGS} objects"
    findings = []
    for i, f in enumerate(raw):
        if not isinstance(f, dict):
            return None, f"findings[{i}] must be an object"
        file, line, sev, body = f.get("file"), f.get("line"), f.get("severity", "major"), f.get("text")
        if not isinstance(file, str) or not file or len(file) > 1000:
            return None, f"findings[{i}].file must be a repository-relative path"
        if line is not None and (isinstance(line, bool) or not isinstance(line, int)
                                 or not 0 <= line <= 10**9):
            return None, f"findings[{i}].line must be a line number or null"
        if sev not in SEVERITIES:
            return None, f"findings[{i}].severity must be one of {list(SEVERITIES)}"
        if not isinstance(body, str) or not body.strip():
            return None, f"findings[{i}].text must be a non-empty string"
        findings.append(Finding(_clean(file, 1000), line, sev, _clean(body, MAX_FINDING_TEXT)))
    if kind == "changes" and not findings:
        return None, "a \"changes\" verdict needs at least one finding"
    return Verdict(kind, tuple(findings), summary), ""


def _clean(text: str, cap: int) -> str:
    return _CONTROL_RE.sub(" ", text)[:cap]


# -- prompts ----------------------------------------------------------------------------------
VERDICT_FORMAT = """End your last message with your verdict as one fenced JSON block, exactly:
```json
{"verdict": "approve", "summary": "one line"}
```
or, when something must change:
```json
{"verdict": "changes", "summary": "one line", "findings": [{"file": "src/x.py", "line": 12, "severity": "major", "text": "what is wrong and what to do"}]}
```
severity is one of info, minor, major, critical."""


def _criteria_text(criteria: tuple[str, ...]) -> str:
    return "\n".join(f"- {c}" for c in criteria)


def implement_prompt(spec: PipelineSpec) -> str:
    return (f"{spec.prompt}\n\nAcceptance criteria (written by the person who asked):\n"
            f"{_criteria_text(spec.criteria)}\n\nYou may change only: {', '.join(spec.scope)}. "
            "Hive Lab commits your work when your turn ends, runs the checks, and an "
            "independent reviewer reads it; you will get their findings here.")


def review_prompt(spec: PipelineSpec, diff: str, truncated: bool, round_no: int,
                  base_sha: str = "") -> str:
    cut = (f"\n(the diff was cut: `git diff {base_sha[:12]} HEAD` shows all of it)"
           if truncated else "")
    return (f"You are the reviewer of the change \"{spec.title}\" (review round {round_no}). "
            "Your worktree is at the implementer's branch head; you are read-only: do not "
            "change any file, only read and judge.\n\nThe request:\n"
            f"{spec.prompt}\n\nAcceptance criteria:\n{_criteria_text(spec.criteria)}\n\n"
            f"The diff against the base:\n```diff\n{diff}\n```{cut}\n\n{VERDICT_FORMAT}")


def tests_prompt(spec: PipelineSpec, diff: str, truncated: bool, base_sha: str = "") -> str:
    cut = (f"\n(the diff was cut: `git diff {base_sha[:12]} HEAD` shows all of it)"
           if truncated else "")
    return (f"Write tests for the change \"{spec.title}\". You may change only "
            f"{', '.join(spec.test_scope)}.\n\nWhat was asked:\n{spec.prompt}\n\nAcceptance "
            f"criteria:\n{_criteria_text(spec.criteria)}\n\nWhat changed:\n```diff\n{diff}\n```"
            f"{cut}\n\nHive Lab commits your tests and runs the checks when your turn ends.")


def check_prompt(failed: CheckOutcome, round_no: int, max_rounds: int) -> str:
    tail = failed.output_tail[-3000:]
    return (f"The check `{' '.join(failed.argv)[:200]}` failed ({failed.reason}; round "
            f"{round_no} of {max_rounds}). Its output ends:\n```\n{tail}\n```\nFix it.")


def changes_prompt(verdict: Verdict, round_no: int) -> str:
    lines = [f"- {f.file}{':' + str(f.line) if f.line is not None else ''} [{f.severity}] "
             f"{f.text}" for f in verdict.findings]
    summary = f"\n{verdict.summary}" if verdict.summary else ""
    return (f"An independent reviewer asked for changes (round {round_no}):{summary}\n"
            + "\n".join(lines) + "\nAddress every finding, within your scope.")


def ask_again_prompt(error: str) -> str:
    return (f"Your verdict could not be read ({error}). Reply again with only the verdict.\n"
            + VERDICT_FORMAT)


# -- the record -------------------------------------------------------------------------------
@dataclass
class Pipeline:
    """A pipeline's state: where it is (``stage`` index, review ``round``) and ``cursor``, the
    driver's bookkeeping (stage tasks, handled rounds, pending feedback, failure counts)."""

    spec: PipelineSpec
    state: str = P_RUNNING
    state_reason: str = "created"
    state_since: float = 0.0
    created: float = 0.0
    stage: int = 0
    round: int = 1
    base_sha: str = ""
    base_branch: str | None = None
    cursor: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def kind(self) -> str:
        return self.spec.stages[self.stage]

    def to_json(self) -> dict[str, Any]:
        return {**self.spec.to_json(), "state": {"name": self.state, "reason": self.state_reason,
                                                 "since": self.state_since},
                "created": self.created, "stage": self.stage, "stage_kind": self.kind,
                "round": self.round, "base_sha": self.base_sha, "base_branch": self.base_branch,
                "branch": f"hive/{implement_task_id(self.id)}",
                "tasks": dict(self.cursor.get("tasks", {}))}


def implement_task_id(pid: str) -> str:
    return f"{pid}-impl"


def stage_task_id(pid: str, kind: str, idx: int, n: int) -> str:
    short = {IMPLEMENT: "impl", REVIEW: "rev", TESTS: "test"}[kind]
    return implement_task_id(pid) if kind == IMPLEMENT else f"{pid}-{short}{idx}-{n}"
