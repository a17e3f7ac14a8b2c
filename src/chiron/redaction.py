"""The one redaction step every log record, event payload and output line passes through.

Pattern-based: well-known token shapes (OpenAI/Anthropic `sk-…`, GitHub `ghp_…`/`github_pat_…`,
Slack `xox?-…`, AWS access key ids, `Bearer …` credentials) are replaced by a marker. Known
secret values (registered by the credential registry) are replaced too. The replacement never
contains a quote or backslash, so a redacted JSON line stays valid JSON.
"""

from __future__ import annotations

import re
import threading

REDACTED = "[REDACTED]"

_TOKEN_PATTERNS = [
    r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}",
    r"\bgh[pousr]_[A-Za-z0-9]{20,}",
    r"\bgithub_pat_[A-Za-z0-9_]{20,}",
    r"\bxox[abposr]-[A-Za-z0-9\-]{10,}",
    r"\bxapp-[A-Za-z0-9\-]{10,}",
    r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b",
    r"\bglpat-[A-Za-z0-9_\-]{20,}",
]
# `Bearer <credential>`: keep the scheme so readers still see what kind of header it was.
_BEARER = re.compile(r"(\b[Bb]earer\s+)[A-Za-z0-9\-._~+/]{8,}=*")
_TOKENS = re.compile("|".join(_TOKEN_PATTERNS))
# One cheap scan keeps the common line (nothing token-like at all) off the full patterns.
_HINTS = re.compile(r"sk-|gh[pousr]_|github_pat_|xox|xapp-|AKIA|ASIA|glpat-|[Bb]earer")


class Redactor:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known_values: re.Pattern[str] | None = None
        self._registered: set[str] = set()
        self._added: set[str] = set()

    def set_known_values(self, values: list[str]) -> None:
        """The registry's secret values to hide wherever they appear (under 6 chars: ignored)."""
        with self._lock:
            self._registered = set(values)
            self._compile()

    def add_known_values(self, values: list[str]) -> None:
        """More values to hide from now on (tokens minted at run time), kept across `set`."""
        with self._lock:
            self._added |= set(values)
            self._compile()

    def _compile(self) -> None:
        values = self._registered | self._added
        usable = sorted({v for v in values if len(v) >= 6}, key=len, reverse=True)
        self._known_values = re.compile("|".join(re.escape(v) for v in usable)) if usable else None

    def redact(self, text: str) -> str:
        known = self._known_values
        if known is not None:
            text = known.sub(REDACTED, text)
        if _HINTS.search(text) is None:
            return text
        text = _TOKENS.sub(REDACTED, text)
        return _BEARER.sub(lambda m: m.group(1) + REDACTED, text)


default_redactor = Redactor()


def redact(text: str) -> str:
    return default_redactor.redact(text)
