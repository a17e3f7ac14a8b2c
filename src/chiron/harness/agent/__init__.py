"""The `chiron` harness: Chiron's own agent loop, run inside a sandbox (DESIGN.md §7).

Owns: the turn loop (`turn`), the provider-neutral conversation and its persistence under
`$HOME/.chiron-harness/` (`history`), the tools offered to the model (`tool_specs`, `tools`,
`commands`), the model providers (`openai_chat`, `anthropic_messages` on `sdk_provider`,
reached through `model_api`'s neutral types) and the adapter facing the harness server
(`adapter`).

Unlike the modules directly in `chiron.harness`, this package may use the heavier standard
library and the model SDKs (`openai`, `anthropic`, `httpx`); the SDKs are imported only through
`sdk`, after `CHIRON_SDK_PATH` went first on `sys.path`, and only the provider modules,
`sdk_provider` and `sdk_errors` import them. Like the rest of the harness it imports nothing
from the server side.
"""

from __future__ import annotations

from chiron.harness.agent.adapter import ChironAdapter

__all__ = ["ChironAdapter"]
