"""The `claudecode` adapter: drives the real `claude` CLI in stream-json mode.

One `claude -p --input-format stream-json --output-format stream-json` process runs per harness
process and takes every turn as one stdin line. It talks to `CHIRON_ANTHROPIC_BASE_URL` with the
`ANTHROPIC_API_KEY` placeholder, keeps its state under `$HOME/.chiron-harness/claude`, runs
tools unprompted (`bypassPermissions`: the sandbox is the boundary) and retries or times out
model calls as `CHIRON_MODEL_MAX_RETRIES` and `CHIRON_MODEL_TIMEOUT_S` say. The process is
started again, resuming the same session (`--resume`), when a turn asks for another model,
effort or system prompt, after an interrupt that had to kill it, or after it died. A session
that cannot be resumed (its state is gone) is replaced by a new one that gets the session's
transcript before the first message.

Claude's output is translated to the harness dialect: `system/init` announces the session id as
the thread, text and thinking blocks become `agentMessage` and `reasoning` items (streamed from
the partial-message events), `Bash` calls become `commandExecution` items, `Write`/`Edit` calls
`fileChange` items and other tools `mcpToolCall` items, each completed by its `tool_result`.
A `result` line ends the turn: its text is the final `agentMessage`, `is_error` makes the turn
fail with that text.

Steering is another stdin line while the turn runs. Claude folds it into the running turn when
it can, or else runs it as a turn of its own right after; with `--replay-user-messages` it echoes
every line as it takes it, so a `result` ends the harness turn only once every line written
during the turn was echoed. An interrupt is claude's `interrupt` control request; if claude
does not end its turn within a grace period, its process group is killed.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from chiron.harness import protocol
from chiron.harness.cli_adapter import CliAdapter, CliTurn, cli_home, required_setting
from chiron.harness.cli_process import CliProcess, Event, TurnRequest
from chiron.harness.server import NdjsonWriter, note

PROVIDER = "anthropic"
INTERRUPT_GRACE_S = 2.0  # after the interrupt request, kill claude if its turn has not ended
# After a `result` while steering is still to be echoed: how long claude may stay silent
# before the turn ends with that result (claude reports a queued turn's start at once).
QUEUED_TURN_WAIT_S = 10.0
EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}
EFFORTS.update({name: name for name in ("xhigh", "max")})
FILE_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})
EXIT_CODE_PREFIX = "Exit code "


def block_text(content: Any) -> str:
    """The text of a `tool_result` content: a string, or its text blocks joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            block["text"]
            for block in content
            if isinstance(block, dict) and isinstance(block.get("text"), str)
        )
    return ""


def patch_diff(patch: Any) -> str | None:
    """A unified diff from claude's `structuredPatch` hunks, if there are any."""
    if not isinstance(patch, list) or not patch:
        return None
    parts = []
    for hunk in patch:
        if not isinstance(hunk, dict):
            continue
        head = (
            f"@@ -{hunk.get('oldStart')},{hunk.get('oldLines')} "
            f"+{hunk.get('newStart')},{hunk.get('newLines')} @@"
        )
        lines = [line for line in hunk.get("lines") or [] if isinstance(line, str)]
        parts.append("\n".join([head, *lines]))
    return "\n".join(parts) + "\n" if parts else None


def _prefixed(text: str, mark: str) -> str:
    return "".join(f"{mark}{line}\n" for line in text.splitlines())


def file_changes(name: str, arguments: dict[str, Any], outcome: Any) -> list[dict[str, Any]]:
    """The `fileChange` changes of a Write/Edit/MultiEdit/NotebookEdit call."""
    path = arguments.get("file_path") or arguments.get("notebook_path") or ""
    outcome = outcome if isinstance(outcome, dict) else {}
    kind = "update"
    if name == "Write" and outcome.get("type", "create") == "create":
        kind = "add"
    diff = patch_diff(outcome.get("structuredPatch"))
    if diff is None:
        if name == "Write":
            diff = _prefixed(str(arguments.get("content", "")), "+")
        elif name == "Edit":
            old, new = str(arguments.get("old_string", "")), str(arguments.get("new_string", ""))
            diff = _prefixed(old, "-") + _prefixed(new, "+")
        elif name == "MultiEdit":
            edits = arguments.get("edits")
            diff = "".join(
                _prefixed(str(e.get("old_string", "")), "-")
                + _prefixed(str(e.get("new_string", "")), "+")
                for e in (edits if isinstance(edits, list) else [])
                if isinstance(e, dict)
            )
        else:
            diff = _prefixed(str(arguments.get("new_source", "")), "+")
    return [{"path": str(path), "kind": {"type": kind}, "diff": diff}]


class _ToolCall:
    """A tool_use block waiting for its tool_result."""

    def __init__(self, item_id: str, name: str, arguments: dict[str, Any]) -> None:
        self.item_id = item_id
        self.name = name
        self.arguments = arguments

    def item(self, cwd: str, result: dict[str, Any] | None, outcome: Any) -> dict[str, Any]:
        """The item, in progress (no `result` block yet) or finished."""
        done = result is not None
        failed = result is not None and bool(result.get("is_error"))
        status = "inProgress" if not done else "failed" if failed else "completed"
        text = block_text(result.get("content")) if result is not None else ""
        if self.name == "Bash":
            command = str(self.arguments.get("command", ""))
            if not done:
                return protocol.command_execution_item(self.item_id, command, cwd, status)
            exit_code: int | None = 0
            output = text
            if isinstance(outcome, dict):
                output = "\n".join(
                    part for part in (outcome.get("stdout"), outcome.get("stderr")) if part
                )
                if outcome.get("interrupted"):
                    exit_code, status = None, "failed"
            elif failed:
                exit_code = None
                first, _, rest = text.partition("\n")
                if first.startswith(EXIT_CODE_PREFIX) and first[len(EXIT_CODE_PREFIX) :].isdigit():
                    exit_code, output = int(first[len(EXIT_CODE_PREFIX) :]), rest
            return protocol.command_execution_item(
                self.item_id, command, cwd, status, exit_code=exit_code, aggregated_output=output
            )
        if self.name in FILE_TOOLS:
            changes = file_changes(self.name, self.arguments, outcome)
            return protocol.file_change_item(self.item_id, changes, status)
        server, tool = "claude", self.name
        if self.name.startswith("mcp__") and self.name.count("__") >= 2:
            _, server, tool = self.name.split("__", 2)
        return protocol.tool_call_item(
            self.item_id,
            server,
            tool,
            self.arguments,
            status,
            result=text if done and not failed else None,
            error=text if failed else None,
        )


class _ResumeFailed(Exception):
    """claude ended before starting the session it was asked to resume."""


class _Turn(CliTurn["ClaudeCodeAdapter"]):
    """One harness turn: the user line, steering lines, until the last `result`."""

    def __init__(self, adapter: ClaudeCodeAdapter, request: TurnRequest) -> None:
        super().__init__(adapter, request)
        self.process: CliProcess | None = None
        self.resuming: str | None = None  # the session this process was asked to resume
        self.seen_init = False
        self.texts: list[str] = []  # every line of this turn, to write again after a restart
        self.replays = 0  # lines claude echoed back (took into its conversation)
        self.last_result: dict[str, Any] | None = None
        self.result_at: float | None = None  # a `result` arrived while lines were unechoed
        self.last_message_text: str | None = None  # of the last completed agentMessage
        self.stream_message = ""  # the message id of the partial-message events
        self.stream_blocks: dict[tuple[str, str], list[str]] = {}  # (msg, type) -> item ids
        self.stream_text: dict[str, str] = {}  # streamed text of open text items
        self.tools: dict[str, _ToolCall] = {}

    # -- the turn thread ---------------------------------------------------------------

    @property
    def thread_id(self) -> str:
        return self.adapter.session_id or ""

    def _process(self) -> CliProcess | None:
        return self.process

    def _emit(self, message: protocol.Message) -> None:
        self._announce()
        self.adapter.writer.emit(message)

    def _start(self) -> None:
        adapter = self.adapter
        process = adapter.process
        if process is not None and process.alive() and adapter.process_key == self._key():
            self.process = process
            self._write(self.request.text)
            return
        if process is not None:
            process.close()
            adapter.process = None
        earlier = adapter.session_id or self.request.harness_thread_id
        if not self._launch(earlier):
            return
        self._write(self.request.text if earlier else self.request.with_transcript())

    def _key(self) -> tuple[str | None, str | None, str | None]:
        request, running = self.request, self.adapter.process_key
        system_prompt = request.system_prompt
        if system_prompt is None and running is not None:
            system_prompt = running[2]  # a line without one keeps the session's
        return (request.model_for(PROVIDER, None), request.reasoning_effort, system_prompt)

    def _launch(self, resume: str | None) -> bool:
        try:
            self.process = self.adapter.start_process(self.request, self._key(), resume)
        except (OSError, ValueError) as exc:
            self._finish("failed", f"cannot start claude: {exc}")
            return False
        self.resuming = resume
        self.seen_init = False
        return True

    def _write(self, text: str) -> None:
        self.texts.append(text)
        self._send_line(text)

    def _send_line(self, text: str) -> None:
        assert self.process is not None
        line = {"type": "user", "message": {"role": "user", "content": text}}
        if not self.process.send(line):
            note("claude no longer reads its stdin")  # its end of output follows

    def _resume_failed(self) -> None:
        """Start a new session, with the transcript, and write this turn's lines again."""
        assert self.process is not None
        note(
            f"cannot resume claude session {self.resuming} "
            f"({self.process.stderr_tail() or self.process.exit_description()}); "
            "starting a new session"
        )
        self.process.kill(grace_s=0.2)
        self.adapter.process = None
        self.adapter.session_id = None
        first, *rest = self.texts
        self.texts = []
        self.replays = 0
        if not self._launch(None):
            return
        self._write(self.request.with_transcript() if first == self.request.text else first)
        for text in rest:
            self._write(text)

    # -- events ------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if self.result_at is not None:
            self.result_at = time.monotonic()  # QUEUED_TURN_WAIT_S counts silence only
        if event.kind == "steer":
            self.steers_received += 1
            if self.interrupted_at is not None or self.process is None:
                note("steering dropped: the turn is being interrupted")
            else:
                self._write(event.payload)
        elif event.kind == "interrupt":
            self._interrupt()
        elif self.process is None or event.source is not self.process:
            return  # from a process this turn replaced
        elif event.kind == "eof":
            self._on_eof()
        else:
            self._on_message(event.payload)

    def _on_eof(self) -> None:
        assert self.process is not None
        if self.resuming is not None and not self.seen_init and self.interrupted_at is None:
            self._resume_failed()
            return
        message = self.process.unexpected_exit("claude")
        self.process.kill(grace_s=0.2)
        self.adapter.process = None
        if self.interrupted_at is not None:
            self._finish("interrupted")
        else:
            self._finish("failed", message)

    def _on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if message.get("parent_tool_use_id"):
            return  # a sub-agent's inner messages
        if kind == "system":
            self._on_system(message)
        elif kind == "stream_event":
            event = message.get("event")
            if isinstance(event, dict):
                self._on_stream_event(event)
        elif kind == "assistant":
            self._on_assistant(message.get("message"))
        elif kind == "user":
            if message.get("isReplay"):
                self.replays += 1
            else:
                self._on_tool_results(message)
        elif kind == "result":
            self._on_result(message)

    def _on_system(self, message: dict[str, Any]) -> None:
        subtype = message.get("subtype")
        if subtype == "init":
            self.seen_init = True
            session = message.get("session_id")
            if isinstance(session, str) and session:
                self.adapter.session_id = session
                self._announce()
        elif subtype == "api_retry":
            status = message.get("error_status")
            what = f"HTTP {status} ({message.get('error')})" if status else message.get("error")
            text = (
                f"model API error {what}; retry {message.get('attempt')} of "
                f"{message.get('max_retries')}"
            )
            self._emit(protocol.turn_error(self.thread_id, self.turn_id, text, will_retry=True))

    def _on_stream_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "message_start":
            started = event.get("message")
            self.stream_message = str(started.get("id")) if isinstance(started, dict) else ""
        elif kind == "content_block_start":
            block = event.get("content_block")
            block_type = block.get("type") if isinstance(block, dict) else None
            if block_type not in ("text", "thinking"):
                return
            item_id = f"{self.stream_message}_{event.get('index')}"
            self.stream_blocks.setdefault((self.stream_message, block_type), []).append(item_id)
            if block_type == "text":
                self.stream_text[item_id] = ""
                item = protocol.agent_message_item(item_id, "")
            else:
                item = protocol.reasoning_item(item_id, "")
            self._emit(protocol.item_started(self.thread_id, self.turn_id, item))
        elif kind == "content_block_delta":
            delta = event.get("delta")
            if not isinstance(delta, dict):
                return
            item_id = f"{self.stream_message}_{event.get('index')}"
            if delta.get("type") == "text_delta" and item_id in self.stream_text:
                piece = str(delta.get("text", ""))
                self.stream_text[item_id] += piece
                self._emit(
                    protocol.agent_message_delta(self.thread_id, self.turn_id, item_id, piece)
                )
            elif delta.get("type") == "thinking_delta":
                piece = str(delta.get("thinking", ""))
                self._emit(protocol.reasoning_delta(self.thread_id, self.turn_id, item_id, piece))

    def _streamed_item(self, message_id: str, block_type: str) -> str | None:
        """The id of the item the partial-message events opened for this block, if any."""
        opened = self.stream_blocks.get((message_id, block_type))
        return opened.pop(0) if opened else None

    def _on_assistant(self, message: Any) -> None:
        if not isinstance(message, dict) or message.get("model") == "<synthetic>":
            # Claude's own error notices; the `result` carries the same text.
            return
        message_id = str(message.get("id", ""))
        for number, block in enumerate(message.get("content") or []):
            if not isinstance(block, dict):
                continue
            block_type = block.get("type")
            if block_type == "text":
                self._complete_block(message_id, number, "text", str(block.get("text", "")))
            elif block_type == "thinking":
                self._complete_block(message_id, number, "thinking", str(block.get("thinking", "")))
            elif block_type == "tool_use":
                arguments = block.get("input")
                call = _ToolCall(
                    str(block.get("id")),
                    str(block.get("name")),
                    arguments if isinstance(arguments, dict) else {},
                )
                self.tools[call.item_id] = call
                item = call.item(self.adapter.workspace, None, None)
                self._emit(protocol.item_started(self.thread_id, self.turn_id, item))

    def _complete_block(self, message_id: str, number: int, block_type: str, text: str) -> None:
        item_id = self._streamed_item(message_id, block_type)
        if block_type == "text":
            if item_id is None:
                item_id = f"{message_id}_text{number}_{os.urandom(3).hex()}"
                started = protocol.agent_message_item(item_id, "")
                self._emit(protocol.item_started(self.thread_id, self.turn_id, started))
            self.stream_text.pop(item_id, None)
            item = protocol.agent_message_item(item_id, text)
            self.last_message_text = text
        else:
            if item_id is None:
                item_id = f"{message_id}_thinking{number}_{os.urandom(3).hex()}"
                started = protocol.reasoning_item(item_id, "")
                self._emit(protocol.item_started(self.thread_id, self.turn_id, started))
            item = protocol.reasoning_item(item_id, text)
        self._emit(protocol.item_completed(self.thread_id, self.turn_id, item))

    def _on_tool_results(self, message: dict[str, Any]) -> None:
        inner = message.get("message")
        content = inner.get("content") if isinstance(inner, dict) else None
        if not isinstance(content, list):
            return
        for block in content:
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            call = self.tools.pop(str(block.get("tool_use_id")), None)
            if call is None:
                continue
            outcome = message.get("tool_use_result")
            item = call.item(self.adapter.workspace, block, outcome)
            self._emit(protocol.item_completed(self.thread_id, self.turn_id, item))

    def _on_result(self, message: dict[str, Any]) -> None:
        if self.resuming is not None and not self.seen_init and self.interrupted_at is None:
            self._resume_failed()
            return
        self.last_result = message
        if self.interrupted_at is not None:
            if self.replays < len(self.texts):
                # Lines claude still holds would run after this turn ended: end it instead.
                self._kill()
            self._finish("interrupted")
            return
        if self.replays < len(self.texts):
            self.result_at = time.monotonic()
            return  # claude still runs the steering it did not fold into that turn
        text = message.get("result")
        if message.get("is_error") or str(message.get("subtype", "")).startswith("error"):
            self._finish("failed", self._error_text(message))
            return
        if isinstance(text, str) and text and text != self.last_message_text:
            item_id = f"result_{os.urandom(6).hex()}"
            started = protocol.agent_message_item(item_id, "")
            self._emit(protocol.item_started(self.thread_id, self.turn_id, started))
            item = protocol.agent_message_item(item_id, text)
            self._emit(protocol.item_completed(self.thread_id, self.turn_id, item))
            self.last_message_text = text
        self._finish("completed")

    @staticmethod
    def _error_text(message: dict[str, Any]) -> str:
        text = message.get("result")
        if isinstance(text, str) and text.strip():
            reason = text.strip()
        else:
            errors = message.get("errors")
            joined = "; ".join(str(e) for e in errors) if isinstance(errors, list) else ""
            reason = joined or f"claude ended the turn with {message.get('subtype')!r}"
        status = message.get("api_error_status")
        if status and str(status) not in reason:
            reason = f"model API returned HTTP {status}: {reason}"
        return reason

    # -- interrupts --------------------------------------------------------------------

    def _interrupt(self) -> None:
        if self.interrupted_at is not None:
            return
        self.interrupted_at = time.monotonic()
        if self.process is not None:
            request_id = f"interrupt_{os.urandom(4).hex()}"
            request = {"subtype": "interrupt"}
            self.process.send(
                {"type": "control_request", "request_id": request_id, "request": request}
            )

    def _deadline(self) -> float | None:
        if self.interrupted_at is not None:
            return self.interrupted_at + INTERRUPT_GRACE_S
        if self.result_at is not None:
            return self.result_at + QUEUED_TURN_WAIT_S
        return None

    def _on_deadline(self) -> None:
        now = time.monotonic()
        if self.interrupted_at is not None:
            if now - self.interrupted_at >= INTERRUPT_GRACE_S:
                note("claude did not end its turn after the interrupt request; killing it")
                self._kill()
                self._finish("interrupted")
        elif self.result_at is not None and now - self.result_at >= QUEUED_TURN_WAIT_S:
            note("claude did not take the steering after its turn ended; it is dropped")
            result, self.last_result, self.result_at = self.last_result, None, None
            assert result is not None
            self.replays = len(self.texts)
            self._on_result(result)

    def _kill(self) -> None:
        if self.process is not None:
            self.process.kill_command_groups()
            # SIGINT first: claude then saves the session, which the next turn resumes.
            self.process.kill(grace_s=0.5, first_signal=signal.SIGINT)
        self.adapter.process = None


class ClaudeCodeAdapter(CliAdapter):
    """Drives the `claude` CLI; see the module docstring."""

    CLI = "claude"
    HARNESS = "claudecode"
    PROVIDER = PROVIDER
    # What claude said after the previous turn's result belongs to no turn; its end of output
    # stays queued.
    KEPT_BETWEEN_TURNS = frozenset({"eof"})

    def __init__(self, writer: NdjsonWriter, workspace: str) -> None:
        super().__init__(writer, workspace)
        self.process: CliProcess | None = None
        self.process_key: tuple[str | None, str | None, str | None] | None = None
        self.session_id: str | None = None  # the claude session of this harness process

    def start_process(
        self,
        request: TurnRequest,
        key: tuple[str | None, str | None, str | None],
        resume: str | None,
    ) -> CliProcess:
        base_url = required_setting("CHIRON_ANTHROPIC_BASE_URL")
        cli_bin = required_setting("CHIRON_CLI_BIN")
        config_dir = cli_home("claude")
        model, effort, system_prompt = key
        argv = [
            os.path.join(cli_bin, "claude"),
            "-p",
            "--input-format=stream-json",
            "--output-format=stream-json",
            "--verbose",
            "--include-partial-messages",
            "--replay-user-messages",
            "--permission-mode=bypassPermissions",
        ]
        if model is not None:
            argv.append(f"--model={model}")
        if effort is not None:
            if effort in EFFORTS:
                argv.append(f"--effort={EFFORTS[effort]}")
            else:
                note(f"reasoning_effort {effort!r} is not one claude knows; left to its default")
        if system_prompt is not None:
            argv += ["--append-system-prompt", system_prompt]
        if resume is not None:
            argv += ["--resume", resume]
        env = {
            **os.environ,
            "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_API_KEY": os.environ.get("ANTHROPIC_API_KEY") or "ANTHROPIC_API_KEY",
            "CLAUDE_CONFIG_DIR": config_dir,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_MAX_RETRIES": str(self.max_retries),
            "API_TIMEOUT_MS": str(max(1, round(self.timeout_s * 1000))),
            # bypassPermissions is refused to root unless claude knows it runs sandboxed.
            "IS_SANDBOX": "1",
        }
        process = CliProcess("claude", argv, env=env, cwd=self.workspace, inbox=self.inbox)
        self.process = process
        self.process_key = key
        return process

    def _turn_for(self, request: TurnRequest) -> _Turn:
        return _Turn(self, request)

    def _stop_cli(self) -> None:
        if self.process is not None:
            self.process.close()
            self.process = None
