"""The harness adapters this build can run inside a sandbox (stdlib only).

Adapter name -> "module:Class", resolved lazily so an unknown name fails before any import.
"""

from __future__ import annotations

ADAPTERS: dict[str, str] = {"shell": "chiron.harness.shell_adapter:ShellAdapter"}
KNOWN_HARNESSES: frozenset[str] = frozenset(ADAPTERS)
