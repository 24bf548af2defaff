"""Running a task's ``check``: the command that decides the work is done, not the agent.

It runs in the task's worktree as an argv list (never through a shell), with a timeout, and
its output is kept (bounded) so the failing tail can go back to the agent. A check that
cannot even start (program missing) is a failure with that reason, never a pass.
"""
from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass

MAX_OUTPUT = 256 * 1024  # bytes of combined output kept from one run


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    exit_code: int | None  # None: timed out or could not start
    output: str
    seconds: float
    reason: str

    def to_json(self) -> dict[str, object]:
        return {"passed": self.passed, "exit_code": self.exit_code, "seconds": round(self.seconds, 3),
                "reason": self.reason, "output_tail": self.output[-4000:]}


async def run_check(argv: tuple[str, ...] | list[str], cwd: str, timeout: float,
                    env: dict[str, str] | None = None) -> CheckResult:
    """Run ``argv`` in ``cwd``; the whole process group is ended on timeout."""
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **(env or {})})
    except OSError as exc:
        return CheckResult(False, None, "", time.monotonic() - started,
                           f"the check could not start: {exc.strerror or exc}")
    chunks: list[bytes] = []
    kept = 0

    async def read() -> None:
        nonlocal kept
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            chunks.append(chunk)
            kept += len(chunk)
            while kept > MAX_OUTPUT and len(chunks) > 1:
                kept -= len(chunks.pop(0))

    try:
        await asyncio.wait_for(asyncio.gather(read(), proc.wait()), timeout)
    except asyncio.TimeoutError:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await proc.wait()
        text = b"".join(chunks).decode("utf-8", "replace")
        return CheckResult(False, None, text, time.monotonic() - started,
                           f"the check timed out after {timeout:g} s")
    text = b"".join(chunks).decode("utf-8", "replace")
    code = proc.returncode
    passed = code == 0
    return CheckResult(passed, code, text, time.monotonic() - started,
                       "the check passed" if passed else f"the check exited with status {code}")
