"""ipywidgets panels for the HiveOS notebook."""
from .panel import SessionsPanel

__all__ = ["SessionsPanel"]
