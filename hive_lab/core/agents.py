"""Agent profiles: how each agent CLI is started, hooked up and read from the screen.

A profile is data. Users add or override profiles in config::

    c.HiveLab.profiles = {
        "claude-sonnet": {"command": ["claude", "--model", "sonnet"], "hooks": "claude",
                           "env": {"ANTHROPIC_BASE_URL": "http://127.0.0.1:4000"}},
        "my-repl": {"command": ["python3", "-i"]},
    }

Unknown keys are refused; cues are regular expressions matched against the captured screen.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from .errors import BadRequest
from .names import validate_name
from .status import ScreenCues

HOOK_KINDS = ("claude", "codex", "gemini")


@dataclass(frozen=True)
class AgentProfile:
    """How to run one agent CLI."""

    name: str
    command: tuple[str, ...] = ()
    hooks: str | None = None  # which installer: "claude" | "codex" | "gemini" | None
    cues: ScreenCues = field(default_factory=ScreenCues)
    env: Mapping[str, str] = field(default_factory=dict)
    # How an initial prompt reaches the agent: typed into its UI once it is ready.
    ready_timeout: float = 30.0
    description: str = ""
    # Keys that answer its permission dialog: {"approve": (...), "deny": (...)}. Pressed only
    # once the session waits for permission and the ``permission`` cue is on screen.
    answers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # What tasks it can take (orchestration matches a task's ``requires`` against these), how
    # many of its sessions may run at once (None: no cap of its own), and how a task's prompt
    # is sent: "full" (with its scope and what to do when done or stuck) or "raw" (as given:
    # for programs that are not chat agents, e.g. a shell).
    capabilities: frozenset[str] = frozenset()
    max_sessions: int | None = None
    task_prompt: str = "full"
    # Aider keeps its own usage log (``--analytics-log``; it has no hooks to name a
    # transcript): the option that takes the log's path. Hive Lab gives each session a file of
    # its own under ``<data_dir>/usage-logs`` and follows it like a transcript.
    usage_log: str | None = None
    # Extra arguments when a task (unattended) runs it, e.g. Aider's ``--yes-always``: with no
    # pre-tool hook to ask, the backstop audit checks its changes instead.
    task_args: tuple[str, ...] = ()
    # Files the CLI writes into the repository for itself: excluded in a session's worktree
    # (``info/exclude``) so they are neither the agent's change nor a scope violation.
    local_excludes: tuple[str, ...] = ()

    @property
    def program(self) -> str | None:
        return self.command[0] if self.command else None

    def resolve_command(self, command: list[str] | None) -> list[str]:
        """The argv to run: the user's (``shell``, or overriding) or the profile's."""
        argv = list(command) if command else list(self.command)
        if not argv:
            raise BadRequest(f"agent {self.name!r} needs a command (a list of argv strings)")
        if shutil.which(argv[0]) is None:
            raise BadRequest(
                f"{argv[0]!r} is not installed or not on PATH (needed by agent {self.name!r})",
                extra={"missing_program": argv[0]},
            )
        return argv

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "command": list(self.command), "hooks": self.hooks,
                "description": self.description,
                "answers": {kind: list(keys) for kind, keys in self.answers.items()},
                "capabilities": sorted(self.capabilities), "max_sessions": self.max_sessions,
                "task_prompt": self.task_prompt,
                "installed": self.installed}

    @property
    def installed(self) -> bool:
        return bool(self.program and shutil.which(self.program))


# Cues read off Claude Code 2.1.197's screens (tests/claude_support/NOTES.md).
CLAUDE_CUES = ScreenCues(
    permission=(r"Do you want to (?:proceed|create|make this edit|edit|overwrite|allow)",),
    question=(r"Enter to select · ↑/↓ to navigate",),
    working=(r"esc to interrupt",),
    idle=(r"^─{20,}\s*\n❯.*\n─{20,}",),  # the input box: a ❯ line between two rules
    permission_tool=r"^\s*(Bash|Write|Edit|MultiEdit|NotebookEdit|WebFetch|Read)(?: command| file)?\s*$",
    # Its own retry of a refused request: "✻ API error · Retrying in 4s · attempt 1/10" (label
    # "Usage limit reached" with " (resets …)" on a subscription limit, the error text on the
    # last attempt), the spinner line of cli.js's retry status; no hook fires meanwhile.
    retrying=(r"^[ \t]{0,4}\u273b (?P<label>[^\n]{0,300}) · Retrying in (?P<wait>[0-9dhms ]{2,24}?)"
              r"(?: \([^\n()]{1,40}\))? · attempt (?P<attempt>[0-9]{1,3})/(?P<of>[0-9]{1,3})[ \t]*$",),
    first_run=(
        ("Settings Warning", ("1",)),                                   # 1. Continue
        ("Quick safety check: Is this a project you created or one you trust", ("Enter",)),
        ("Detected a custom API key in your environment", ("1",)),      # 1. Yes (default: No)
    ),
)
# Codex CLI 0.169.0 with a prompt in its composer, not sent (its Enter lost under load): the
# placeholder and the "← for agents" footer are gone; what says the box is there (and Codex
# ready: the loading frame has no such line) is the status line "<model> <effort> · <dir>"
# under it. The draft is the last "› " line on screen (earlier ones are the history's; menu
# items are "› 1. ..."), its further lines indented by two (or blank).
CODEX_DRAFT = (r"^› (?!Ask Codex to do anything)(?!\d+\. )\S[^\n]*\n(?:(?:  [^\n]*)?\n)*?"
               r"  \S[^\n]* · [^\n]+$(?![\s\S]*^› )")
# Cues read off Codex CLI 0.169.0's screens (tests/codex_support/NOTES.md).
CODEX_CUES = ScreenCues(
    permission=(r"Would you like to (?:run the following command|make the following edits)",
                r"Press enter to confirm or esc to cancel"),
    working=(r"esc to interrupt",),
    # The empty composer's placeholder (also drawn below a running turn's spinner) or its
    # footer; or a prompt typed and not sent (the footer goes while the box holds text).
    idle=(r"^› Ask Codex to do anything", r"← for agents · \? for shortcuts", CODEX_DRAFT),
    # Its SessionStart hook fires with the first prompt: at start-up the screen says ready.
    # Not the composer alone: it flashes while "loading", before the folder-trust screen;
    # the footer's "← for agents" comes once it is ready, and a prompt typed then whose Enter
    # was lost shows as a draft (no footer: without this cue it stayed `starting` for good).
    ready=(r"← for agents · \? for shortcuts", CODEX_DRAFT),
    first_run=(
        # "Folder access ... Trust this folder?" over "› 1. Trust and continue" (saved in
        # $CODEX_HOME/config.toml [projects."<dir>"]); Hive Lab trusts its worktrees.
        (r"Trust this folder\?", ("Enter",)),
        # "Meet <new model>" over "1. Try new model / 2. Use existing model": keep the
        # configured one.
        (r"2\. Use existing model", ("2",)),
        # "Hooks need review / N hooks are new or changed": hooks nobody reviewed (a
        # repository's .codex/hooks.json...). Hive Lab trusts only its own (codextrust.py):
        # "3. Continue without trusting (hooks won't run)".
        (r"3\. Continue without trusting", ("3",)),
    ),
)
GEMINI_CUES = ScreenCues(
    permission=(r"Allow execution", r"Apply this change\?", r"Waiting for user confirmation"),
    working=(r"esc to cancel",),
    # The placeholder of the empty input box; a prompt typed too early sits in the box as
    # "> [Pasted Text: 12 lines]" (0.61.0, loaded machine): still the box, Enter sends it.
    idle=(r"Type your message", r"^ > \[Pasted Text: \d+ lines?\]"),
)
# Aider 0.86.2 (checked, tests/aider_support/NOTES.md). Its confirmations are one line at the
# bottom, "<question>? (Y)es/(N)o[/(D)on't ask again] [Yes]: ", under a line naming the subject
# (the file, or the shell command); once answered the line stays on screen with the answer
# after the colon, so only an unanswered one at the very end counts. The input prompt is
# "> " (a mode may prefix it, "ask> "), under a line listing the files in the chat.
_AIDER_ASK = r"\(Y\)es/\(N\)o(?:/\(D\)on't ask again)? \[(?:Yes|No)\]: *\s*\Z"
AIDER_CUES = ScreenCues(
    permission=(_AIDER_ASK,),
    working=(r"Waiting for \S+\s*\Z",),  # the spinner line while the model has not answered
    # The empty input prompt as the last line; a prompt with text at the bottom is the one
    # just sent (aider prints nothing for seconds after it).
    idle=(r"^(?:[a-z-]+ )?[a-z-]*> ?\s*\Z",),
    permission_tool=r"^(?P<subject>[^\n]*)\n(?P<tool>[^\n]*?\?) " + _AIDER_ASK,
    # A model aider has no metadata for (any local model) asks this before its prompt;
    # "y" would open a browser. No: it goes on with defaults (and logs no cost).
    first_run=((r"Open documentation url for more info\? \(Y\)es/\(N\)o", ("n", "Enter")),),
)

# Permission answers. Claude Code 2.1.197: "1. Yes" / Escape (checked, FACTS.md). Gemini CLI
# 0.61.0 (checked, tests/gemini_support/NOTES.md): "Apply this change?" / "Allow execution of
# [Shell]?" over "1. Allow once", Escape picks "No, suggest changes (esc)" and cancels the
# turn ("Request cancelled."). Codex CLI 0.169.0 (checked, tests/codex_support/NOTES.md):
# "1. Yes, proceed (y)" takes y; Escape picks "3. No, and tell Codex what to do differently
# (esc)" and interrupts the turn. Aider 0.86.2 (checked, tests/aider_support/NOTES.md): its
# "(Y)es/(N)o" reads a line, "y" or "n" and Enter; Ctrl-C stops a reply.
ANSWER_KINDS = ("approve", "deny", "interrupt")  # interrupt: stop a turn (budgets)
CLAUDE_ANSWERS = {"approve": ("1",), "deny": ("Escape",), "interrupt": ("Escape",)}
CODEX_ANSWERS = {"approve": ("y",), "deny": ("Escape",), "interrupt": ("Escape",)}
GEMINI_ANSWERS = {"approve": ("1",), "deny": ("Escape",), "interrupt": ("Escape",)}
AIDER_ANSWERS = {"approve": ("y", "Enter"), "deny": ("n", "Enter"), "interrupt": ("C-c",)}

# Aider as Hive Lab runs it: Hive Lab tracks git itself (live diff, review, merge), so aider
# leaves its edits uncommitted (auto-commits would also cost a model call per edit for the
# message) and never edits .gitignore (a change of the repo's own file, outside any task's
# scope); no update checks, release notes or analytics (the log still gets every event).
AIDER_COMMAND = ("aider", "--no-auto-commits", "--no-dirty-commits", "--no-gitignore",
                 "--no-check-update", "--no-show-release-notes", "--no-analytics")

CODING = frozenset({"implement", "review", "tests", "code"})

BUILTIN: dict[str, AgentProfile] = {
    "claude": AgentProfile("claude", ("claude",), hooks="claude", cues=CLAUDE_CUES,
                           answers=CLAUDE_ANSWERS, capabilities=CODING,
                           description="Claude Code (hooks for every event)"),
    "codex": AgentProfile("codex", ("codex",), hooks="codex", cues=CODEX_CUES,
                          answers=CODEX_ANSWERS, capabilities=CODING,
                          description="OpenAI Codex CLI (hooks as -c overrides)"),
    "gemini": AgentProfile("gemini", ("gemini",), hooks="gemini", cues=GEMINI_CUES,
                           answers=GEMINI_ANSWERS, capabilities=CODING,
                           description="Gemini CLI (hooks in .gemini/settings.json)"),
    "aider": AgentProfile("aider", AIDER_COMMAND, cues=AIDER_CUES, answers=AIDER_ANSWERS,
                          capabilities=frozenset({"implement", "tests", "code"}),
                          usage_log="--analytics-log", task_args=("--yes-always",),
                          local_excludes=("/.aider*",),
                          description="Aider (screen cues and its analytics log; no hooks)"),
    "shell": AgentProfile("shell", (), description="Any program: give its argv as 'command'",
                          ready_timeout=0.0, task_prompt="raw"),
}

_PROFILE_KEYS = {"command", "hooks", "cues", "env", "answers", "ready_timeout", "description",
                 "capabilities", "max_sessions", "task_prompt"}
_CUE_KEYS = {"permission", "question", "working", "idle", "permission_tool", "first_run",
             "ready", "retrying"}


def profile_from_config(name: str, spec: Mapping[str, Any],
                        base: AgentProfile | None = None) -> AgentProfile:
    """Build a profile from a config dict, refusing anything it does not understand."""
    validate_name(name, "agent name")
    if not isinstance(spec, Mapping):
        raise BadRequest(f"profile {name!r} must be a dict")
    unknown = set(spec) - _PROFILE_KEYS
    if unknown:
        raise BadRequest(f"profile {name!r} has unknown keys: {sorted(unknown)}")
    profile = base or AgentProfile(name)
    changes: dict[str, Any] = {"name": name}
    if "command" in spec:
        changes["command"] = tuple(_str_list(spec["command"], f"{name}.command"))
    if "hooks" in spec:
        if spec["hooks"] not in (None, *HOOK_KINDS):
            raise BadRequest(f"profile {name!r}: hooks must be one of {HOOK_KINDS} or null")
        changes["hooks"] = spec["hooks"]
    if "env" in spec:
        changes["env"] = validate_env(spec["env"])
    if "cues" in spec:
        cues = spec["cues"]
        if not isinstance(cues, Mapping) or set(cues) - _CUE_KEYS:
            raise BadRequest(f"profile {name!r}: cues keys are {sorted(_CUE_KEYS)}")
        changes["cues"] = replace(profile.cues, **{  # type: ignore[arg-type]
            k: (v if k == "permission_tool" else _first_run(v, name) if k == "first_run"
                else tuple(_str_list(v, f"{name}.cues.{k}")))
            for k, v in cues.items()})
    if "cues" in spec and "retrying" in spec["cues"]:
        _check_retrying(changes["cues"].retrying, name)
    if "answers" in spec:
        changes["answers"] = _answers(spec["answers"], name, profile.answers)
    if "capabilities" in spec:
        changes["capabilities"] = frozenset(
            validate_name(c, f"{name}.capabilities item")
            for c in _str_list(spec["capabilities"], f"{name}.capabilities"))
    if "max_sessions" in spec:
        value = spec["max_sessions"]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or not 1 <= value <= 1000):
            raise BadRequest(f"profile {name!r}: max_sessions must be 1-1000 or null")
        changes["max_sessions"] = value
    if "task_prompt" in spec:
        if spec["task_prompt"] not in ("full", "raw"):
            raise BadRequest(f"profile {name!r}: task_prompt must be 'full' or 'raw'")
        changes["task_prompt"] = spec["task_prompt"]
    for key in ("ready_timeout", "description"):
        if key in spec:
            changes[key] = spec[key]
    return replace(profile, **changes)


def _answers(value: object, name: str, base: Mapping[str, tuple[str, ...]]
             ) -> dict[str, tuple[str, ...]]:
    """``{"approve": [keys], "deny": [keys]}`` (either may be left out: the base's stays)."""
    from .tmux import validate_keys

    if not isinstance(value, Mapping) or set(value) - set(ANSWER_KINDS):
        raise BadRequest(f"profile {name!r}: answers keys are {list(ANSWER_KINDS)}")
    out = dict(base)
    for kind, keys in value.items():
        out[kind] = tuple(validate_keys(keys))
    return out


def _check_retrying(patterns: tuple[str, ...], name: str) -> None:
    """A ``retrying`` cue must compile and name the groups the parser reads."""
    import re

    for pattern in patterns:
        try:
            groups = set(re.compile(pattern).groupindex)
        except re.error as exc:
            raise BadRequest(f"profile {name!r}: cues.retrying {pattern[:80]!r}: {exc}") from None
        if not {"wait", "attempt", "of"} <= groups:
            raise BadRequest(f"profile {name!r}: cues.retrying needs the named groups wait, "
                             "attempt and of")


def _first_run(value: object, name: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``[[regex, [keys...]], ...]``: keys pressed when the regex shows while starting."""
    from .tmux import validate_keys

    if not isinstance(value, (list, tuple)):
        raise BadRequest(f"profile {name!r}: cues.first_run must be a list of [regex, [keys]]")
    out = []
    for item in value:
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)):
            raise BadRequest(f"profile {name!r}: cues.first_run items are [regex, [keys]]")
        out.append((item[0], tuple(validate_keys(list(item[1])))))
    return tuple(out)


def load_profiles(config: Mapping[str, Mapping[str, Any]] | None) -> dict[str, AgentProfile]:
    profiles = dict(BUILTIN)
    for name, spec in (config or {}).items():
        profiles[name] = profile_from_config(name, spec, profiles.get(name))
    return profiles


def validate_env(env: object) -> dict[str, str]:
    """Environment additions: names like shell variables, string values without NUL."""
    if env is None:
        return {}
    if not isinstance(env, Mapping):
        raise BadRequest("env must be an object of string values")
    out: dict[str, str] = {}
    for key, value in env.items():
        if not isinstance(key, str) or not key or not (key[0].isalpha() or key[0] == "_") or \
                not all(c.isalnum() or c == "_" for c in key) or len(key) > 128:
            raise BadRequest(f"invalid environment variable name {str(key)[:40]!r}")
        if key.startswith("HIVE_LAB_"):
            raise BadRequest(f"{key} is set by Hive Lab itself")
        if not isinstance(value, str) or "\0" in value or len(value) > 32768:
            raise BadRequest(f"environment variable {key} must be a string without NUL")
        out[key] = value
    return out


def _str_list(value: object, what: str) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"{what} must be a list of strings")
    if any("\0" in v for v in value):
        raise BadRequest(f"{what} must not contain NUL characters")
    return list(value)


def validate_command(command: object) -> list[str] | None:
    if command is None:
        return None
    argv = _str_list(command, "command")
    if not argv or not argv[0] or len(argv) > 256:
        raise BadRequest("command must be a non-empty list of at most 256 strings")
    return argv
