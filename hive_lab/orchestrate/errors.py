"""Domain errors of orchestration, each a subclass of a core error so the one HTTP error map
already gives it the right status."""
from __future__ import annotations

from hive_lab.core.errors import BadRequest, Conflict, NotFound


class TaskNotFound(NotFound):
    code = "task_not_found"


class TaskExists(Conflict):
    code = "task_exists"


class IllegalTransition(Conflict):
    """A state change the task's state machine does not allow (e.g. done -> running)."""

    code = "illegal_transition"


class DependencyCycle(BadRequest):
    code = "dependency_cycle"


class UnknownDependency(BadRequest):
    code = "unknown_dependency"


class StaleGeneration(Conflict):
    """A write by a starter whose claim was taken over (its generation moved on)."""

    code = "stale_generation"


class ScopeViolation(Conflict):
    """A change outside the task's scope stands in the way (e.g. of ``done``)."""

    code = "scope_violation"


class ScopeRequestNotFound(NotFound):
    code = "scope_request_not_found"
