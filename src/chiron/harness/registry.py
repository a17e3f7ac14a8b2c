"""The harness adapters this build can run inside a sandbox.

Adapter name -> "module:Class", resolved lazily so an unknown name fails before any import.
`shell` runs on the standard library alone; `chiron` needs the model SDKs mounted into the
sandbox (`CHIRON_SDK_PATH`); `codex` and `claudecode` drive the CLIs mounted at
`CHIRON_CLI_BIN`.
"""

from __future__ import annotations

ADAPTERS: dict[str, str] = {
    "shell": "chiron.harness.shell_adapter:ShellAdapter",
    "chiron": "chiron.harness.agent.adapter:ChironAdapter",
    "codex": "chiron.harness.codex_adapter:CodexAdapter",
    "claudecode": "chiron.harness.claude_adapter:ClaudeCodeAdapter",
}
KNOWN_HARNESSES: frozenset[str] = frozenset(ADAPTERS)
# Harnesses that talk to a model: their sandboxes get the model endpoints and keys' placeholders.
MODEL_HARNESSES: frozenset[str] = frozenset({"chiron", "codex", "claudecode"})
