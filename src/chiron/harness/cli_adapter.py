"""`CliAdapter` and `CliTurn`: how the `codex` and `claudecode` adapters run their turns.

Each adapter drives one agent CLI (`cli_process.CliProcess`) and runs one harness turn at a
time (`TurnSlot`). The stdin thread only puts `steer` and `interrupt` events into the adapter's
`Inbox`; the turn's own thread takes them, in arrival order with the CLI's output, and
translates. What both adapters do alike lives here:

- a turn whose overrides ask for another provider's API fails before the CLI is involved;
- the turn thread waits on the inbox until its next deadline (`_deadline`, the subclass's);
- `thread/started` goes out once per thread id in a harness process, `turn/started` once per
  turn, before anything else of the turn;
- a turn ends with exactly one terminal line, and not while steering is still queued for it
  unless it fails or is interrupted; after an interrupt, the commands the CLI left running are
  killed;
- what arrives after a turn ended belongs to no turn: the next turn drops it (steering with a
  note), except the event kinds an adapter keeps (`KEPT_BETWEEN_TURNS`);
- a `CliGone` or a bug ends the turn too (`_finish_on_error`).
"""

from __future__ import annotations

import abc
import os
import threading
import time
from typing import Any, Generic, TypeVar

from chiron.harness import protocol
from chiron.harness.cli_process import CliProcess, Event, Inbox, TurnRequest, env_number
from chiron.harness.server import NdjsonWriter, note
from chiron.harness.turn_slot import TurnSlot


def required_setting(name: str) -> str:
    """An environment setting the CLI cannot start without; ValueError when it is unset."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise ValueError(f"{name} is not set")
    return value


def cli_home(name: str) -> str:
    """`$HOME/.chiron-harness/<name>`, made when missing: where the CLI keeps its state."""
    path = os.path.join(os.path.expanduser("~"), ".chiron-harness", name)
    os.makedirs(path, exist_ok=True)
    return path


class CliGone(Exception):
    """The CLI exited or stopped answering: the turn ends, with this message if it fails."""


class CliAdapter(TurnSlot, abc.ABC):
    """The adapter side; subclasses start their CLI and make their turns."""

    CLI: str  # the CLI's name, for notes and thread names
    HARNESS: str  # the adapter's name, as `--adapter` spells it
    PROVIDER: str  # the only model API the CLI talks to
    KEPT_BETWEEN_TURNS: frozenset[str] = frozenset()  # inbox event kinds the next turn gets

    _turn: CliTurn[Any] | None

    def __init__(self, writer: NdjsonWriter, workspace: str) -> None:
        super().__init__(writer, workspace)
        self.inbox = Inbox()
        self.announced: str | None = None  # the thread id last sent as `thread/started`
        self.max_retries = int(env_number("CHIRON_MODEL_MAX_RETRIES", 3))
        self.timeout_s = env_number("CHIRON_MODEL_TIMEOUT_S", 120.0, minimum=0.1)

    @abc.abstractmethod
    def _turn_for(self, request: TurnRequest) -> CliTurn[Any]:
        """The CLI's turn for one user line."""

    @abc.abstractmethod
    def _stop_cli(self) -> None:
        """Close the CLI, if it runs."""

    def _new_turn(self, text: str, line: dict[str, Any] | None, *, first: bool) -> CliTurn[Any]:
        for event in self.inbox.drain():
            if event.kind == "steer":
                note("steering dropped: it came as the previous turn ended")
            elif event.kind in self.KEPT_BETWEEN_TURNS:
                self.inbox.put(event)
        return self._turn_for(TurnRequest.from_line(text, line))

    def finish_turn(self, turn: CliTurn[Any], terminal: protocol.Message, *, force: bool) -> bool:
        """Emit the turn's terminal line, unless steering is still queued for it and the turn
        could take it (not `force`): then False, and the turn goes on to run it."""
        with self._lock:
            if not force and turn.steers_received < turn.steers_sent:
                return False
            self._end_turn(turn, terminal)
            return True

    def close(self) -> None:
        super().close()  # a running turn may finish: its deadlines bound it
        self._stop_cli()


AdapterT = TypeVar("AdapterT", bound=CliAdapter)


class CliTurn(Generic[AdapterT], abc.ABC):
    """One harness turn; subclasses start it (`_start`) and translate the CLI's events."""

    def __init__(self, adapter: AdapterT, request: TurnRequest) -> None:
        self.adapter = adapter
        self.request = request
        self.turn_id = f"turn_{os.urandom(8).hex()}"
        self.announced_turn = False
        self.steers_sent = 0  # steering lines put into the inbox for this turn
        self.steers_received = 0  # of those, the ones the turn took (see finish_turn)
        self.interrupted_at: float | None = None
        self.done = False
        self.thread = threading.Thread(
            target=self._run, name=f"{adapter.CLI}-{self.turn_id}", daemon=True
        )

    @property
    @abc.abstractmethod
    def thread_id(self) -> str:
        """The harness thread id announced for this turn's conversation."""

    # -- what subclasses implement -------------------------------------------------------

    @abc.abstractmethod
    def _start(self) -> None:
        """Start the turn in the CLI."""

    @abc.abstractmethod
    def _deadline(self) -> float | None:
        """When (`time.monotonic()`) `_on_deadline` is due unless an event comes first."""

    @abc.abstractmethod
    def _on_deadline(self) -> None:
        """`_deadline` passed without an event."""

    @abc.abstractmethod
    def _on_event(self, event: Event) -> None:
        """One event from the CLI or the stdin side (steering, interrupt)."""

    @abc.abstractmethod
    def _process(self) -> CliProcess | None:
        """The CLI process this turn talks to, if any."""

    def _finish_on_error(self, message: str) -> None:
        """End the turn after the CLI went away (`CliGone`) or the adapter failed."""
        self._finish("failed", message)

    def _on_finished(self) -> None:
        """After the terminal line went out."""

    # -- the stdin thread ----------------------------------------------------------------

    def steer(self, text: str) -> None:
        self.steers_sent += 1
        self.adapter.inbox.put(Event("steer", text))

    def interrupt(self) -> None:
        self.adapter.inbox.put(Event("interrupt"))

    # -- the turn thread -----------------------------------------------------------------

    def _run(self) -> None:
        try:
            mismatch = self.request.provider_mismatch(self.adapter.PROVIDER, self.adapter.HARNESS)
            if mismatch is not None:
                self._finish("failed", mismatch)
            else:
                self._start()
            while not self.done:
                deadline = self._deadline()
                timeout = None if deadline is None else deadline - time.monotonic()
                event = self.adapter.inbox.get(timeout)
                if event is None:
                    self._on_deadline()
                else:
                    self._on_event(event)
        except CliGone as exc:
            self._finish_on_error(str(exc))
        except Exception as exc:  # a bug must still end the turn, with one terminal line
            note(f"{self.adapter.CLI} turn crashed: {exc!r}")
            self._finish_on_error(f"the {self.adapter.HARNESS} adapter failed: {exc!r}")
            raise

    def _announce(self) -> None:
        adapter = self.adapter
        if self.thread_id and adapter.announced != self.thread_id:
            adapter.writer.emit(protocol.thread_started(self.thread_id))
            adapter.announced = self.thread_id
        if not self.announced_turn:
            self.announced_turn = True
            adapter.writer.emit(protocol.turn_started(self.thread_id, self.turn_id))

    def _finish(self, status: str, message: str = "") -> None:
        """End the turn as `status` (`failed` with `message`), once."""
        if self.done:
            return
        self._announce()
        process = self._process()
        if self.interrupted_at is not None and process is not None and process.alive():
            # Codex leaves the turn's commands running after an interrupt; claude ends them
            # itself, and this catches stragglers.
            process.kill_command_groups()
        if status == "failed":
            terminal = protocol.turn_failed(self.thread_id, self.turn_id, message)
        else:
            terminal = protocol.turn_completed(self.thread_id, self.turn_id, status)
        if self.adapter.finish_turn(self, terminal, force=status != "completed"):
            self.done = True
            self._on_finished()
