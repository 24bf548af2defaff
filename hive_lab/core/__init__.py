"""The control plane: plain Python and asyncio, importing neither tornado nor ipywidgets.

:class:`hive_lab.core.facade.Hive` is the one object the server layer talks to.
"""
