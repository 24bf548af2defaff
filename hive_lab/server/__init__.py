"""The Jupyter server side: the extension app, REST handlers, the WebSocket stream, hook ingest.

Thin by design: parse at the edge, call the facade, map errors in one place (:mod:`.base`).
"""
