"""ipywidgets panels for the HiveOS notebook."""
from typing import Any

from .panel import SessionsPanel

__all__ = ["ControlRoom", "SessionsPanel"]


def __getattr__(name: str) -> Any:
    """``ControlRoom`` is imported on first use (it brings anywidget along)."""
    if name == "ControlRoom":
        from .room import ControlRoom

        return ControlRoom
    raise AttributeError(name)
