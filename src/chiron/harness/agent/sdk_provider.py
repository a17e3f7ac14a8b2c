"""`SdkProvider`: what both providers built on an official SDK (`openai`, `anthropic`) share.

The SDK client never retries (the turn loop does, visibly) and its timeouts stay behind the
turn's own silence deadline; a call's failure leaves `stream_step` as a `ModelError`.
Imported only by the provider modules, after `CHIRON_SDK_PATH` is on `sys.path`.
"""

from __future__ import annotations

import abc
from types import ModuleType
from typing import Any

import httpx

from chiron.harness.agent.model_api import (
    CallHandle,
    ModelError,
    StepRequest,
    StepResult,
    StreamSink,
)
from chiron.harness.agent.sdk_errors import to_model_error

# The turn's own silence deadline (`timeout_s`) fires first; the SDK's read timeout only ends
# a worker the turn already gave up on.
SDK_TIMEOUT_MARGIN_S = 5.0
CONNECT_TIMEOUT_S = 30.0


class SdkProvider(abc.ABC):
    """A provider over the SDK module `sdk`; subclasses make their client from
    `client_options` and stream one step in `_stream`."""

    sdk: ModuleType

    def __init__(self, *, base_url: str, timeout_s: float) -> None:
        self.base_url = base_url
        self.timeout_s = timeout_s

    def client_options(self, api_key: str) -> dict[str, Any]:
        """The SDK client's constructor arguments."""
        timeout_s = self.timeout_s
        return {
            "base_url": self.base_url,
            "api_key": api_key,
            "max_retries": 0,
            "timeout": httpx.Timeout(
                timeout_s + SDK_TIMEOUT_MARGIN_S, connect=min(timeout_s, CONNECT_TIMEOUT_S)
            ),
        }

    def stream_step(self, request: StepRequest, sink: StreamSink, handle: CallHandle) -> StepResult:
        try:
            return self._stream(request, sink, handle)
        except ModelError:
            raise
        except Exception as exc:
            if handle.aborted:
                return StepResult()  # nobody listens any more
            error = to_model_error(exc, self.sdk, base_url=self.base_url, timeout_s=self.timeout_s)
            if error is None:
                raise
            raise error from exc

    @abc.abstractmethod
    def _stream(self, request: StepRequest, sink: StreamSink, handle: CallHandle) -> StepResult:
        """One streamed model call in the SDK's own terms."""
