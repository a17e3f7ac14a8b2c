"""Thread keys: the only address of a conversation (`namespace:rest`, DESIGN.md §3)."""

from __future__ import annotations

import unicodedata
from typing import Any

from chiron.runtime.errors import InvalidInput

MAX_THREAD_KEY_BYTES = 512


def validate_thread_key(thread_key: str) -> str:
    size = len(thread_key.encode("utf-8", errors="surrogatepass"))
    if not 1 <= size <= MAX_THREAD_KEY_BYTES:
        raise InvalidInput(
            f"thread key must be 1-{MAX_THREAD_KEY_BYTES} UTF-8 bytes, got {size}",
            code="invalid_thread_key",
        )
    if thread_key[0] in "{[":
        raise InvalidInput("thread key must not start with '{' or '['", code="invalid_thread_key")
    if any(unicodedata.category(ch) == "Cc" for ch in thread_key):
        raise InvalidInput(
            "thread key must not contain control characters", code="invalid_thread_key"
        )
    namespace, sep, rest = thread_key.partition(":")
    if not sep or not namespace or not rest:
        raise InvalidInput(
            "thread key must look like namespace:rest with both parts non-empty",
            code="invalid_thread_key",
        )
    return thread_key


def platform_context(thread_key: str) -> dict[str, Any]:
    """What the key says about where the conversation lives (e.g. a Slack channel and thread)."""
    namespace, _, rest = thread_key.partition(":")
    context: dict[str, Any] = {"namespace": namespace, "rest": rest}
    if namespace == "slack":
        channel, _, thread_ts = rest.partition(":")
        context["channel"] = channel
        if thread_ts:
            context["thread_ts"] = thread_ts
    return context
