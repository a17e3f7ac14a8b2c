"""The CLI's exceptions; each message is one line a person can act on.

    CliError                    (exit 1; the message is printed as `error: …`)
    ├── ConfigError             bad settings, no API key found
    ├── ServerUnreachable       no server answers at the URL (refused, timed out, dropped)
    ├── AuthRejected            the server answered 401 or 403 to our token
    └── ApiError                any other `{"ok": false, "error", "code"}` answer

Messages never contain the token itself: they name where it came from instead.
"""

from __future__ import annotations


class CliError(Exception):
    """An expected failure: print its message, no traceback, exit non-zero."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(CliError):
    pass


class ServerUnreachable(CliError):
    pass


class AuthRejected(CliError):
    pass


class ApiError(CliError):
    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(f"{message} ({code}, HTTP {status_code})")
        self.status_code = status_code
        self.code = code
