"""Benchmark: ``hive-lab usage --json --by session`` against ccusage 18.0.11, two corpus shapes.

One command: ``python benchmarks/bench_usage.py``. For each shape (``large``: ~212 MB in ~800
long sessions' files; ``short``: ~220 MB in ~14,600 files of one-turn sessions, issue 9) it

1. builds a corpus of Claude Code transcripts under ``benchmarks/_work/corpus/<shape>``
   (gitignored): two halves ``a`` and ``b``, every half a ``<root>/projects/<slug>/`` tree
   as Claude Code writes it. Lines follow Claude Code 2.1.x (see the sample transcript in
   ../shared/samples): one line per content block with the same ``message.id``/``requestId``
   and usage, thinking blocks with signatures, tool results echoed in ``toolUseResult``,
   file-history snapshots, subagent sidechain files (``<session>/subagents/agent-*.jsonl``),
   Task results carrying a ``usage`` object of their own, resumed sessions that copy the whole
   history into a new file, older sessions with the 1.0.x key order, non-ASCII text, and
   tool inputs with ``model``/``usage``/``message`` keys. The generator knows the true
   deduplicated totals;
2. checks that the fast line parser gives exactly the full ``json.loads`` parser's rows on
   every usage-bearing line of the corpus;
3. runs ours on one half and on both, and ccusage (``npx --yes ccusage@18.0.11`` installed into
   a local npm cache, then its ``dist/index.js`` run straight under node so npx start-up is
   not counted against it) on both, interleaved, each in its own child process, measuring
   wall time, CPU time and that child's peak RSS (``/usr/bin/time``);
4. compares token totals (ours == ccusage == generator) and, for the models ccusage prices
   offline, the cost per model; checks our output is the same bytes in every run; prints a
   summary. Targets: >= 15x ccusage (median/median) and peak RSS < 100 MB on every shape;
   exit status 1 if any is missed. Nothing is written besides the corpus.

``--shapes large,short`` picks shapes, ``--half-mb N`` changes the corpus size, ``--keep``
reuses an existing corpus, ``--runs N`` repeats our timing (median reported).
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / "_work"
CORPUS = WORK / "corpus"
NPM_CACHE = WORK / "npm-cache"
CCUSAGE = "ccusage@18.0.11"
VERSION_TAG = "bench-usage-corpus-v1"

sys.path.insert(0, str(REPO))

# ccusage 18.0.11's offline table prices these (it has no claude-opus-4-8: $0 there).
CCUSAGE_PRICED = {"claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"}
MODELS = [("claude-opus-4-8", 0.7), ("claude-sonnet-4-5-20250929", 0.2),
          ("claude-haiku-4-5-20251001", 0.1)]
TOKEN_KEYS = ("inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens")


# --------------------------------------------------------------------------------------------
# Text material
# --------------------------------------------------------------------------------------------

WORDS = ("the of and to in is that for it as with was on be by this are file function return "
         "value error test data line code import class def self config path request session "
         "agent token cache model output input parse stream buffer offset handler server").split()
UNICODE_BITS = ["naïve café", "— em dash", "✓ done", "日本語のテキスト", "Größe", "emoji 🚀", "€ 12,50"]


class Material:
    """Big pre-made strings to slice: generating text per line would dominate the build."""

    def __init__(self, rng: random.Random):
        words = [rng.choice(WORDS) for _ in range(400_000)]
        for i in range(0, len(words), 97):
            words[i] += ".\n" if i % 3 else ","
        for i in range(0, len(words), 1201):
            words[i] = rng.choice(UNICODE_BITS)
        self.prose = " ".join(words)
        lines = []
        for i in range(60_000):
            indent = "    " * rng.randint(0, 3)
            lines.append(f'{indent}x{i % 97} = call("{rng.choice(WORDS)}", {rng.randint(0, 999)})'
                         f'  # {rng.choice(WORDS)} {{"k": [1, 2]}} \\ tab\t')
        self.code = "\n".join(lines)
        self.b64 = base64.b64encode(rng.randbytes(3_000_000)).decode()
        self.rng = rng

    def _slice(self, s: str, n: int) -> str:
        start = self.rng.randrange(0, max(1, len(s) - n))
        return s[start:start + n]

    def text(self, n: int) -> str:
        return self._slice(self.prose, n)

    def source(self, n: int) -> str:
        return self._slice(self.code, n)

    def signature(self) -> str:
        return self._slice(self.b64, self.rng.randint(400, 1600))


def lognorm_size(rng: random.Random, median: float, sigma: float, lo: int, hi: int) -> int:
    return int(min(hi, max(lo, rng.lognormvariate(0, sigma) * median)))


@dataclass(frozen=True)
class Shape:
    """How sessions look: ``large`` = long sessions (few large files), ``short`` = many
    one-off sessions of a turn or two (``claude -p`` in scripts, quick questions): a report
    over them is dominated by per-file and per-session costs, not by bytes."""

    name: str
    turns: tuple[int, int]  # user turns per session
    steps: tuple[int, int]  # API responses per user turn (until one without tool use)
    scale: float  # multiplies the sizes of tool inputs and results
    gap_minutes: tuple[int, int]  # between session starts


SHAPES = {
    "large": Shape("large", (3, 40), (1, 12), 1.0, (10, 600)),
    "short": Shape("short", (1, 1), (1, 3), 0.25, (1, 90)),
}


# --------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------


@dataclass
class Expected:
    """What a correct tool must report: deduplicated token sums, overall and per model."""

    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOKEN_KEYS, 0))
    per_model: dict[str, dict[str, int]] = field(default_factory=dict)
    responses: int = 0
    lines: int = 0
    duplicate_lines: int = 0
    files: int = 0
    sessions: int = 0
    resumed: int = 0
    subagent_files: int = 0
    bytes: int = 0

    def add(self, model: str, usage: dict[str, Any]) -> None:
        vals = (usage["input_tokens"], usage["output_tokens"],
                usage["cache_creation_input_tokens"], usage["cache_read_input_tokens"])
        per = self.per_model.setdefault(model, dict.fromkeys(TOKEN_KEYS, 0))
        for k, v in zip(TOKEN_KEYS, vals):
            self.tokens[k] += v
            per[k] += v
        self.responses += 1

    def merge(self, other: "Expected") -> None:
        for k in TOKEN_KEYS:
            self.tokens[k] += other.tokens[k]
        for m, t in other.per_model.items():
            mine = self.per_model.setdefault(m, dict.fromkeys(TOKEN_KEYS, 0))
            for k in TOKEN_KEYS:
                mine[k] += t[k]
        for k in ("responses", "lines", "duplicate_lines", "files", "sessions", "resumed",
                  "subagent_files", "bytes"):
            setattr(self, k, getattr(self, k) + getattr(other, k))


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class SessionWriter:
    """Writes one Claude Code session (and its subagent files) the way the CLI does."""

    def __init__(self, gen: "CorpusGen", project_dir: Path, cwd: str, start: datetime):
        self.gen, self.rng, self.mat = gen, gen.rng, gen.mat
        self.project_dir, self.cwd = project_dir, cwd
        self.session_id = gen.uuid()
        self.t = start
        self.lines: list[str] = []
        self.parent: str | None = None
        self.old_layout = self.rng.random() < 0.15
        self.model = self.rng.choices([m for m, _ in MODELS], [w for _, w in MODELS])[0]
        self.ttl_1h = self.model == "claude-opus-4-8" and self.rng.random() < 0.3
        self.context = self.rng.randint(8_000, 20_000)
        self.branch = self.rng.choice(["main", "master", "feature/usage", "fix-42"])

    # -- line envelopes ------------------------------------------------------------------
    def tick(self, lo: float = 0.05, hi: float = 3.0) -> str:
        self.t += timedelta(seconds=self.rng.uniform(lo, hi))
        return self.t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.t.microsecond // 1000:03d}Z"

    def envelope(self, kind: str, body: dict[str, Any], sidechain: bool = False,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
        me = self.gen.uuid()
        common = {"userType": "external", "entrypoint": "cli", "cwd": self.cwd,
                  "sessionId": self.session_id, "version": "2.1.197", "gitBranch": self.branch}
        if self.old_layout:
            d = {"parentUuid": self.parent, "isSidechain": sidechain, **common, **body,
                 "type": kind, "uuid": me, "timestamp": self.tick()}
        else:
            d = {"parentUuid": self.parent, "isSidechain": sidechain, **body, "type": kind,
                 "uuid": me, "timestamp": self.tick(), **common}
        if extra:
            d.update(extra)
        self.parent = me
        return d

    def emit(self, d: dict[str, Any], out: list[str] | None = None) -> None:
        (self.lines if out is None else out).append(dumps(d))

    # -- content ---------------------------------------------------------------------------
    def usage(self, model: str, first: bool) -> dict[str, Any]:
        rng = self.rng
        write = rng.randint(200, 6_000) if not first else rng.randint(4_000, 14_000)
        read = min(self.context, 190_000 - write - 200)
        self.context = min(self.context + write, 180_000)
        one_hour = self.ttl_1h and model == self.model
        quirk = rng.random() < 0.1  # breakdown all zeros while the total is not (2.1.197)
        breakdown = {"ephemeral_1h_input_tokens": 0 if quirk or not one_hour else write,
                     "ephemeral_5m_input_tokens": 0 if quirk or one_hour else write}
        return {"input_tokens": rng.randint(1, 60) if not first else rng.randint(500, 3_000),
                "cache_creation_input_tokens": write, "cache_read_input_tokens": read,
                "output_tokens": rng.randint(20, 2_500),
                "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
                "service_tier": "standard", "cache_creation": breakdown, "inference_geo": "",
                "iterations": [], "speed": "standard"}

    def blocks(self) -> list[dict[str, Any]]:
        rng, mat = self.rng, self.mat
        out: list[dict[str, Any]] = []
        scale = self.gen.shape.scale
        if rng.random() < 0.6:
            out.append({"type": "thinking", "thinking": mat.text(int(rng.randint(200, 3_000) * scale)),
                        "signature": mat.signature()})
        if rng.random() < 0.5:
            out.append({"type": "text", "text": mat.text(int(rng.randint(40, 1_500) * scale))})
        if rng.random() < 0.75 or not out:
            out.append(self.tool_use())
        return out

    def tool_use(self) -> dict[str, Any]:
        rng, mat = self.rng, self.mat
        tid = "toolu_01" + self.gen.token(22)
        r = rng.random()
        if r < 0.3:
            return {"type": "tool_use", "id": tid, "name": "Read",
                    "input": {"file_path": f"{self.cwd}/src/{rng.choice(WORDS)}.py"}}
        if r < 0.55:
            return {"type": "tool_use", "id": tid, "name": "Bash",
                    "input": {"command": f"pytest -q tests/test_{rng.choice(WORDS)}.py",
                              "description": mat.text(40)}}
        if r < 0.75:
            size = lognorm_size(rng, 2_500 * self.gen.shape.scale, 1.0, 100, 60_000)
            return {"type": "tool_use", "id": tid, "name": "Write",
                    "input": {"file_path": f"{self.cwd}/src/{rng.choice(WORDS)}.py",
                              "content": mat.source(size)}}
        if r < 0.92:
            return {"type": "tool_use", "id": tid, "name": "Edit",
                    "input": {"file_path": f"{self.cwd}/src/{rng.choice(WORDS)}.py",
                              "old_string": mat.source(rng.randint(50, 800)),
                              "new_string": mat.source(rng.randint(50, 1_200))}}
        if r < 0.97:
            return {"type": "tool_use", "id": tid, "name": "Task",
                    "input": {"description": "explore", "prompt": mat.text(300),
                              "subagent_type": "Explore", "model": "haiku"}}
        # an MCP tool whose input has keys that also mean something at the top level
        return {"type": "tool_use", "id": tid, "name": "mcp__metrics__record",
                "input": {"model": "gpt-x", "message": {"id": "m1", "role": "assistant"},
                          "usage": {"input_tokens": 999, "output_tokens": 1},
                          "timestamp": "2020-01-01T00:00:00Z", "sessionId": "not-this-one"}}

    def tool_result(self, tool: dict[str, Any]) -> dict[str, Any]:
        rng, mat = self.rng, self.mat
        name = tool["name"]
        if name == "Read":
            content = mat.source(lognorm_size(rng, 4_000 * self.gen.shape.scale, 1.1, 200, 120_000))
            result: Any = {"type": "text", "file": {"filePath": tool["input"]["file_path"],
                           "content": content, "numLines": content.count("\n") + 1,
                           "startLine": 1, "totalLines": content.count("\n") + 1}}
        elif name == "Bash":
            content = mat.text(lognorm_size(rng, 1_500 * self.gen.shape.scale, 1.2, 20, 60_000))
            result = {"stdout": content, "stderr": "", "interrupted": False, "isImage": False}
        elif name == "Task":
            content = mat.text(rng.randint(300, 3_000))
            result = {"status": "completed", "prompt": tool["input"]["prompt"],
                      "agentId": self.gen.token(8).lower(),
                      "content": [{"type": "text", "text": content}],
                      "totalDurationMs": rng.randint(2_000, 90_000), "totalTokens": 51_234,
                      "totalToolUseCount": 7,
                      "usage": {"input_tokens": 40, "cache_creation_input_tokens": 3_000,
                                "cache_read_input_tokens": 40_000, "output_tokens": 900,
                                "service_tier": "standard"}}
        else:
            content = f"The file {tool['input'].get('file_path', 'x')} has been updated."
            result = {"filePath": tool["input"].get("file_path"), "oldString": "",
                      "newString": "", "structuredPatch": [], "userModified": False}
        self.context += len(content) // 4
        body = {"message": {"role": "user", "content": [
            {"tool_use_id": tool["id"], "type": "tool_result", "content": content}]}}
        return self.envelope("user", body, extra={"toolUseResult": result,
                                                  "sourceToolAssistantUUID": self.parent})

    def response(self, model: str, first: bool, sidechain: bool, out: list[str],
                 agent_id: str | None = None) -> list[dict[str, Any]]:
        """One API response: one line per content block, same ids and usage on each."""
        msg_id = "msg_01" + self.gen.token(22)
        req_id = "req_011C" + self.gen.token(20)
        usage = self.usage(model, first)
        blocks = self.blocks()
        for block in blocks:
            body = {"message": {"id": msg_id, "type": "message", "role": "assistant",
                                "model": model, "content": [block],
                                "stop_reason": "tool_use" if block["type"] == "tool_use" else None,
                                "stop_sequence": None, "usage": usage, "stop_details": None},
                    "requestId": req_id}
            extra = {"agentId": agent_id} if agent_id else None
            self.emit(self.envelope("assistant", body, sidechain, extra), out)
        self.gen.expected.add(model, usage)
        self.gen.expected.duplicate_lines += len(blocks) - 1
        return [b for b in blocks if b["type"] == "tool_use"]

    # -- whole session -----------------------------------------------------------------------
    def write(self) -> list[str]:
        rng = self.rng
        self.emit({"type": "file-history-snapshot", "messageId": self.gen.uuid(),
                   "snapshot": {"messageId": self.gen.uuid(), "trackedFileBackups": {},
                                "timestamp": self.tick()}, "isSnapshotUpdate": False})
        for turn in range(rng.randint(*self.gen.shape.turns)):
            if rng.random() < 0.04:
                self.t += timedelta(hours=rng.uniform(5.5, 30))  # the user went away
            self.user_turn(first=turn == 0)
        return self.lines

    def user_turn(self, first: bool) -> None:
        rng = self.rng
        self.tick(5, 300)
        self.emit(self.envelope("user", {"message": {"role": "user",
                                                      "content": self.mat.text(rng.randint(20, 900))}},
                                extra={"promptId": self.gen.uuid(), "permissionMode": "default"}))
        if rng.random() < 0.3:
            self.emit(self.envelope("attachment", {"attachment": {
                "type": "todo_reminder", "content": [{"content": self.mat.text(80),
                                                       "status": "pending"}] * 3}}))
        for step in range(rng.randint(*self.gen.shape.steps)):
            tools = self.response(self.model, first and step == 0, False, self.lines)
            if not tools:
                break
            for tool in tools:
                if tool["name"] == "Task":
                    self.subagent()
                self.emit(self.tool_result(tool))
            if rng.random() < 0.25:
                self.emit({"type": "file-history-snapshot", "messageId": self.gen.uuid(),
                           "snapshot": {"messageId": self.gen.uuid(), "trackedFileBackups": {
                               f"{self.cwd}/src/{w}.py": {"backupFileName": f"{self.gen.token(16)}@v2",
                                                          "version": 2, "backupTime": self.tick()}
                               for w in rng.sample(WORDS, 4)}, "timestamp": self.tick()},
                           "isSnapshotUpdate": True})
        if rng.random() < 0.05:  # an API error: a local <synthetic> message, no requestId
            self.emit(self.envelope("assistant", {"message": {
                "id": self.gen.uuid(), "model": "<synthetic>", "role": "assistant",
                "stop_reason": "stop_sequence", "stop_sequence": "", "type": "message",
                "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": 0},
                "content": [{"type": "text", "text": "API Error: 529 overloaded"}]}},
                extra={"isApiErrorMessage": True}))

    def subagent(self) -> None:
        """A Task subagent: its own sidechain file under <session>/subagents/."""
        rng = self.rng
        agent_id = self.gen.token(8).lower()
        out: list[str] = []
        saved_parent, saved_ctx = self.parent, self.context
        self.parent, self.context = None, rng.randint(5_000, 15_000)
        model = rng.choice(["claude-haiku-4-5-20251001", "claude-sonnet-4-5-20250929"])
        self.emit(self.envelope("user", {"message": {"role": "user", "content": self.mat.text(400)}},
                                True, {"agentId": agent_id}), out)
        for step in range(rng.randint(2, 8)):
            tools = self.response(model, step == 0, True, out, agent_id)
            for tool in tools:
                d = self.tool_result(tool)
                d["isSidechain"], d["agentId"] = True, agent_id
                self.emit(d, out)
        self.parent, self.context = saved_parent, saved_ctx
        path = self.project_dir / self.session_id / "subagents" / f"agent-{agent_id}.jsonl"
        self.gen.write_file(path, out, self.t)
        self.gen.expected.subagent_files += 1


class CorpusGen:
    """Builds one half: projects of sessions until ``target`` bytes are written."""

    def __init__(self, root: Path, target: int, seed: int, mat: Material,
                 shape: Shape = SHAPES["large"]):
        self.root, self.target, self.shape = root, target, shape
        self.rng = random.Random(seed)
        self.mat = mat
        mat.rng = self.rng
        self.expected = Expected()

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def token(self, n: int) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        return "".join(self.rng.choices(alphabet, k=n))

    def write_file(self, path: Path, lines: list[str], when: datetime) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = ("\n".join(lines) + "\n").encode()
        path.write_bytes(data)
        stamp = when.timestamp()
        os.utime(path, (stamp, stamp))
        self.expected.bytes += len(data)
        self.expected.lines += len(lines)
        self.expected.files += 1

    def build(self) -> Expected:
        projects = [f"/home/dev/src/{name}" for name in
                    ("alpha", "beta", "gamma-service", "delta_ui", "epsilon", "zeta-infra",
                     "eta", "theta-ml", "iota", "kappa", "lambda-api", "mu")]
        t = datetime(2026, 10, 1, 8, 0, tzinfo=timezone.utc) + timedelta(days=self.rng.randint(0, 20))
        while self.expected.bytes < self.target:
            cwd = self.rng.choice(projects)
            project_dir = self.root / "projects" / "".join(c if c.isalnum() else "-" for c in cwd)
            s = SessionWriter(self, project_dir, cwd, t)
            lines = s.write()
            self.write_file(project_dir / f"{s.session_id}.jsonl", lines, s.t)
            self.expected.sessions += 1
            if self.rng.random() < 0.1:
                self.resume(s, lines)
            t += timedelta(minutes=self.rng.randint(*self.shape.gap_minutes))
        return self.expected

    def resume(self, s: SessionWriter, history: list[str]) -> None:
        """``claude --resume``: a new session file that starts with a copy of the history."""
        new_id = self.uuid()
        copied = [line.replace(s.session_id, new_id) for line in history]
        s.session_id, s.lines = new_id, copied
        s.t += timedelta(minutes=self.rng.randint(1, 120))
        for _ in range(self.rng.randint(1, 6)):
            s.user_turn(first=False)
        self.expected.duplicate_lines += sum('"usage":{' in line for line in history
                                             if '"type":"assistant"' in line)
        self.write_file(s.project_dir / f"{new_id}.jsonl", s.lines, s.t)
        self.expected.sessions += 1
        self.expected.resumed += 1


def build_corpus(half_mb: float, keep: bool, shape: Shape = SHAPES["large"]) -> tuple[list[Path], Expected]:
    """Two halves under CORPUS/<shape>/{a,b}; reuse them when ``keep`` and the manifest matches."""
    where = CORPUS / shape.name
    manifest = where / "manifest.json"
    want = {"tag": VERSION_TAG, "half_mb": half_mb, "shape": shape.__dict__}
    halves = [where / "a", where / "b"]
    if keep and manifest.exists():
        saved = json.loads(manifest.read_text())
        if saved.get("params") == json.loads(json.dumps(want)):
            exp = Expected(**{k: v for k, v in saved["expected"].items()})
            return halves, exp
    if where.exists():
        shutil.rmtree(where)
    total = Expected()
    mat = Material(random.Random(7))
    for i, half in enumerate(halves):
        gen = CorpusGen(half, int(half_mb * 1e6), seed=1000 + i, mat=mat, shape=shape)
        total.merge(gen.build())
    manifest.write_text(json.dumps({"params": want, "expected": total.__dict__}))
    return halves, total


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


@dataclass
class Run:
    wall: float
    cpu: float
    max_rss_mb: float
    stdout: str


def measure(cmd: list[str], env: dict[str, str] | None = None) -> Run:
    """Run ``cmd`` as a child: wall time, CPU time and peak RSS of that command alone.

    The RSS comes from ``/usr/bin/time -o``, which forks from a tiny process: the
    ``ru_maxrss`` that ``os.wait4`` reports for a child forked from this (large) benchmark
    process also counts the pages it shared with us until its exec. Without
    ``/usr/bin/time``, falls back to ``os.wait4`` (an upper bound).
    """
    timer = Path("/usr/bin/time")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as stat:
        full = [str(timer), "-f", "%U %S %M", "-o", stat.name, *cmd] if timer.exists() else cmd
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdout=out, stderr=err, env=env, cwd=str(WORK))
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[:3]} failed ({proc.returncode}): {err.read().decode()[-2000:]}")
        if timer.exists():
            user, system, rss_kb = stat.read().split()[-3:]
            cpu, rss = float(user) + float(system), int(rss_kb) / 1024
        else:
            cpu, rss = ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024
        return Run(wall, cpu, rss, out.read().decode())


def ccusage_command() -> list[str]:
    """Install ccusage 18.0.11 through npx into a local npm cache; return ``node <its bin>``."""
    env = {**os.environ, "npm_config_cache": str(NPM_CACHE), "npm_config_update_notifier": "false"}
    subprocess.run(["npx", "--yes", CCUSAGE, "--version"], env=env, check=True, cwd=str(WORK),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    found = sorted(NPM_CACHE.glob("_npx/*/node_modules/ccusage/package.json"))
    for pkg in found:
        if json.loads(pkg.read_text()).get("version") == "18.0.11":
            return ["node", str(pkg.parent / "dist" / "index.js")]
    raise RuntimeError("ccusage 18.0.11 not found in the npx cache after install")


def ours_command(paths: list[Path]) -> list[str]:
    return [sys.executable, "-m", "hive_lab.usage.report", "--json", "--by", "session",
            *map(str, paths)]


def ours_env() -> dict[str, str]:
    """Like an installed package: bytecode may be cached (this sandbox sets
    PYTHONDONTWRITEBYTECODE, which would recompile hive_lab on every run)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def check_fast_parser(halves: list[Path]) -> tuple[int, int, int]:
    """(usage lines, lines the fast path handled, mismatches) over the whole corpus."""
    from hive_lab.usage.parse import _split_fast, collect_files, parse_claude_line

    lines = fast = bad = 0
    for path in collect_files(halves):
        with open(path, "rb") as f:
            for line in f:
                if b'"usage"' not in line:
                    continue
                lines += 1
                fast += _split_fast(line) is not None
                if parse_claude_line(line, "x") != parse_claude_line(line, "x", fast=False):
                    bad += 1
    return lines, fast, bad


def token_totals(doc: dict[str, Any]) -> dict[str, int]:
    return {k: doc["totals"][k] for k in TOKEN_KEYS}


def model_costs(doc: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for s in doc["sessions"]:
        for m in s["modelBreakdowns"]:
            out[m["modelName"]] += m["cost"] or 0.0
    return dict(out)


def expected_cost(exp: Expected, model: str) -> float:
    """Cost of the 5-minute-TTL models from the generator's own counts (FACTS.md formula)."""
    p, q = {"claude-sonnet-4-5-20250929": (3, 15), "claude-haiku-4-5-20251001": (1, 5)}[model]
    t = exp.per_model[model]
    return (t["inputTokens"] * p + t["outputTokens"] * q + t["cacheCreationTokens"] * 1.25 * p
            + t["cacheReadTokens"] * 0.1 * p) / 1e6


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


TARGET_RATIO = 15.0  # issue 9: at least 15x faster than ccusage 18.0.11, in the same run
TARGET_RSS_MB = 100.0
DEFAULT_HALF_MB = {"large": 105.0, "short": 110.0}


def bench_shape(shape: Shape, args: argparse.Namespace, cc_cmd: list[str]) -> tuple[bool, str]:
    """Build, check and time one corpus shape; returns (targets met, one summary line)."""
    t0 = time.perf_counter()
    half_mb = args.half_mb or DEFAULT_HALF_MB[shape.name]
    halves, exp = build_corpus(half_mb, args.keep, shape)
    print(f"\n== shape {shape.name}: {exp.bytes / 1e6:.1f} MB, {exp.files} files "
          f"({exp.subagent_files} subagent, {exp.resumed} resumed copies), {exp.sessions} "
          f"sessions, {exp.lines} lines, {exp.responses} API responses, {exp.duplicate_lines} "
          f"duplicate usage lines [{time.perf_counter() - t0:.1f} s]")
    half_a_mb = sum(f.stat().st_size for f in halves[0].rglob("*.jsonl")) / 1e6

    if not args.skip_fast_check:
        t0 = time.perf_counter()
        n, fast, bad = check_fast_parser(halves)
        print(f"fast parser vs json.loads: {n} usage lines, {fast} on the fast path, "
              f"{bad} mismatches [{time.perf_counter() - t0:.1f} s]")
        if bad:
            print("FAIL: fast parser disagrees with the reference parser")
            return False, f"{shape.name}: fast parser mismatch"

    cc_env = {**os.environ, "CLAUDE_CONFIG_DIR": ",".join(map(str, halves)), "NO_COLOR": "1"}
    measure(ours_command([halves[0] / "projects"]), ours_env())  # warm-up: bytecode cache
    ccs: list[Run] = []
    ours_full: list[Run] = []
    ours_half: list[Run] = []
    for i in range(max(args.runs, args.cc_runs)):  # interleaved, so drift hits both
        if i < args.cc_runs:
            ccs.append(measure(cc_cmd + ["session", "--json", "--offline"], cc_env))
        if i < args.runs:
            ours_full.append(measure(ours_command([h / "projects" for h in halves]), ours_env()))
            ours_half.append(measure(ours_command([halves[0] / "projects"]), ours_env()))

    cc_doc, our_doc = json.loads(ccs[0].stdout), json.loads(ours_full[0].stdout)
    same_output = all(r.stdout == ours_full[0].stdout for r in ours_full)
    ours_tokens, cc_tokens = token_totals(our_doc), token_totals(cc_doc)
    ok_tokens = ours_tokens == cc_tokens == exp.tokens
    our_costs, cc_costs = model_costs(our_doc), model_costs(cc_doc)
    cost_rows = []
    ok_costs = True
    for model in sorted(CCUSAGE_PRICED):
        want = expected_cost(exp, model)
        good = abs(our_costs.get(model, 0) - cc_costs.get(model, 0)) <= 1e-6 * max(1, want) \
            and abs(our_costs.get(model, 0) - want) <= 1e-6 * max(1, want)
        ok_costs &= good
        cost_rows.append(f"  {model:28s} ours ${our_costs.get(model, 0):12.4f}  "
                         f"ccusage ${cc_costs.get(model, 0):12.4f}  expected ${want:12.4f}  "
                         f"{'ok' if good else 'DIFFERENT'}")

    med = statistics.median(r.wall for r in ours_full)
    med_half = statistics.median(r.wall for r in ours_half)
    cc_med = statistics.median(r.wall for r in ccs)
    rss_full = max(r.max_rss_mb for r in ours_full)
    rss_half = max(r.max_rss_mb for r in ours_half)
    cc_rss = max(r.max_rss_mb for r in ccs)
    print(f"tokens  ours    {ours_tokens}")
    print(f"tokens  ccusage {cc_tokens}")
    print(f"tokens  truth   {exp.tokens}")
    print(f"token totals agree: {ok_tokens}; our output identical in all {len(ours_full)} runs: "
          f"{same_output}")
    print("cost per model ccusage prices offline (opus-4-8 is $0 there):")
    print("\n".join(cost_rows))
    print(f"ours total cost ${our_doc['totals']['totalCost']:.2f} "
          f"(complete={our_doc['totals']['costComplete']}); "
          f"ccusage total ${cc_doc['totals']['totalCost']:.2f}")
    print(f"ccusage 18.0.11 on {exp.bytes / 1e6:.0f} MB: {cc_med:6.2f} s wall (median of "
          f"{len(ccs)}: {', '.join(f'{r.wall:.2f}' for r in ccs)}), "
          f"{statistics.median(r.cpu for r in ccs):6.2f} s CPU, peak RSS {cc_rss:7.1f} MB")
    print(f"hive-lab usage  on {exp.bytes / 1e6:.0f} MB: {med:6.2f} s wall (median of "
          f"{len(ours_full)}: {', '.join(f'{r.wall:.2f}' for r in ours_full)}), "
          f"{statistics.median(r.cpu for r in ours_full):6.2f} s CPU, peak RSS {rss_full:7.1f} MB")
    print(f"hive-lab usage  on {half_a_mb:.0f} MB: {med_half:6.2f} s wall, peak RSS {rss_half:7.1f} MB")
    ratio = cc_med / med
    best = min(r.wall for r in ccs) / min(r.wall for r in ours_full)
    print(f"speed-up vs ccusage: {ratio:.1f}x median/median, {best:.1f}x best/best "
          f"(target >= {TARGET_RATIO:.0f}x); peak RSS {rss_full:.0f} MB (target < "
          f"{TARGET_RSS_MB:.0f} MB; with the forked worker, the larger of the two processes)")
    ok = ok_tokens and ok_costs and same_output and ratio >= TARGET_RATIO \
        and rss_full < TARGET_RSS_MB
    line = (f"{shape.name:5s} {exp.bytes / 1e6:5.0f} MB {exp.files:6d} files: ccusage "
            f"{cc_med:5.2f} s {cc_rss:6.0f} MB | ours {med:5.2f} s {rss_full:5.1f} MB | "
            f"{ratio:4.1f}x ({best:.1f}x best/best) | {'PASS' if ok else 'FAIL'}")
    return ok, line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default="large,short",
                    help="corpus shapes to run, comma-separated: " + ", ".join(SHAPES))
    ap.add_argument("--half-mb", type=float, default=None,
                    help="size of each corpus half (default: 105 large, 110 short)")
    ap.add_argument("--keep", action="store_true", help="reuse a matching existing corpus")
    ap.add_argument("--runs", type=int, default=5, help="timed runs of ours (median)")
    ap.add_argument("--cc-runs", type=int, default=2, help="timed runs of ccusage (median)")
    ap.add_argument("--skip-fast-check", action="store_true")
    args = ap.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    shapes = [SHAPES[name.strip()] for name in args.shapes.split(",") if name.strip()]
    cc_cmd = ccusage_command()
    results = [bench_shape(shape, args, cc_cmd) for shape in shapes]
    print("\nsummary (targets: >= 15x ccusage 18.0.11 median/median, peak RSS < 100 MB):")
    for _, line in results:
        print("  " + line)
    ok = all(good for good, _ in results)
    print("RESULT:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
