"""The notification text: the exact request, from real payload shapes; hostile text cleaned."""
from __future__ import annotations

import json
from pathlib import Path

from hive_lab.notify import text
from hive_lab.notify.channels import AppriseChannel, SecretFilter, secrets_of

SAMPLES = Path("/work/shared/samples/claude-code-2.1.197-hooks.jsonl")


def _sample(name: str) -> dict:
    for line in SAMPLES.read_text().splitlines():
        data = json.loads(line)
        if data.get("hook_event_name") == name:
            return data
    raise AssertionError(name)


def test_a_write_permission_names_the_file_and_the_start_of_the_content() -> None:
    request = _sample("PermissionRequest")  # the real sample: Write multi-21afc2.txt
    kind, title, body = text.waiting("s1", {"name": "waiting", "reason": "permission",
                                            "tool": "Write"},
                                     [_sample("Notification"), request])
    assert kind == "permission" and title == "s1 asks permission: Write"
    assert "Write /home/dev/project/multi-21afc2.txt" in body and "| multi" in body
    assert "Claude needs your permission" in body and "in /home/dev/project" in body


def test_an_edit_shows_old_and_new() -> None:
    out = text.tool_request("Edit", {"file_path": "a.py", "old_string": "x = 1",
                                     "new_string": "x = 2"})
    assert out == "Edit a.py\n- x = 1\n+ x = 2"


def test_a_question_from_a_notification_message() -> None:
    kind, title, body = text.waiting("s2", {"name": "waiting", "reason": "question"},
                                     [{"hook_event_name": "Notification",
                                       "message": "Pick one: tabs or spaces?"}])
    assert kind == "question" and "Pick one: tabs or spaces?" in body


def test_clean_drops_escapes_and_cuts() -> None:
    assert text.clean("a\x1b[2Jb\u202ec\x00d\ne", 100) == "abcd\ne"
    assert len(text.clean("x" * 500, 50)) == 50


def test_labels_and_logs_hide_the_secrets() -> None:
    url = "json://u:pass-1234@example.com/hook/abc123def456?+Authorization=Bearer%20tok-998877"
    channel = AppriseChannel.parse(url, 0)
    assert channel.label == "json://u:****@example.com/hook/****"
    assert url not in repr(channel)
    scrub = SecretFilter(sorted(secrets_of(url))).scrub
    assert scrub(f"sending to {url}") == "sending to ****"
    for secret in ("pass-1234", "abc123def456", "tok-998877"):
        assert secret not in scrub(f"posting http://example.com/hook/abc123def456 {secret}")


def test_the_command_channel_gets_json_on_stdin(tmp_path: Path) -> None:
    import sys

    from hive_lab.notify.channels import CommandChannel

    out = tmp_path / "got.json"
    script = f"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())"
    channel = CommandChannel.parse([sys.executable, "-c", script])
    assert channel.send("t", "b", {"kind": "permission"}).ok
    assert json.loads(out.read_text()) == {"kind": "permission", "title": "t", "body": "b"}
    failing = CommandChannel.parse([sys.executable, "-c", "raise SystemExit(4)"])
    assert failing.send("t", "b", {}).error.endswith("exited 4")
