"""Names of the harness adapters this build can run inside a sandbox (stdlib only)."""

from __future__ import annotations

KNOWN_HARNESSES: frozenset[str] = frozenset({"shell"})
