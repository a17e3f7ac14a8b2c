"""`TurnSlot`: one turn at a time, the rule every adapter's stdin side follows.

The server loop's stdin thread calls `on_user`, `on_interrupt` and `close`. A user line starts
a turn when none runs and steers the running one otherwise; an interrupt goes to the running
turn, or is noted and dropped when none runs. A turn runs on its own thread and leaves the slot
through `_end_turn`, which its adapter calls under the lock with the terminal line, so a user
line arriving meanwhile either joins the turn or starts the next one strictly after it.

Imports nothing heavy: the shell adapter is on the cold-start path (see the package docstring).
"""

from __future__ import annotations

import _thread
import abc  # already loaded by the interpreter's start-up: costs nothing

from chiron.harness.server import NdjsonWriter, note

TYPE_CHECKING = False  # `typing` stays unimported at run time (see the package docstring)
if TYPE_CHECKING:
    from typing import Any, Protocol

    from chiron.harness.protocol import Message

    class TurnThread(Protocol):
        def start(self) -> None: ...

        def join(self) -> None: ...

    class RunningTurn(Protocol):
        @property
        def thread(self) -> TurnThread: ...

        def steer(self, text: str) -> None:
            """A user line that arrived while the turn runs (called under the lock)."""

        def interrupt(self) -> None: ...


class TurnSlot(abc.ABC):
    """The running turn of an adapter, if any; see the module docstring."""

    def __init__(self, writer: NdjsonWriter, workspace: str) -> None:
        self.writer = writer
        self.workspace = workspace
        self._lock = _thread.allocate_lock()
        self._turn: RunningTurn | None = None
        self._turns = 0

    @abc.abstractmethod
    def _new_turn(self, text: str, line: dict[str, Any] | None, *, first: bool) -> RunningTurn:
        """The (not yet started) turn for a user line; `first` for this process's first turn.
        Called under the lock."""

    def on_user(self, text: str, line: dict[str, Any] | None) -> None:
        with self._lock:
            if self._turn is not None:
                self._turn.steer(text)
                return
            self._turn = self._new_turn(text, line, first=self._turns == 0)
            self._turns += 1
            self._turn.thread.start()

    def on_interrupt(self, reason: str | None) -> None:
        with self._lock:
            turn = self._turn
        if turn is None:
            note("interrupt ignored: no turn is running")
            return
        turn.interrupt()

    def close(self) -> None:
        """stdin is gone: nobody can steer or interrupt any more; let the running turn end."""
        turn = self._running()
        if turn is not None:
            turn.thread.join()

    def _running(self) -> RunningTurn | None:
        with self._lock:
            return self._turn

    def _end_turn(self, turn: RunningTurn, terminal: Message) -> None:
        """Emit `turn`'s terminal line and free the slot; the caller holds the lock."""
        self.writer.emit(terminal)
        if self._turn is turn:
            self._turn = None
