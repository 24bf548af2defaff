"""The CLI retrying an API error by itself, read off its screen.

Claude Code 2.1.197 fires no hook while it retries a refused request (429 with
``x-should-retry: true``, any 529, a 401 with retry true; tests/claude_support/NOTES.md, "API
errors"): its spinner line becomes ``✻ API error · Retrying in 4s · attempt 1/10`` and counts
down. That line is the only evidence, and it is pane text, so it is parsed strictly: the
profile's ``retrying`` regex is matched against one line at a time and names the groups ``wait`` (the CLI's
duration: ``4s``, ``1m 30s``, ``2h``, ``1d 3h 4m``), ``attempt`` and ``of``; numbers are
bounded digits, the wait is clamped to :data:`MAX_WAIT`, an attempt outside ``1..of`` is no
retry at all. The lowest match on the screen wins (the spinner sits above the input box; any
copy higher up is old output).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# The longest wait believed from a screen (a subscription's limit resets within hours): a
# forged line cannot park a provider for days, and a parking that a self-retry started is cut
# short as soon as that session works again (orchestrate/recovering.py).
MAX_WAIT = 6 * 3600.0
MAX_ATTEMPTS = 100
_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_TOKEN = re.compile(r"([0-9]{1,4})([dhms])")
# The CLI's ``Xi`` duration formatter: up to four "<n><unit>" tokens, one space apart, units
# in falling order, each at most once.
_COUNT = re.compile(r"[0-9]{1,3}")  # ASCII only: "²".isdigit() is True
_DURATION = re.compile(r"[0-9]{1,4}[dhms](?: [0-9]{1,4}[dhms]){0,3}")


@dataclass(frozen=True)
class SelfRetry:
    """One sighting of the CLI's own retry countdown."""

    wait: float  # seconds until its next attempt, clamped to 0..MAX_WAIT
    attempt: int
    of: int
    label: str = ""  # "API error", "Usage limit reached", or the error text on the last try

    def detail(self) -> str:
        label = f"{self.label}; " if self.label else ""
        return (f"{label}the CLI retries by itself in {self.wait:g} s "
                f"(attempt {self.attempt}/{self.of}); Hive Lab does not type into it")[:300]


def parse_duration(text: str) -> float | None:
    """Seconds in a duration like ``4s`` / ``1m 30s`` / ``2h``; None unless it is exactly that."""
    if not isinstance(text, str) or not _DURATION.fullmatch(text):
        return None
    seen: list[str] = []
    total = 0.0
    for number, unit in _TOKEN.findall(text):
        if seen and "dhms".index(unit) <= "dhms".index(seen[-1]):
            return None  # "4s 1m", "1m 1m": not what the CLI writes
        seen.append(unit)
        total += int(number) * _UNITS[unit]
    return total


def find_self_retry(screen: str, patterns: tuple[str, ...]) -> SelfRetry | None:
    """The countdown on ``screen`` (the lowest on it), or None when there is none."""
    if not patterns or not isinstance(screen, str):
        return None
    compiled = [c for c, needle in map(_compile, patterns) if needle in screen]
    if not compiled:
        return None  # the usual screen: a substring test per pattern, no regex at all
    # Line by line from the bottom: the first hit is the lowest, and a line-anchored pattern
    # fails at a line's first character (a MULTILINE search over the whole screen tries
    # ``^`` at every position: ~5x slower, benchmarks/bench_retrycue.py).
    for line in reversed(screen.split("\n")):
        for regex in compiled:
            match = regex.search(line)
            retry = _read(match) if match else None
            if retry is not None:
                return retry
    return None


@lru_cache(maxsize=64)
def _compile(pattern: str) -> tuple[re.Pattern[str], str]:
    """The compiled pattern and a literal every match contains ("" when none is found)."""
    return re.compile(pattern), _needle(pattern)


def _needle(pattern: str) -> str:
    """The longest run of literal characters at the top level of ``pattern``: every match
    contains it, so a screen without it needs no regex search (" · Retrying in " for Claude)."""
    try:
        import re._parser as parser  # type: ignore[import-not-found]  # Python >= 3.11
    except ImportError:  # pragma: no cover
        import sre_parse as parser  # type: ignore[no-redef]
    try:
        parsed = parser.parse(pattern)
    except Exception:  # pragma: no cover - compiled fine above; be safe anyway
        return ""
    if parsed.state.flags & re.IGNORECASE:
        return ""  # "retry" would miss "Retry"
    items = list(parsed)
    best, run = "", ""
    for op, arg in items:
        if str(op) == "LITERAL":
            run += chr(arg)
            best = max(best, run, key=len)
        else:
            run = ""
    return best


def _read(match: re.Match[str]) -> SelfRetry | None:
    names = match.re.groupindex
    if not {"wait", "attempt", "of"} <= set(names):
        return None
    wait = parse_duration(match.group("wait") or "")
    attempt_text, of_text = match.group("attempt") or "", match.group("of") or ""
    if wait is None or not (_COUNT.fullmatch(attempt_text) and _COUNT.fullmatch(of_text)):
        return None
    attempt, of = int(attempt_text), int(of_text)
    if not 1 <= attempt <= of <= MAX_ATTEMPTS:
        return None
    label = ""
    if "label" in names and match.group("label"):
        label = _printable(match.group("label"))[:120]
    return SelfRetry(min(wait, MAX_WAIT), attempt, of, label)


def _printable(text: str) -> str:
    """Pane text without control characters, whitespace runs folded."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


_ATTEMPT_RE = re.compile(r"\(attempt ([0-9]{1,3}/[0-9]{1,3})\)")


def attempt_in(detail: str | None) -> str | None:
    """``K/M`` of a :meth:`SelfRetry.detail` (the last one: a label from the pane comes first)."""
    found = _ATTEMPT_RE.findall(detail) if isinstance(detail, str) else []
    return found[-1] if found else None
