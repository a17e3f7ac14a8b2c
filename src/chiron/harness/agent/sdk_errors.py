"""SDK and transport exceptions as `ModelError`s; shared by both providers (same SDK family).

Imported only by the provider modules, after `CHIRON_SDK_PATH` is on `sys.path`.
"""

from __future__ import annotations

from types import ModuleType

import httpx

from chiron.harness.agent.model_api import ModelError, error_detail, status_error


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "…"


def to_model_error(
    exc: Exception, sdk: ModuleType, *, base_url: str, timeout_s: float
) -> ModelError | None:
    """The `ModelError` for `exc`, or None when it is not a model-call failure (a bug)."""
    if isinstance(exc, sdk.APIStatusError):
        return status_error(exc.status_code, exc.body, exc.message, exc.response.headers)
    if isinstance(exc, sdk.APITimeoutError | httpx.TimeoutException):
        return ModelError(f"the model API did not answer within {timeout_s:g} s", retryable=True)
    if isinstance(exc, sdk.APIConnectionError):
        cause = exc.__cause__ or exc
        return ModelError(
            f"cannot reach the model API at {base_url}: {_describe(cause)}", retryable=True
        )
    if isinstance(exc, sdk.APIError):
        # An `error` event inside an otherwise fine stream.
        detail = error_detail(exc.body, exc.message)
        return ModelError(f"model API stream reported an error: {detail}", retryable=True)
    if isinstance(exc, httpx.TransportError):
        return ModelError(
            f"the connection to the model API broke mid-stream: {_describe(exc)}", retryable=True
        )
    if isinstance(exc, ValueError):
        # Pydantic's ValidationError and JSON errors: an event the SDK could not read.
        return ModelError(
            f"the model API sent an unreadable stream event: {_describe(exc)}", retryable=True
        )
    return None


def stream_ended_early() -> ModelError:
    return ModelError("the model API stream ended before the answer was complete", retryable=True)
