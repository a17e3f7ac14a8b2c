"""The exception tree of the runtime, mapped to HTTP in `chiron.api.errors`.

ChironError                      (message safe to show; `code` is the machine code)
├── NotFound                     404 session_not_found / execution_not_found
├── Conflict                     409 harness_conflict / execution_active / session_archived
├── InvalidInput                 400 invalid_thread_key / invalid_input_line / …
├── Unprocessable                422 unknown_harness / …
├── Forbidden                    403 forbidden
└── Unavailable                  503 shutting_down / sandbox_unavailable
"""

from __future__ import annotations

from typing import Any


class ChironError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class NotFound(ChironError):
    status_code = 404
    code = "not_found"


class Conflict(ChironError):
    status_code = 409
    code = "conflict"


class InvalidInput(ChironError):
    status_code = 400
    code = "invalid_input"


class Unprocessable(ChironError):
    status_code = 422
    code = "unprocessable"


class Forbidden(ChironError):
    status_code = 403
    code = "forbidden"


class Unavailable(ChironError):
    status_code = 503
    code = "unavailable"


class LeaseLost(Exception):
    """Another process owns this execution's output now; write nothing more for it."""
