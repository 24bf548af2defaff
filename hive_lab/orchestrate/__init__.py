"""Orchestration: tasks, scopes, the pre-tool guard, the backstop audit and the planner.

Pure code over plain data (and SQLite connections handed in): it imports neither tornado nor
ipywidgets and, from the core, only ``hive_lab.core.errors`` and ``hive_lab.core.names``, so the
server wires it in without the orchestration knowing about the server.
"""
