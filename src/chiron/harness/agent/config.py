"""The agent's settings for one turn: the sandbox environment plus per-turn overrides.

Environment (set by the control plane inside the sandbox):

- `CHIRON_MODEL_PROVIDER` (`openai` | `anthropic`, default `openai`), `CHIRON_MODEL`,
  `CHIRON_OPENAI_BASE_URL`, `CHIRON_ANTHROPIC_BASE_URL`, `OPENAI_API_KEY`, `ANTHROPIC_API_KEY`
  (placeholders the egress proxy swaps);
- `CHIRON_AGENT_MAX_STEPS` (50): model calls per turn;
- `CHIRON_MODEL_MAX_RETRIES` (3): retries of one model call after a transient failure;
- `CHIRON_MODEL_TIMEOUT_S` (120): how long the model may stay silent (no header, no event)
  before the call counts as timed out;
- `CHIRON_MODEL_RETRY_BASE_S` (0.5) and `CHIRON_MODEL_RETRY_MAX_S` (10): the retry back-off,
  doubling from the base, capped (a `retry-after` from the API is honoured up to the cap);
- `CHIRON_AGENT_COMMAND_TIMEOUT_S` (600): default time limit of one `shell`/`run_tool` command.

Overrides: `model`, `reasoning_effort` and `provider` from the session's metadata, then from
the execution's metadata (which wins).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PROVIDERS = ("openai", "anthropic")
OVERRIDE_KEYS = ("model", "reasoning_effort", "provider")
DEFAULT_COMMAND_TIMEOUT_S = 600.0


class ConfigError(Exception):
    """A setting is missing or unusable; the message names it and the value it got."""


@dataclass(frozen=True)
class AgentConfig:
    provider: str
    model: str
    reasoning_effort: str | None
    base_url: str
    api_key: str
    max_steps: int
    max_retries: int
    timeout_s: float
    retry_base_s: float
    retry_max_s: float
    command_timeout_s: float


def _number(
    env: Mapping[str, str], name: str, default: float, *, integer: bool, zero_ok: bool = False
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        value = -1
    if not (value >= 0 if zero_ok else value > 0) or value != value or value == float("inf"):
        kind = "integer" if integer else "number"
        least = "0 or more" if zero_ok else "positive"
        raise ConfigError(f"{name} must be a {least} {kind}, got {raw!r}")
    return value


def overrides(session_context: Mapping[str, Any] | None) -> dict[str, str]:
    """`model`, `reasoning_effort`, `provider` from the session metadata, then the execution's."""
    found: dict[str, str] = {}
    if not session_context:
        return found
    for source in ("metadata", "execution_metadata"):
        metadata = session_context.get(source)
        if not isinstance(metadata, Mapping):
            continue
        for key in OVERRIDE_KEYS:
            value = metadata.get(key)
            if value is None or value == "":
                continue
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise ConfigError(f"{source} `{key}` must be a string, got {value!r}")
            found[key] = str(value)
    return found


def resolve(env: Mapping[str, str], session_context: Mapping[str, Any] | None) -> AgentConfig:
    chosen = overrides(session_context)
    provider = chosen.get("provider") or env.get("CHIRON_MODEL_PROVIDER") or "openai"
    if provider not in PROVIDERS:
        raise ConfigError(f"model provider must be 'openai' or 'anthropic', got {provider!r}")
    model = chosen.get("model") or env.get("CHIRON_MODEL", "").strip()
    if not model:
        raise ConfigError(
            "no model configured: set CHIRON_MODEL on the server, or `model` in the session's "
            "or execution's metadata"
        )
    url_variable = "CHIRON_OPENAI_BASE_URL" if provider == "openai" else "CHIRON_ANTHROPIC_BASE_URL"
    key_variable = "OPENAI_API_KEY" if provider == "openai" else "ANTHROPIC_API_KEY"
    base_url = env.get(url_variable, "").strip()
    if not base_url:
        raise ConfigError(f"{url_variable} is not set: the {provider} model API is unreachable")
    api_key = env.get(key_variable, "")
    if not api_key:
        raise ConfigError(f"{key_variable} is not set (the egress proxy expects its placeholder)")
    return AgentConfig(
        provider=provider,
        model=model,
        reasoning_effort=chosen.get("reasoning_effort"),
        base_url=base_url,
        api_key=api_key,
        max_steps=int(_number(env, "CHIRON_AGENT_MAX_STEPS", 50, integer=True)),
        max_retries=int(_number(env, "CHIRON_MODEL_MAX_RETRIES", 3, integer=True, zero_ok=True)),
        timeout_s=_number(env, "CHIRON_MODEL_TIMEOUT_S", 120.0, integer=False),
        retry_base_s=_number(env, "CHIRON_MODEL_RETRY_BASE_S", 0.5, integer=False, zero_ok=True),
        retry_max_s=_number(env, "CHIRON_MODEL_RETRY_MAX_S", 10.0, integer=False, zero_ok=True),
        command_timeout_s=_number(
            env, "CHIRON_AGENT_COMMAND_TIMEOUT_S", DEFAULT_COMMAND_TIMEOUT_S, integer=False
        ),
    )
