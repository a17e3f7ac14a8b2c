"""Sandboxes: isolated compute a session's harness runs in.

Owns: the backend protocol (`backend.py`), the local bubblewrap backend and its per-sandbox
supervisor process. Must not touch the store or the HTTP layer: the runtime records what a
backend reports.
"""
