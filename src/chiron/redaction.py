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
# Every match of the patterns above contains one of these. Plain substring searches (several
# times faster than one regex alternation) keep the common text, nothing token-like at all,
# off the full patterns.
_HINTS = ("sk-", "gh", "github_pat_", "xox", "xapp-", "AKIA", "ASIA", "glpat-", "earer")


def _may_hold_token(text: str) -> bool:
    return any(hint in text for hint in _HINTS)


class Redactor:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known_values: re.Pattern[str] | None = None
        self._known_list: tuple[str, ...] = ()
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
        self._known_list = tuple(usable)

    def redact_lines(self, lines: list[str]) -> list[str]:
        """`redact` for each line (none containing a newline); one scan when nothing matches.

        A match inside a line is also a match in the lines joined, so a joined text free of
        known values and token hints proves every line clean.
        """
        joined = "\n".join(lines)
        if not _may_hold_token(joined) and not any(v in joined for v in self._known_list):
            return lines
        return [self.redact(line) for line in lines]

    def redact(self, text: str) -> str:
        known = self._known_values
        if known is not None:
            text = known.sub(REDACTED, text)
        if not _may_hold_token(text):
            return text
        text = _TOKENS.sub(REDACTED, text)
        return _BEARER.sub(lambda m: m.group(1) + REDACTED, text)


default_redactor = Redactor()


def redact(text: str) -> str:
    return default_redactor.redact(text)
