"""One model call on a worker thread, its stream posted to the turn's inbox as `CallEvent`s.

The turn thread only ever waits on its inbox, so an interrupt (posted to the same inbox) or
the model's silence deadline ends the wait at once, wherever the SDK is blocked. A call the
turn gave up on is aborted (`CallHandle`) and its late events are recognised by their `call`
and dropped.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from chiron.harness.agent.model_api import CallHandle, ModelError, Provider, StepRequest

PROGRESS_EVERY_S = 0.5


@dataclass(frozen=True)
class CallEvent:
    call: ModelCall
    kind: str  # text | reasoning | progress | done (StepResult) | error (ModelError) | crash
    payload: Any = None


class ModelCall:
    def __init__(
        self, provider: Provider, request: StepRequest, inbox: queue.SimpleQueue[object]
    ) -> None:
        self.provider = provider
        self.request = request
        self.inbox = inbox
        self.handle = CallHandle()
        self._last_progress = 0.0

    def start(self) -> None:
        threading.Thread(target=self._run, name="model-call", daemon=True).start()

    def abort(self) -> None:
        self.handle.abort()

    # -- StreamSink, called on the worker thread ------------------------------------------

    def on_text(self, delta: str) -> None:
        self.inbox.put(CallEvent(self, "text", delta))

    def on_reasoning(self, delta: str) -> None:
        self.inbox.put(CallEvent(self, "reasoning", delta))

    def on_progress(self) -> None:
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_EVERY_S:
            self._last_progress = now
            self.inbox.put(CallEvent(self, "progress"))

    def _run(self) -> None:
        try:
            result = self.provider.stream_step(self.request, self, self.handle)
        except ModelError as exc:
            self.inbox.put(CallEvent(self, "error", exc))
        except Exception as exc:
            self.inbox.put(CallEvent(self, "crash", exc))
        else:
            self.inbox.put(CallEvent(self, "done", result))
