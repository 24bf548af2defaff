"""A fleet across hosts: each host runs Hive Lab as a node; a control room federates them.

Tornado-free like the core: :mod:`.hosts` (the host records and the hosts file),
:mod:`.node` (an HTTP + WebSocket client for one node), :mod:`.placement` (pure: which host
takes an agent or a task), :mod:`.federation` (the merged view, health, the federated feed).
"""
