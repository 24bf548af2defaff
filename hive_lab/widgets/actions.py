"""Running a view's button off the kernel's loop, and saying how it went.

A click arrives on the kernel's loop; an HTTP call made there would freeze the kernel (and
every other view) for as long as the server takes. :func:`run_action` runs the one client call
in a worker thread and hands the result (or the API's error) back on the loop, where widgets
may be touched. Without a running loop (a script, a unit test) it runs inline.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable

from ..client import HiveAPIError

Done = Callable[[Any, "HiveAPIError | None"], None]
_pending: set["asyncio.Task[Any]"] = set()  # strong refs: a bare task may be collected early


def run_action(fn: Callable[[], Any], done: Done) -> "asyncio.Task[Any] | None":
    """Call ``fn()`` off the loop, then ``done(result, None)`` or ``done(None, error)``."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is None:
        try:
            result = fn()
        except HiveAPIError as exc:
            done(None, exc)
        else:
            done(result, None)
        return None

    async def go() -> None:
        try:
            result = await asyncio.to_thread(fn)
        except HiveAPIError as exc:
            done(None, exc)
        else:
            done(result, None)

    task = loop.create_task(go())
    _pending.add(task)
    task.add_done_callback(_pending.discard)
    return task
