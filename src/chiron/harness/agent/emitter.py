"""The notifications of one turn, written through the harness's shared `NdjsonWriter`."""

from __future__ import annotations

import os
from typing import Any

from chiron.harness import protocol
from chiron.harness.server import NdjsonWriter


def new_id(prefix: str) -> str:
    return f"{prefix}_{os.urandom(8).hex()}"


class TurnEmitter:
    def __init__(self, writer: NdjsonWriter, thread_id: str, turn_id: str) -> None:
        self.writer = writer
        self.thread_id = thread_id
        self.turn_id = turn_id

    def emit(self, message: protocol.Message) -> None:
        self.writer.emit(message)

    def started(self, item: dict[str, Any]) -> None:
        self.emit(protocol.item_started(self.thread_id, self.turn_id, item))

    def completed(self, item: dict[str, Any]) -> None:
        self.emit(protocol.item_completed(self.thread_id, self.turn_id, item))

    def agent_delta(self, item_id: str, delta: str) -> None:
        self.emit(protocol.agent_message_delta(self.thread_id, self.turn_id, item_id, delta))

    def reasoning_delta(self, item_id: str, delta: str) -> None:
        self.emit(protocol.reasoning_delta(self.thread_id, self.turn_id, item_id, delta))

    def output_lines(self, item_id: str, deltas: list[str]) -> None:
        self.writer.emit_bytes(
            protocol.output_delta_lines(self.thread_id, self.turn_id, item_id, deltas)
        )

    def retrying(self, message: str) -> None:
        self.emit(protocol.turn_error(self.thread_id, self.turn_id, message, will_retry=True))
