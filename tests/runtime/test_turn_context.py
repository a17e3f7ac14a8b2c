"""What the control plane adds to input lines: context for every harness, and for model
harnesses the execution's overrides, the thread to resume and the composed system prompt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chiron.runtime.turn_context import TurnContext
from chiron.store.records import ExecutionRecord, SessionRecord
from chiron.store.types import utcnow


def _session(harness: str, **values: Any) -> SessionRecord:
    now = utcnow()
    fields: dict[str, Any] = {
        "thread_key": "api:ctx",
        "title": None,
        "status": "idle",
        "harness_type": harness,
        "harness_thread_id": None,
        "persona_id": None,
        "sandbox_id": None,
        "principal_id": "prn_ctx",
        "metadata": {"model": "session-model"},
        "last_event_id": 0,
        "created_at": now,
        "updated_at": now,
        "last_active_at": now,
    }
    return SessionRecord(**(fields | values))


def _execution(metadata: dict[str, Any] | None = None) -> ExecutionRecord:
    return ExecutionRecord(
        execution_id="exe_ctx",
        thread_key="api:ctx",
        status="running",
        idempotency_key=None,
        request={"input_lines": [], "metadata": metadata or {}},
        sandbox_id=None,
        output_start_offset=None,
        output_offset=None,
        input_token=None,
        lease_owner=None,
        lease_expires_at=None,
        error=None,
        reason=None,
        completion_reason=None,
        result_text=None,
        first_output_at=None,
        created_at=utcnow(),
        started_at=None,
        finished_at=None,
    )


async def test_shell_lines_keep_plain_text_and_get_context_without_model_fields(
    tmp_path: Path,
) -> None:
    context = TurnContext(None, [])  # type: ignore[arg-type]  # no store read without a fresh sandbox
    lines = await context.lines_for(
        ["echo hi", '{"type":"user","message":{"content":"ls"},"thread_key":"mine"}'],
        _session("shell"),
        _execution(),
        fresh_sandbox=False,
    )
    assert lines[0] == "echo hi"
    second = json.loads(lines[1])
    assert second["thread_key"] == "mine"  # never overridden
    assert second["trace_id"] == "exe_ctx"
    assert second["session_context"]["metadata"] == {"model": "session-model"}
    assert "execution_metadata" not in second["session_context"]


async def test_model_harness_lines_carry_overrides_thread_and_system_prompt(
    tmp_path: Path,
) -> None:
    base, team = tmp_path / "base", tmp_path / "team"
    (base / "personas").mkdir(parents=True)
    (team / "personas").mkdir(parents=True)
    (base / "SYSTEM_PROMPT.md").write_text("Be kind.\n")
    (team / "SYSTEM_PROMPT.md").write_text("Answer in English.")
    (base / "personas" / "reviewer.md").write_text("You review code (base).")
    (team / "personas" / "reviewer.md").write_text("You review code strictly.")
    context = TurnContext(None, [base, team])  # type: ignore[arg-type]
    lines = await context.lines_for(
        ["fix the bug"],
        _session("chiron", persona_id="reviewer", harness_thread_id="thr_1"),
        _execution({"model": "bigger", "reasoning_effort": "high"}),
        fresh_sandbox=False,
    )
    line = json.loads(lines[0])
    assert line["type"] == "user"
    assert line["message"] == {"role": "user", "content": "fix the bug"}
    ctx = line["session_context"]
    assert ctx["execution_metadata"] == {"model": "bigger", "reasoning_effort": "high"}
    assert ctx["harness_thread_id"] == "thr_1"
    assert ctx["system_prompt"] == "Be kind.\n\nAnswer in English.\n\nYou review code strictly."
    assert "transcript" not in ctx


def test_persona_ids_cannot_name_files_outside_the_personas_folder(tmp_path: Path) -> None:
    (tmp_path / "personas").mkdir()
    (tmp_path / "private.md").write_text("not a persona")
    (tmp_path / "personas" / ".hidden.md").write_text("not a persona either")
    (tmp_path / "personas" / "ok.md").write_text("a persona")
    context = TurnContext(None, [tmp_path])  # type: ignore[arg-type]
    assert context.system_prompt("../private") == ""
    assert context.system_prompt(".hidden") == ""
    assert context.system_prompt("ok") == "a persona"
