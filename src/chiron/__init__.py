"""Chiron: one shared AI agent for a team, each conversation in its own sandbox.

This top-level module stays import-free on purpose: the harness code under `chiron.harness`
runs inside sandboxes with only the standard library, and importing the package must not pull
in the server side.
"""

__version__ = "0.1.0"
