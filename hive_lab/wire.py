"""The wire vocabulary both sides of the API share: paths, headers, event and state names.

A leaf module (imports nothing from the package) so the server, the kernel-side client, the
frames and the tests all spell these the same way. The hook client (:mod:`hive_lab.hook`) keeps
its own stdlib-only copy of the header names and the name rule; a test checks they agree.
"""
from __future__ import annotations

import re

# -- names ---------------------------------------------------------------------------------------
# The documented alphabet ^[A-Za-z0-9_-]{1,64}$, minus a leading "-": such a name would read as
# an option to tmux, git or a CLI parser. Sessions, agents, tasks, tmux sockets: one rule.
NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}"
NAME_RE = re.compile(NAME_PATTERN)
NAME_RULE = "1-64 characters from A-Z a-z 0-9 _ - (not starting with -)"

# -- paths ---------------------------------------------------------------------------------------
API_PREFIX = "hive_lab/api"  # under the Jupyter base_url
HOOKS_PATH = "hooks"
# an agent's scope request, on the hook channel's credential, answered synchronously
SCOPE_REQUEST_PATH = HOOKS_PATH + "/scope-request"
STREAM_PATH = "events/stream"
AUTH_RESOURCE = "hive_lab"  # the Jupyter authorizer's resource name

# -- hook protocol headers -------------------------------------------------------------------
HEADER_SESSION = "X-Hive-Session"
HEADER_INSTALL = "X-Hive-Install"
HEADER_SECRET = "X-Hive-Secret"
HEADER_KEY = "X-Hive-Key"
HEADER_FIRED = "X-Hive-Fired"
HEADER_AGENT = "X-Hive-Agent"
HEADER_CLIENT = "X-Hive-Client"  # "c1": the C client, answered in headers (no JSON parser)
CLIENT_C1 = "c1"

# -- session states --------------------------------------------------------------------------
STARTING, WORKING, WAITING, IDLE, EXITED, ERROR = (
    "starting", "working", "waiting", "idle", "exited", "error")
STATES = (STARTING, WORKING, WAITING, IDLE, EXITED, ERROR)

# -- task states (hive_lab.orchestrate.tasks.STATES; a test checks they agree) -----------------
TASK_STATES = ("pending", "ready", "running", "waiting", "checking", "blocked", "paused", "done",
               "failed", "canceled")
SCOPE_REQUEST_STATES = ("pending", "approved", "refused")
SCOPE_REQUEST_HOOK = "ScopeRequest"
# -- merge queue states (hive_lab.orchestrate.mergeplan.STATES; a test checks they agree) ------
MERGE_STATES = ("queued", "waiting", "updating", "checking", "awaiting_approval", "approved",
                "merging", "merged", "needs_you", "resolving", "rejected", "canceled",
                "superseded")
MERGES_PATH = "merges"  # the hook event `hive-lab task request-scope` posts

# -- events Hive Lab emits itself (agent "hive") -------------------------------------------------
HIVE_AGENT = "hive"
STATE_CHANGED = "StateChanged"
SESSION_CREATED = "SessionCreated"
SESSION_REMOVED = "SessionRemoved"
GIT_CHANGED = "GitChanged"
CONFLICT_PREDICTED = "ConflictPredicted"
USAGE_UPDATED = "UsageUpdated"
SCREEN_ANSWERED = "ScreenAnswered"  # Hive Lab pressed keys on an agent's start-up screen
HOOK_DECIDED = "HookDecided"  # a policy answered a blocking hook with deny or ask
# Recovery (orchestrate/recovery.py); the notifier picks these up by name.
PROVIDER_PARKED = "ProviderParked"  # a provider's API refused (429/529): no new sessions of it
PROVIDER_RESUMED = "ProviderResumed"  # its parking ended; parked sessions were told to go on
SESSION_STALLED = "SessionStalled"  # working, but no hook and no screen change for N minutes
SESSION_LOOPING = "SessionLooping"  # the same tool call with the same input N times in a row
AUTH_FAILED = "AuthFailed"  # the API refused the key (401): failed at once, never retried
AGENT_RESTARTED = "AgentRestarted"  # a task's agent started again (attempt > 1)
RECOVERY_EVENTS = (PROVIDER_PARKED, PROVIDER_RESUMED, SESSION_STALLED, SESSION_LOOPING,
                   AUTH_FAILED, AGENT_RESTARTED)
# Budgets (payload ``budget``: the limit measured, ``session``/``task``, ``reason``).
BUDGET_WARNING = "BudgetWarning"  # warn_at reached, or a price is unknown
BUDGET_PAUSED = "BudgetPaused"  # 100%: tool calls and prompts denied, task paused
BUDGET_RESUMED = "BudgetResumed"  # the limit was raised (or its window rolled over)
BUDGET_CEILING = "BudgetCeiling"  # the hard ceiling: the session was ended, worktree kept
BUDGET_EVENTS = (BUDGET_WARNING, BUDGET_PAUSED, BUDGET_RESUMED, BUDGET_CEILING)
# Review pipelines (orchestrate/pipelining.py); session = the pipeline id.
PIPELINE_CHANGED = "PipelineChanged"  # payload ``pipeline`` (GET pipelines/{id} minus history), ``reason``
STAGE_CHANGED = "StageChanged"  # payload ``pipeline`` (id), ``stage`` (a stage row), ``findings``
PIPELINE_NEEDS_YOU = "PipelineNeedsYou"  # for the notifier: payload message, key, task
PIPELINE_EVENTS = (PIPELINE_CHANGED, STAGE_CHANGED, PIPELINE_NEEDS_YOU)
PIPELINES_PATH = "pipelines"
PIPELINE_STATES = ("running", "needs_you", "ready", "canceled")
STAGE_KINDS = ("implement", "checks", "review", "tests", "ready")
STAGE_STATES = ("running", "passed", "changes", "failed", "needs_you", "canceled")
NOTIFICATION = "NotificationRaised"  # Hive Lab called the user (a notification was made)
# The merge queue (orchestrate/merging.py): payload ``merge`` (the item), ``previous``, ``reason``;
# session ``merge-<id>``.
MERGE_CHANGED = "MergeChanged"
HIVE_EVENTS = (STATE_CHANGED, SESSION_CREATED, SESSION_REMOVED, GIT_CHANGED, CONFLICT_PREDICTED,
               USAGE_UPDATED, SCREEN_ANSWERED, HOOK_DECIDED, NOTIFICATION, *RECOVERY_EVENTS,
               *BUDGET_EVENTS, MERGE_CHANGED)

# Events other parts emit (agent "hive") for the notifier to turn into a notification. Payload:
# ``message`` (str, the text to send), optional ``key`` (str: one notification per key; default
# the event id), ``task`` (task id) and ``session`` (session name) when they are about one.
ATTENTION_EVENTS = (BUDGET_WARNING, BUDGET_PAUSED, BUDGET_CEILING, PROVIDER_PARKED,
                    PROVIDER_RESUMED, SESSION_STALLED, SESSION_LOOPING, AUTH_FAILED,
                    PIPELINE_NEEDS_YOU)

# Kinds of notification (c.HiveLab.notify_on picks among them).
NOTIFY_KINDS = ("permission", "question", "task_failed", "task_blocked", "scope_request",
                "budget_warning", "budget_paused", "budget_ceiling", "provider_parked",
                "provider_resumed", "session_stalled", "session_looping", "auth_failed",
                "pipeline_needs_you")
NOTIFICATIONS_PATH = "notifications"

# -- stream control messages -----------------------------------------------------------------
MSG_HELLO, MSG_LIVE, MSG_HEARTBEAT, MSG_RESYNC, MSG_ERROR = (
    "hello", "live", "heartbeat", "resync", "error")
