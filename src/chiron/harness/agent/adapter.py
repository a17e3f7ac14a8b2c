"""`ChironAdapter`: the `chiron` harness, Chiron's own agent loop over a model API.

One turn at a time (`TurnSlot`: a user line starts a turn when idle and steers it otherwise);
each turn runs on its own thread (`turn.AgentTurn`) and ends through `finish_turn`, which emits
the terminal line under the adapter lock so a user line arriving meanwhile either joins the turn
or starts the next one strictly after it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import TYPE_CHECKING, Any

from chiron.harness.agent import sdk
from chiron.harness.agent.config import AgentConfig, ConfigError, resolve
from chiron.harness.agent.emitter import new_id
from chiron.harness.agent.history import History, state_dir, user_message
from chiron.harness.agent.model_api import Provider
from chiron.harness.agent.turn import AgentTurn
from chiron.harness.server import NdjsonWriter, is_safe_id
from chiron.harness.turn_slot import TurnSlot

if TYPE_CHECKING:
    from chiron.harness.protocol import Message


class ChironAdapter(TurnSlot):
    _turn: AgentTurn | None

    def __init__(self, writer: NdjsonWriter, workspace: str) -> None:
        super().__init__(writer, workspace)
        self.history = History(state_dir())
        self.history.load()
        self._providers: dict[tuple[str, str, str, float], Provider] = {}
        self._providers_lock = threading.Lock()
        # Importing an SDK and making its client take a second or two: do it for the default
        # settings now, while nobody waits. A turn that needs it meanwhile waits for it.
        threading.Thread(target=self._warm_up, name="warm-up", daemon=True).start()

    def _new_turn(self, text: str, line: dict[str, Any] | None, *, first: bool) -> AgentTurn:
        return AgentTurn(self, text, line, first=first)

    # -- turn threads --------------------------------------------------------------------

    def thread_id(self, session_context: dict[str, Any]) -> str:
        """The harness thread id, fixed (and saved) the first time a turn asks for it.

        A new sandbox of an existing session keeps the id its harness announced before.
        """
        thread_id = self.history.thread_id
        if thread_id is None:
            known = session_context.get("harness_thread_id")
            thread_id = known if isinstance(known, str) and is_safe_id(known) else new_id("thread")
            self.history.thread_id = thread_id
            self.history.save()
        return thread_id

    def provider(self, settings: AgentConfig) -> Provider:
        """The provider for `settings`, made once (an SDK client keeps its connections)."""
        key = (settings.provider, settings.base_url, settings.api_key, settings.timeout_s)
        with self._providers_lock:
            provider = self._providers.get(key)
            if provider is None:
                provider = sdk.make_provider(
                    settings.provider,
                    base_url=settings.base_url,
                    api_key=settings.api_key,
                    timeout_s=settings.timeout_s,
                )
                self._providers[key] = provider
            return provider

    def _warm_up(self) -> None:
        with contextlib.suppress(ConfigError, sdk.SdkUnavailable):  # the first turn reports it
            self.provider(resolve(os.environ, None))

    def finish_turn(
        self, turn: AgentTurn, ending: Message, *, unless_steered: bool = False
    ) -> bool:
        """Emit the turn's terminal line; False (nothing emitted) when `unless_steered` and
        steering is waiting, which the turn must answer first.

        Steering that arrived too late for a turn that ended otherwise stays in the history,
        so the next turn sees it.
        """
        with self._lock:
            if unless_steered and turn.has_steering():
                return False
            late = turn.take_steering()
            if late:
                for text in late:
                    self.history.append(user_message(text))
            self.history.save()
            self._end_turn(turn, ending)
            return True
