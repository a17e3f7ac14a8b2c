"""Builders of the Codex app-server notification dialect."""

from __future__ import annotations

import json

from chiron.harness import protocol
from chiron.harness.server import user_text


def test_notifications_have_method_and_params_and_no_jsonrpc() -> None:
    line = protocol.encode(protocol.turn_completed("t", "u", "interrupted"))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {
        "method": "turn/completed",
        "params": {"threadId": "t", "turn": {"id": "u", "status": "interrupted"}},
    }


def test_fast_output_deltas_equal_the_generic_encoding() -> None:
    deltas = ["plain\n", 'quote " and \\ back\n', "tab\tcontrol\x01\n", "ünï €\n", ""]
    fast = protocol.output_delta_lines("thr", "turn", "item", deltas).splitlines()
    assert [json.loads(line) for line in fast] == [
        protocol.notification(
            "item/commandExecution/outputDelta",
            {"threadId": "thr", "turnId": "turn", "itemId": "item", "delta": delta},
        )
        for delta in deltas
    ]


def test_error_notification() -> None:
    assert protocol.error("boom") == {
        "method": "error",
        "params": {"error": {"message": "boom"}, "willRetry": False},
    }


def test_user_text_from_strings_and_blocks() -> None:
    assert user_text({"content": "ls"}) == "ls"
    assert user_text({"content": [{"type": "text", "text": "a"}, {"type": "x"}]}) == "a"
    assert user_text(None) == ""
    assert user_text({"content": 5}) == ""
