"""The `codex` adapter: drives the real `codex app-server` over JSON-RPC on stdio.

One app-server runs per harness process, started by the first turn with its own `CODEX_HOME`
(`$HOME/.chiron-harness/codex`: a `config.toml` written at each start, and codex's thread
records, which outlive the harness process so a later one can resume the thread). The config
points codex at `CHIRON_OPENAI_BASE_URL` (Responses API, key from `OPENAI_API_KEY`, a
placeholder the egress proxy swaps), never asks for approval and does not sandbox commands
(the sandbox around the harness is the boundary), and maps `CHIRON_MODEL_MAX_RETRIES` and
`CHIRON_MODEL_TIMEOUT_S` to codex's retry and stream-idle settings.

Requests (one JSON object per line, no `"jsonrpc"` field): `initialize` + `initialized`, then
`thread/resume` of the session's thread when there is one (else, or when that fails,
`thread/start`, with the session's transcript put before the first message), `turn/start`,
`turn/steer` for steering and `turn/interrupt`. Codex's notifications already are the harness
dialect: `item/*`, deltas, plans, token usage and retrying `error`s pass through, re-labelled
with this turn's id. Everything that decides how a turn ends stays here, so each turn has
exactly one terminal `turn/completed`: codex's own `turn/completed` and final `error` are folded
into it. Steering that codex cannot take any more (its turn just ended) runs as a follow-up codex
turn inside the same harness turn.

Codex never gives up on a model server that accepts a request and stays silent, or that cannot
be reached; a turn that sees no progress for `CHIRON_MODEL_TIMEOUT_S` x (retries + 1) while no
command or tool runs is therefore interrupted and fails. A dead app-server fails the turn and
is started again (resuming the thread) by the next one.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from chiron.harness import protocol
from chiron.harness.cli_adapter import CliAdapter, CliGone, CliTurn, cli_home, required_setting
from chiron.harness.cli_process import CliProcess, Event, TurnRequest
from chiron.harness.server import NdjsonWriter, note

PROVIDER = "openai"
DEFAULT_MODEL = "gpt-5-codex"
SETUP_TIMEOUT_S = 60.0  # for the answers to initialize, thread/start|resume and turn/start
INTERRUPT_GRACE_S = 2.0  # after turn/interrupt, kill codex if its turn has not ended yet
# Notifications passed through as they are (but for the turn id); the rest is codex's
# connection and account chatter, or turn bookkeeping this adapter does itself.
PASSED_PREFIXES = ("item/",)
PASSED_METHODS = frozenset({"turn/plan/updated", "turn/diff/updated", "thread/tokenUsage/updated"})
NOTED_METHODS = frozenset({"warning", "configWarning", "deprecationNotice", "guardianWarning"})
# Items during which silence is expected (a command may run for a long time).
TOOL_ITEM_TYPES = frozenset(
    {"commandExecution", "fileChange", "mcpToolCall", "dynamicToolCall", "webSearch"}
)
ERROR_CAUSES = {
    "unauthorized": "the model API rejected the key (HTTP 401)",
    "badRequest": "the model API rejected the request (HTTP 400)",
    "internalServerError": "the model API returned a server error (HTTP 5xx)",
    "serverOverloaded": "the model API is overloaded",
    "rateLimitExceeded": "the model API's rate limit was reached",
    "usageLimitExceeded": "the model API's usage limit was reached",
    "modelNotFound": "the model API does not know the model",
    "contextWindowExceeded": "the conversation no longer fits the model's context window",
}


def _toml_string(value: str) -> str:
    # A JSON string with non-ASCII kept is a valid TOML basic string (escapes included).
    return json.dumps(value, ensure_ascii=False)


def codex_config(base_url: str, model: str, max_retries: int, timeout_s: float) -> str:
    """The `config.toml` of the harness's `CODEX_HOME`."""
    return (
        f"model = {_toml_string(model)}\n"
        'model_provider = "chiron"\n'
        'approval_policy = "never"\n'
        'sandbox_mode = "danger-full-access"\n'
        "check_for_update_on_startup = false\n"
        'web_search = "disabled"\n'
        "\n[analytics]\nenabled = false\n"
        "\n[features]\nplugins = false\n"
        "\n[model_providers.chiron]\n"
        'name = "Chiron model endpoint"\n'
        f"base_url = {_toml_string(base_url)}\n"
        'env_key = "OPENAI_API_KEY"\n'
        'wire_api = "responses"\n'
        f"request_max_retries = {max_retries}\n"
        f"stream_max_retries = {max_retries}\n"
        f"stream_idle_timeout_ms = {max(1, round(timeout_s * 1000))}\n"
    )


def error_text(error: Any) -> str:
    """A readable sentence from a codex `TurnError` (`message`, `codexErrorInfo`, details)."""
    if not isinstance(error, dict):
        return "codex reported an error without details"
    message = str(error.get("message") or "codex reported an error without details")
    details = error.get("additionalDetails")
    if isinstance(details, str) and details and details not in message:
        message = f"{message} ({details})"
    info = error.get("codexErrorInfo")
    cause = ERROR_CAUSES.get(info) if isinstance(info, str) else None
    if isinstance(info, dict) and info:
        status = next(iter(info.values()))
        code = status.get("httpStatusCode") if isinstance(status, dict) else None
        cause = "the model API request failed" + (f" (HTTP {code})" if code else "")
    return f"{cause}: {message}" if cause else f"codex: {message}"


class _AppServer:
    """A running `codex app-server` and its request ids."""

    def __init__(self, process: CliProcess) -> None:
        self.process = process
        self._next_id = 0
        self.thread_loaded: str | None = None  # the thread started or resumed in it

    def request(self, method: str, params: dict[str, Any]) -> int | None:
        """Send a request; its id, or None when codex no longer reads its stdin."""
        self._next_id += 1
        sent = self.process.send({"id": self._next_id, "method": method, "params": params})
        return self._next_id if sent else None

    def notify(self, method: str) -> None:
        self.process.send({"method": method})

    def refuse(self, request_id: Any, method: str) -> None:
        note(f"codex asked {method!r}, which the harness does not answer; refused")
        self.process.send(
            {"id": request_id, "error": {"code": -32601, "message": f"{method} is unsupported"}}
        )


class _Turn(CliTurn["CodexAdapter"]):
    """One harness turn: one or more codex turns (steering follow-ups) on one codex thread."""

    thread_id: str = ""  # the codex thread, once loaded

    def __init__(self, adapter: CodexAdapter, request: TurnRequest) -> None:
        super().__init__(adapter, request)
        self.server: _AppServer | None = None
        self.pending_texts: list[str] = []  # steering for the next codex turn
        self.steer_requests: dict[int, str] = {}
        self.start_request: int | None = None
        self.started = False  # the first codex turn was asked for
        self.codex_turn: str | None = None  # the codex turn running now
        self.failure: str | None = None
        self.last_error: str | None = None
        self.last_progress = time.monotonic()
        self.open_tools: set[str] = set()

    # -- the turn thread ---------------------------------------------------------------

    def _process(self) -> CliProcess | None:
        return self.server.process if self.server is not None else None

    def _emit(self, message: protocol.Message) -> None:
        self.adapter.writer.emit(message)

    def _start(self) -> None:
        text = self._open_thread()
        if self.done:
            return
        self._announce()
        if self.interrupted_at is not None:
            self._finish("interrupted")
            return
        self._start_codex_turn([text, *self._take_pending()])

    def _open_thread(self) -> str:
        """Make sure an app-server runs with the thread loaded; the first input text."""
        adapter, request = self.adapter, self.request
        server = adapter.server
        if server is None or not server.process.alive():
            if server is not None:
                note(f"codex app-server is gone ({server.process.exit_description()}); restarting")
                server.process.kill()
            adapter.server = server = None
            try:
                server = adapter.start_server(request)
            except (OSError, ValueError) as exc:
                self._finish("failed", f"cannot start codex app-server: {exc}")
                return ""
            adapter.server = self.server = server
            self._call(
                "initialize",
                {"clientInfo": {"name": "chiron", "title": "Chiron harness", "version": "1"}},
            )
            server.notify("initialized")
        self.server = server
        if server.thread_loaded is not None:
            self.thread_id = server.thread_loaded
            return request.text
        settings: dict[str, Any] = {
            "cwd": adapter.workspace,
            "approvalPolicy": "never",
            "sandbox": "danger-full-access",
        }
        if request.system_prompt is not None:
            settings["developerInstructions"] = request.system_prompt
        earlier = adapter.thread_id or request.harness_thread_id
        if earlier is not None:
            answer = self._call("thread/resume", {"threadId": earlier, **settings}, fail_ok=True)
            if "result" in answer:
                server.thread_loaded = self.thread_id = earlier
                adapter.thread_id = earlier
                return request.text
            reason = error_text(answer.get("error"))
            note(f"cannot resume codex thread {earlier}: {reason}; starting a new thread")
        answer = self._call("thread/start", {**settings, "model": self._model()}, fail_ok=False)
        thread = answer["result"].get("thread")
        thread_id = thread.get("id") if isinstance(thread, dict) else None
        if not isinstance(thread_id, str):
            raise CliGone("codex answered thread/start without a thread id")
        server.thread_loaded = self.thread_id = adapter.thread_id = thread_id
        return request.with_transcript()

    def _model(self) -> str:
        return self.request.model_for(PROVIDER, DEFAULT_MODEL) or DEFAULT_MODEL

    def _call(
        self, method: str, params: dict[str, Any], *, fail_ok: bool = False
    ) -> dict[str, Any]:
        """A set-up request and its answer; other events are handled while waiting."""
        assert self.server is not None
        request_id = self.server.request(method, params)
        if request_id is None:
            raise CliGone(self._gone_text())
        deadline = time.monotonic() + SETUP_TIMEOUT_S
        while True:
            event = self.adapter.inbox.get(deadline - time.monotonic())
            if event is None:
                self.server.process.kill()
                self.adapter.server = None
                raise CliGone(f"codex app-server did not answer {method} in {SETUP_TIMEOUT_S:g} s")
            message = event.payload
            answered = event.kind == "msg" and event.source is self.server.process
            if answered and message.get("id") == request_id and "method" not in message:
                if "error" in message and not fail_ok:
                    raise CliGone(f"codex refused {method}: {error_text(message['error'])}")
                return dict(message)
            self._on_event(event)
            if self.done:
                raise CliGone("")  # already finished (the app-server died)

    def _gone_text(self) -> str:
        if self.server is None:
            return "codex app-server is not running"
        return self.server.process.unexpected_exit("codex app-server")

    def _take_pending(self) -> list[str]:
        texts, self.pending_texts = self.pending_texts, []
        return texts

    def _start_codex_turn(self, texts: list[str]) -> None:
        assert self.server is not None
        params: dict[str, Any] = {
            "threadId": self.thread_id,
            "input": [{"type": "text", "text": text} for text in texts],
            "model": self._model(),
        }
        if self.request.reasoning_effort is not None:
            params["effort"] = self.request.reasoning_effort
        self.codex_turn = None
        self.started = True
        self.start_request = self.server.request("turn/start", params)
        if self.start_request is None:
            raise CliGone(self._gone_text())
        self.last_progress = time.monotonic()

    # -- events ------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if event.kind == "steer":
            self.steers_received += 1
            self._steer(event.payload)
            if self.started:
                self._maybe_follow_up()
        elif event.kind == "interrupt":
            self._interrupt()
        elif self.server is None or event.source is not self.server.process:
            return  # from an app-server this turn replaced
        elif event.kind == "eof":
            message = self._gone_text()
            self.server.process.kill(grace_s=0.2)
            self.adapter.server = None
            self._finish_failed_or_interrupted(message)
        else:
            self._on_message(event.payload)

    def _on_message(self, message: dict[str, Any]) -> None:
        assert self.server is not None
        method = message.get("method")
        if "id" in message and isinstance(method, str):
            self.server.refuse(message["id"], method)
        elif "id" in message:
            self._on_response(message)
        elif isinstance(method, str):
            params = message.get("params")
            self._on_notification(method, params if isinstance(params, dict) else {})

    def _on_response(self, message: dict[str, Any]) -> None:
        request_id = message.get("id")
        error = message.get("error")
        if request_id == self.start_request:
            self.start_request = None
            if error is not None:
                self._finish("failed", f"codex refused turn/start: {error_text(error)}")
                return
            result = message.get("result")
            turn = result.get("turn") if isinstance(result, dict) else None
            self.codex_turn = turn.get("id") if isinstance(turn, dict) else None
            if self.interrupted_at is not None:
                self._send_interrupt()
            elif self.pending_texts:
                for text in self._take_pending():
                    self._steer(text)
        elif isinstance(request_id, int) and request_id in self.steer_requests:
            text = self.steer_requests.pop(request_id)
            if error is not None:
                # Its turn ended meanwhile: the text starts a follow-up codex turn instead.
                self.pending_texts.append(text)
                self._maybe_follow_up()

    def _on_notification(self, method: str, params: dict[str, Any]) -> None:
        thread_id = params.get("threadId")
        if thread_id is not None and thread_id != self.thread_id:
            return  # a sub-agent's thread
        if method == "turn/completed":
            self._on_codex_turn_completed(params)
        elif method == "error":
            self._on_error(params)
        elif method.startswith(PASSED_PREFIXES) or method in PASSED_METHODS:
            self._pass(method, params)
        elif method in NOTED_METHODS:
            note(f"codex {method}: {params.get('message') or params}")

    def _pass(self, method: str, params: dict[str, Any]) -> None:
        if method.startswith("item/"):
            self.last_progress = time.monotonic()
            item = params.get("item")
            if isinstance(item, dict) and item.get("type") in TOOL_ITEM_TYPES:
                item_id = str(item.get("id"))
                if method == "item/started":
                    self.open_tools.add(item_id)
                elif method == "item/completed":
                    self.open_tools.discard(item_id)
        if "turnId" in params:
            params = {**params, "turnId": self.turn_id}
        self._emit(protocol.notification(method, params))

    def _on_error(self, params: dict[str, Any]) -> None:
        if params.get("willRetry") is True:
            self._pass("error", params)
        else:
            # Never passed on: it would end the turn a second time (see protocol.py).
            self.last_error = error_text(params.get("error"))

    def _on_codex_turn_completed(self, params: dict[str, Any]) -> None:
        turn = params.get("turn")
        if not isinstance(turn, dict):
            return
        turn_id = turn.get("id")
        if self.codex_turn is None and self.start_request is not None:
            # Its turn/start answer is still on the way (and is of no use any more).
            self.codex_turn, self.start_request = turn_id, None
        if turn_id != self.codex_turn:
            return
        self.codex_turn = None
        status = turn.get("status")
        if self.failure is not None or self.interrupted_at is not None:
            self._finish_failed_or_interrupted(self.failure or "")
        elif status == "completed":
            self._maybe_follow_up()
        elif status == "interrupted":
            self._finish("interrupted")
        else:
            error = turn.get("error")
            message = error_text(error) if error else self.last_error
            self._finish("failed", message or f"codex ended the turn as {status!r}")

    def _maybe_follow_up(self) -> None:
        """After a completed codex turn: run steering it missed, or end the harness turn."""
        if not self.started or self.codex_turn is not None or self.start_request is not None:
            return
        if self.done:
            return
        if self.steer_requests:
            return  # their answers decide whether a follow-up is needed
        if self.pending_texts:
            self._start_codex_turn(self._take_pending())
            return
        self._finish("completed")

    # -- stdin commands ----------------------------------------------------------------

    def _steer(self, text: str) -> None:
        if self.interrupted_at is not None or self.done:
            note("steering dropped: the turn is being interrupted")
            return
        if self.server is None or self.codex_turn is None:
            self.pending_texts.append(text)
            return
        request_id = self.server.request(
            "turn/steer",
            {
                "threadId": self.thread_id,
                "expectedTurnId": self.codex_turn,
                "input": [{"type": "text", "text": text}],
            },
        )
        if request_id is not None:
            self.steer_requests[request_id] = text

    def _interrupt(self) -> None:
        if self.interrupted_at is not None:
            return
        self.interrupted_at = time.monotonic()
        self._send_interrupt()

    def _send_interrupt(self) -> None:
        if self.server is not None and self.codex_turn is not None:
            self.server.request(
                "turn/interrupt", {"threadId": self.thread_id, "turnId": self.codex_turn}
            )

    # -- deadlines ---------------------------------------------------------------------

    def _deadline(self) -> float:
        if self.interrupted_at is not None:
            return self.interrupted_at + INTERRUPT_GRACE_S
        if self.open_tools:
            return time.monotonic() + 3600.0
        return self.last_progress + self.adapter.stall_s

    def _on_deadline(self) -> None:
        now = time.monotonic()
        if self.interrupted_at is not None:
            if now - self.interrupted_at >= INTERRUPT_GRACE_S:
                # Codex did not end its turn: end the app-server (restarted by the next turn).
                note("codex did not end its turn after turn/interrupt; killing the app-server")
                if self.server is not None:
                    self.server.process.kill_command_groups()
                    self.server.process.kill()
                self.adapter.server = None
                self._finish_failed_or_interrupted(self.failure or "")
        elif not self.open_tools and now - self.last_progress >= self.adapter.stall_s:
            self.failure = (
                f"the model API gave no answer for {self.adapter.stall_s:g} s "
                "(CHIRON_MODEL_TIMEOUT_S x (CHIRON_MODEL_MAX_RETRIES + 1))"
            )
            if self.last_error:
                self.failure += f"; last error: {self.last_error}"
            self._interrupt()

    # -- the end -----------------------------------------------------------------------

    def _finish_on_error(self, message: str) -> None:
        self._finish_failed_or_interrupted(message)

    def _finish_failed_or_interrupted(self, message: str) -> None:
        if self.failure is None and self.interrupted_at is not None:
            self._finish("interrupted")
        else:
            self._finish("failed", self.failure or message or "the codex turn failed")

    def _on_finished(self) -> None:
        if self.pending_texts or self.steer_requests:
            note("steering dropped: the turn ended before codex could take it")


class CodexAdapter(CliAdapter):
    """Drives `codex app-server`; see the module docstring."""

    CLI = "codex"
    HARNESS = "codex"
    PROVIDER = PROVIDER

    def __init__(self, writer: NdjsonWriter, workspace: str) -> None:
        super().__init__(writer, workspace)
        self.server: _AppServer | None = None
        self.thread_id: str | None = None  # the codex thread of this harness process
        self.stall_s = self.timeout_s * (self.max_retries + 1)

    def start_server(self, request: TurnRequest) -> _AppServer:
        base_url = required_setting("CHIRON_OPENAI_BASE_URL")
        cli_bin = required_setting("CHIRON_CLI_BIN")
        home = cli_home("codex")
        model = request.model_for(PROVIDER, DEFAULT_MODEL) or DEFAULT_MODEL
        config = codex_config(base_url, model, self.max_retries, self.timeout_s)
        with open(os.path.join(home, "config.toml"), "w", encoding="utf-8") as f:
            f.write(config)
        process = CliProcess(
            "codex",
            [os.path.join(cli_bin, "codex"), "app-server"],
            env={**os.environ, "CODEX_HOME": home},
            cwd=self.workspace,
            inbox=self.inbox,
        )
        return _AppServer(process)

    def _turn_for(self, request: TurnRequest) -> _Turn:
        return _Turn(self, request)

    def _stop_cli(self) -> None:
        if self.server is not None:
            self.server.process.close()
            self.server = None
