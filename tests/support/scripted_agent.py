"""A scripted stand-in for a coding agent, for tests that need an agent without a model.

It reads its terminal line by line, like a chat agent reads prompts, and acts only on lines
that start with ``@`` (everything else, the prose of a task prompt, is read and ignored):

    @write PATH TEXT      write TEXT (\\n for newlines) to PATH, relative to the cwd; when the
                          session has Claude-style hooks (HIVE_LAB_SESSION set and --hooked),
                          a real PreToolUse goes through the real hook client first and a
                          "deny" answer is obeyed (the file is not written)
    @commit MESSAGE       git add -A && git commit
    @run COMMAND...       run a command through sh (e.g. hive-lab task request-scope ...)
    @await WORD           hold the @ lines that follow until an input line contains WORD
    @sleep SECONDS        a long step (prints a progress line every 0.5 s, like a spinner)
    @exit CODE            exit with CODE (a crash when CODE != 0)
    @say TEXT             the turn's last assistant message (\n for newlines): the next Stop
                          hook carries it as ``last_assistant_message`` (--hooked only)
    @hush SECONDS         a long step that prints nothing at all (a stalled agent: no screen
                          change, no hook; with --hooked a UserPromptSubmit already said working)
    @repeat N TOOL ARG    fire the same PreToolUse (TOOL with input {"command": ARG}) N times
                          in a row (a looping agent; --hooked only)
    @stopfail ERROR       fire StopFailure with this error (rate_limit, authentication_failed..)
                          as Claude Code does when the API refuses (--hooked only)
    @burn TOKENS COUNT    COUNT "API responses" of TOKENS input tokens each (claude-opus-4-8),
                          appended as Claude-style lines (message ids, usage) to a transcript
                          the hooks name as ``transcript_path``; a tool call (PreToolUse)
                          after each, and a deny ends the step, as a turn boundary does;
                          ``@burn TOKENS COUNT late`` writes each response's line 0.15 s
                          after its PreToolUse fired (Claude Code flushes its transcript on a
                          timer, so the line can come after the hook)
    @spin TOKENS COUNT [stubborn]  the same without tool calls (a turn that only streams):
                          only an interrupt (Ctrl-C) stops it, unless it is stubborn

With ``SCRIPTED_TURNS`` set (a directory) and a file ``<dir>/<session>.json`` in it (a JSON
list of turns, each a list of ``@`` lines), the agent plays those turns instead: each burst of
input starts the next turn (a counter file keeps the place across agent restarts) and the
prompt's own ``@`` lines are ignored. Tests give each pipeline stage (implementer, reviewer,
tester) its script this way, as the scripted API does for the real Claude Code CLI.

A line containing "Continue the task where you stopped" re-runs the step a deny or an
interrupt stopped (the model picking up again after its budget was raised).

Every action prints a line, so the screen shows activity; silence means "idle". With
``--hooked`` it also fires the hooks Claude Code fires around a turn (SessionStart at start,
UserPromptSubmit when input arrives, Stop when a burst of input has been handled), through
the real hook client. It stands in for the model, which these tests cannot reach; the real
Claude Code CLI has tests of its own.
"""
from __future__ import annotations

import json
import os
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HOOKED = "--hooked" in sys.argv
FAILED_TURN = [False]  # a StopFailure ended this turn: Claude Code fires no Stop after it
STOPPED: list[str] = []  # the step a deny or an interrupt cut short
SAID: list[str] = []  # what @say set: the next Stop's last_assistant_message
NEW_TURN = [False]  # lines() saw a burst of input begin


def turn_script() -> list[str] | None:
    """The next scripted turn for this session (SCRIPTED_TURNS), or None: follow the prompt."""
    root, session = os.environ.get("SCRIPTED_TURNS"), os.environ.get("HIVE_LAB_SESSION")
    if not (root and session):
        return None
    path = Path(root) / f"{session}.json"
    if not path.exists():
        return None
    turns = json.loads(path.read_text())
    counter = Path(root) / f"{session}.count"
    n = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(n + 1))
    return turns[n] if n < len(turns) else []


class Interrupted(Exception):
    pass


def _on_sigint(signum: int, frame: object) -> None:
    raise Interrupted()


def _idle_sigint(signum: int, frame: object) -> None:
    print("^C (nothing to interrupt)", flush=True)  # Ctrl-C at the prompt, as a chat agent


def transcript() -> Path | None:
    data_dir, session = os.environ.get("HIVE_LAB_DIR"), os.environ.get("HIVE_LAB_SESSION")
    if not (data_dir and session):
        return None
    path = Path(data_dir) / "scripted" / f"{session}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def spend(tokens: int, tool_use: str | None = None) -> None:
    """One API response in Claude Code's transcript shape (one line, its usage; with
    ``tool_use``, the tool call it asks for)."""
    path = transcript()
    if path is None:
        return
    mid = "msg_" + secrets.token_hex(12)
    line = {"type": "assistant", "isSidechain": False, "requestId": "req_" + secrets.token_hex(12),
            "sessionId": f"scripted-{os.environ.get('HIVE_LAB_SESSION')}", "cwd": os.getcwd(),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "message": {"id": mid, "type": "message", "role": "assistant",
                        "model": "claude-opus-4-8", "content": [
                            {"type": "tool_use", "id": tool_use, "name": "Bash",
                             "input": {"command": "true"}} if tool_use else
                            {"type": "text", "text": "."}],
                        "usage": {"input_tokens": tokens, "output_tokens": 0,
                                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}
    with open(path, "a") as f:
        f.write(json.dumps(line) + "\n")


def hook(event: str, **fields: object) -> subprocess.CompletedProcess[bytes] | None:
    """Fire ``event`` through the real hook client, as Claude Code would (--hooked only)."""
    data_dir, session = os.environ.get("HIVE_LAB_DIR"), os.environ.get("HIVE_LAB_SESSION")
    if not (HOOKED and data_dir and session):
        return None
    client = Path(data_dir) / "bin" / "hive_lab_hook.pyc"
    payload = {"hook_event_name": event, "session_id": f"scripted-{session}",
               "cwd": os.getcwd(), **fields}
    path = transcript()
    if path is not None:
        path.touch()
        payload["transcript_path"] = str(path)
    return subprocess.run([sys.executable, "-S", "-E", "-s", str(client), "--agent", "scripted"],
                          input=json.dumps(payload).encode(), capture_output=True, timeout=30)


def pre_tool(path: str) -> tuple[bool, str]:
    """Ask Hive Lab's guard the way Claude Code does; (allowed, reason)."""
    proc = hook("PreToolUse", tool_name="Write",
                tool_input={"file_path": os.path.abspath(path), "content": "..."},
                tool_use_id="toolu_" + secrets.token_hex(8))
    if proc is None:
        return True, ""
    if proc.returncode == 2:
        return False, proc.stderr.decode(errors="replace")
    try:
        answer = json.loads(proc.stdout or b"{}")
    except ValueError:
        return True, ""
    out = answer.get("hookSpecificOutput", {}) if isinstance(answer, dict) else {}
    return out.get("permissionDecision") != "deny", out.get("permissionDecisionReason", "")


def act(line: str) -> None:
    verb, _, rest = line[1:].partition(" ")
    if verb == "write":
        path, _, text = rest.partition(" ")
        ok, reason = pre_tool(path)
        if not ok:
            print(f"denied: {reason}", flush=True)
            return
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text.replace("\\n", "\n") + "\n")
        print(f"wrote {path}", flush=True)
    elif verb == "commit":
        subprocess.run(["git", "add", "-A"], check=False)
        proc = subprocess.run(["git", "commit", "-qm", rest or "work"], capture_output=True, text=True)
        print(f"commit: {proc.returncode} {proc.stdout.strip()} {proc.stderr.strip()}", flush=True)
    elif verb == "run":
        proc = subprocess.run(rest, shell=True, capture_output=True, text=True)
        print(f"ran: {proc.returncode} {proc.stdout.strip()} {proc.stderr.strip()}", flush=True)
    elif verb == "sleep":  # a long step shows activity, as a real agent's spinner does
        end = time.monotonic() + float(rest or "1")
        while time.monotonic() < end:
            print("working...", flush=True)
            time.sleep(min(0.5, max(0.0, end - time.monotonic())))
        print("slept", flush=True)
    elif verb == "hush":
        time.sleep(float(rest or "1"))
    elif verb == "repeat":
        n, _, spec = rest.partition(" ")
        tool, _, arg = spec.partition(" ")
        for _ in range(int(n or "1")):
            hook("PreToolUse", tool_name=tool or "Bash", tool_input={"command": arg},
                 tool_use_id="toolu_" + secrets.token_hex(8))
        print(f"repeated {tool} {n} times", flush=True)
    elif verb == "stopfail":
        hook("StopFailure", error=rest or "rate_limit",
             last_assistant_message=f"API Error: scripted {rest}")
        FAILED_TURN[0] = True
        print(f"stop failure {rest}", flush=True)
    elif verb in ("burn", "spin"):
        parts = rest.split()
        tokens, count = int(parts[0]), int(parts[1])
        stubborn = verb == "spin" and "stubborn" in parts[2:]
        late = verb == "burn" and "late" in parts[2:]
        signal.signal(signal.SIGINT, signal.SIG_IGN if stubborn else _on_sigint)
        try:
            for i in range(count):
                tool_use = "toolu_" + secrets.token_hex(8) if verb == "burn" else None
                writer = threading.Timer(0.15, spend, (tokens, tool_use)) if late else None
                if writer is not None:
                    writer.start()
                else:
                    spend(tokens, tool_use)
                print(f"{verb} {i + 1}/{count}", flush=True)
                if verb == "burn":
                    proc = hook("PreToolUse", tool_name="Bash", tool_input={"command": "true"},
                                tool_use_id=tool_use)
                    if writer is not None:
                        writer.join()
                    out = {}
                    try:
                        out = json.loads(proc.stdout or b"{}").get("hookSpecificOutput", {}) if proc else {}
                    except (ValueError, AttributeError):
                        pass
                    if out.get("permissionDecision") == "deny":
                        print(f"denied: {out.get('permissionDecisionReason', '')}", flush=True)
                        STOPPED[:] = [f"@{verb} {tokens} {count - i - 1}"]
                        return
                time.sleep(0.6)
            print(f"{verb} done", flush=True)
        except Interrupted:
            print("interrupted", flush=True)
            STOPPED[:] = [f"@{verb} {rest}"]
        finally:
            signal.signal(signal.SIGINT, _idle_sigint)
    elif verb == "say":
        SAID[:] = [rest.replace("\\n", "\n")]
        print(f"said {len(rest)} characters", flush=True)
    elif verb == "exit":
        print(f"exiting {rest}", flush=True)
        sys.exit(int(rest or "0"))


def lines():
    """Input lines; with --hooked, a turn's hooks around each burst of input."""
    in_turn = False
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], 0.5)
        if not ready:
            if in_turn:
                if not FAILED_TURN[0]:
                    said = {"last_assistant_message": SAID.pop()} if SAID else {}
                    hook("Stop", stop_hook_active=False, **said)
                FAILED_TURN[0] = False
                in_turn = False
            continue
        raw = sys.stdin.readline()
        if not raw:
            return
        if not in_turn:
            hook("UserPromptSubmit", prompt=raw[:200])
            in_turn = True
            NEW_TURN[0] = True
        yield raw


def main() -> None:
    signal.signal(signal.SIGINT, _idle_sigint)
    print("scripted agent ready", flush=True)
    hook("SessionStart", source="startup")
    waiting_for: str | None = None
    held: list[str] = []
    scripted = False
    for raw in lines():
        line = raw.strip()
        if NEW_TURN[0]:
            NEW_TURN[0] = False
            script = turn_script()
            if script is not None:
                print(f"scripted turn of {len(script)} step(s)", flush=True)
                for step in script:
                    act(step)
                scripted = True
        if scripted:
            continue
        if waiting_for is not None:
            if waiting_for in line:
                waiting_for = None
                print(f"resuming {len(held)} held step(s)", flush=True)
                for step in held:
                    act(step)
                held = []
            elif line.startswith("@"):
                held.append(line)
            continue
        if "Continue the task where you stopped" in line and STOPPED:
            print("continuing", flush=True)
            act(STOPPED.pop())
            continue
        if line.startswith("@await "):
            waiting_for = line[len("@await "):].strip()
            print(f"awaiting {waiting_for!r}", flush=True)
            continue
        if line.startswith("@"):
            act(line)


if __name__ == "__main__":
    main()
