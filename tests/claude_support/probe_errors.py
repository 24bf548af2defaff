"""Probe: what the real Claude Code CLI does when the API answers an error (NOTES.md, "API errors").

    python -m tests.claude_support.probe_errors OUTDIR CASE

CASE is one of the names in CASES. Prints the hook events (with their error fields), every
API call (time, status), the distinct screens and the transcript lines that mention an error.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .cli import (HOOK_EVENTS_2_1_197, TmuxCLI, find_or_install_claude, hook_logger_command,
                  hook_settings, private_home, read_hook_log, write_project_settings)
from .fake_api import FakeAnthropic

#: name -> (outage kwargs or None, prompt, seconds to watch)
CASES: dict[str, tuple[dict | None, str, float]] = {
    "429-noretry": ({"status": 429, "count": 3}, "SCENARIO:text hello", 40),
    "429-retry-after": ({"status": 429, "count": 3, "retry_after": 4, "should_retry": True},
                        "SCENARIO:text hello", 60),
    "429-retry-noheader": ({"status": 429, "count": 3, "should_retry": True}, "SCENARIO:text hello", 60),
    "429-long": ({"status": 429, "count": 100, "retry_after": 30, "should_retry": True},
                 "SCENARIO:text hello", 90),
    "529-retry": ({"status": 529, "count": 3, "should_retry": True}, "SCENARIO:text hello", 60),
    "529-noretry": ({"status": 529, "count": 3}, "SCENARIO:text hello", 40),
    "401": ({"status": 401, "count": 3}, "SCENARIO:text hello", 40),
    "401-retry": ({"status": 401, "count": 3, "should_retry": True}, "SCENARIO:text hello", 40),
}


def main(out: Path, case: str) -> None:
    outage, prompt, watch = CASES[case]
    out.mkdir(parents=True, exist_ok=True)
    project = out / "project"
    project.mkdir(exist_ok=True)
    log = out / "hooks.jsonl"
    claude = find_or_install_claude()
    assert claude, "no claude"
    with FakeAnthropic() as api, TmuxCLI() as cli:
        env = private_home(out, [project], base_url=api.base_url)
        write_project_settings(project, hook_settings(hook_logger_command(log, out), HOOK_EVENTS_2_1_197))
        cli.start([str(claude), "--permission-mode", "default"], project, env)
        cli.wait_for(lambda s: "? for shortcuts" in s, 40)
        t0 = time.time()
        if outage:
            api.outage(**outage)
        cli.paste(prompt)
        end = time.monotonic() + watch
        while time.monotonic() < end:
            cli.capture()
            time.sleep(0.25)
        cli.dump_screens(out / "screens.txt")
        dead = cli.pane_dead()
    print(f"== {case}: pane dead={dead}")
    print("-- api calls (t since prompt, kind, status)")
    for c in api.calls:
        print(f"  {c.time - t0:7.2f} {c.kind:8} {c.status} {c.headers.get('x-stainless-retry-count', '')}")
    print("-- hooks")
    for h in read_hook_log(log):
        extra = {k: h[k] for k in ("error", "error_details", "last_assistant_message", "message",
                                   "notification_type", "reason", "source") if k in h}
        print(f"  {h['_ts'] - t0:7.2f} {h.get('hook_event_name')} {json.dumps(extra)[:300]}")
    print("-- transcript lines with an error")
    for path in (out / "home" / ".claude" / "projects").rglob("*.jsonl"):
        for line in path.read_text().splitlines():
            d = json.loads(line)
            if any(k in d for k in ("error", "isApiErrorMessage", "apiError")) or d.get("type") == "system":
                print("  " + line[:600])
    print("-- screens in", out / "screens.txt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
