"""Which host takes a new agent or task: pure, so it is tested without any node.

Rules: an explicitly named host must exist, be reachable, carry the wanted labels and have a
free slot; otherwise among the reachable hosts carrying every wanted label, the one with the
most free slots (no capacity known counts as unlimited), then the fewest live agents, then the
name. The answer always says why, and a refusal says what ruled each host out.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    name: str
    labels: tuple[str, ...]
    reachable: bool
    live: int  # live agent sessions now
    capacity: int | None  # None: no limit known

    @property
    def free(self) -> float:
        return float("inf") if self.capacity is None else max(0, self.capacity - self.live)


@dataclass(frozen=True)
class Placement:
    host: str
    reason: str


class NoPlacement(Exception):
    """No host can take it now; ``reason`` says why for each host."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _why_not(c: Candidate, labels: tuple[str, ...]) -> str | None:
    missing = [x for x in labels if x not in c.labels]
    if missing:
        return f"{c.name}: lacks label {', '.join(missing)}"
    if not c.reachable:
        return f"{c.name}: unreachable"
    if c.free <= 0:
        return f"{c.name}: full ({c.live} of {c.capacity} agents)"
    return None


def _slots(c: Candidate) -> str:
    return "no limit" if c.capacity is None else f"{int(c.free)} of {c.capacity} slots free"


def place(candidates: list[Candidate], labels: tuple[str, ...] = (),
          host: str | None = None) -> Placement:
    if host is not None:
        chosen = next((c for c in candidates if c.name == host), None)
        if chosen is None:
            raise NoPlacement(f"no host named {host!r}")
        refusal = _why_not(chosen, labels)
        if refusal:
            raise NoPlacement(refusal)
        return Placement(host, f"{host}: asked for by name ({_slots(chosen)})")
    fit = [c for c in candidates if _why_not(c, labels) is None]
    if not fit:
        reasons = [r for c in candidates if (r := _why_not(c, labels))]
        wanted = f" with label(s) {', '.join(labels)}" if labels else ""
        raise NoPlacement(f"no host{wanted} can take it now: " + ("; ".join(reasons) or "no hosts"))
    best = sorted(fit, key=lambda c: (-c.free, c.live, c.name))[0]
    by = f"labels {', '.join(labels)}; " if labels else ""
    others = len(fit) - 1
    return Placement(best.name, f"{best.name}: {by}{_slots(best)}, {best.live} live"
                     + (f" (best of {others + 1} fitting hosts)" if others else ""))
