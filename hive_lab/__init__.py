"""Hive Lab: JupyterLab as the control room for a fleet of AI coding agents."""
from __future__ import annotations

from typing import Any

from ._version import __version__

__all__ = ["__version__", "connect"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .server.app import HiveLab

    return [{"module": "hive_lab.server.app", "app": HiveLab}]


def connect(url: str | None = None, token: str | None = None, **kwargs: Any):
    """Return a :class:`hive_lab.client.HiveClient` for the running Jupyter server.

    Inside a kernel started by Jupyter the server is found on its own; elsewhere pass
    ``url`` and ``token`` or set ``HIVE_LAB_URL`` / ``HIVE_LAB_TOKEN``.
    """
    from .client import HiveClient

    return HiveClient.discover(url=url, token=token, **kwargs)
