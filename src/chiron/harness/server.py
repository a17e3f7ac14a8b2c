"""The harness server loop: stdin NDJSON in, adapter calls out (DESIGN.md §7).

stdin carries one JSON object per line: `user` (a turn, or steering while one runs),
`interrupt`, `attachment.chunk`. A line that is not a JSON object is a user turn with that text.
Adapters write notifications through the shared `NdjsonWriter`; bootstrap notices and
diagnostics go to stderr only, because every stdout line is recorded as harness output.
"""

from __future__ import annotations

import _thread
import binascii
import os
import sys

from chiron.harness import protocol
from chiron.harness.wire_json import loads

TYPE_CHECKING = False  # `typing` stays unimported at run time (see the package docstring)
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Protocol

    # What `load_adapter` returns (registry.ADAPTERS names the classes); checked by mypy only.
    class Adapter(Protocol):
        def __init__(self, writer: NdjsonWriter, workspace: str) -> None: ...

        def on_user(self, text: str, line: dict[str, Any] | None) -> None:
            """A user line: starts a turn when idle, steers the running turn otherwise."""

        def on_interrupt(self, reason: str | None) -> None:
            """End the running turn as interrupted; no-op when idle."""

        def close(self) -> None:
            """stdin reached EOF: end any running turn and release resources."""


ATTACHMENTS_DIR = ".attachments"
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ID_CHARS = _ALNUM | frozenset("._-")


class NdjsonWriter:
    """Thread-safe writer of whole lines to stdout (fd 1), unbuffered.

    Once stdout is gone (the control plane's supervisor died) further output is dropped:
    the harness is about to see EOF on stdin and exit.
    """

    def __init__(self, fd: int = 1) -> None:
        self._fd = fd
        self._lock = _thread.allocate_lock()
        self._broken = False

    def emit(self, message: protocol.Message) -> None:
        self.emit_bytes(protocol.encode(message))

    def emit_bytes(self, data: bytes) -> None:
        with self._lock:
            if self._broken:
                return
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError:
                self._broken = True


def note(text: str) -> None:
    sys.stderr.write(f"harness: {text}\n")
    sys.stderr.flush()


def user_text(message: Any) -> str:
    """The text of a `user` line's message: a string, or its `text` blocks concatenated."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            block["text"]
            for block in content
            if isinstance(block, dict)
            and block.get("type") == "text"
            and isinstance(block.get("text"), str)
        )
    return ""


def is_safe_id(value: str) -> bool:
    """Whether `value` matches `[A-Za-z0-9][A-Za-z0-9._-]{0,127}` (`re` costs start-up time)."""
    return 0 < len(value) <= 128 and value[0] in _ALNUM and _ID_CHARS.issuperset(value)


def write_attachment_chunk(workspace: str, line: dict[str, Any]) -> None:
    """Append one staged-upload chunk to `<workspace>/.attachments/<attachmentId>/<name>`."""
    attachment_id, name, data = line.get("attachmentId"), line.get("name"), line.get("dataBase64")
    if not isinstance(attachment_id, str) or not is_safe_id(attachment_id):
        note("attachment.chunk ignored: attachmentId must be [A-Za-z0-9._-], up to 128 chars")
        return
    if not isinstance(name, str) or not isinstance(data, str):
        note(f"attachment.chunk {attachment_id} ignored: name and dataBase64 must be strings")
        return
    safe_name = name.replace("\\", "/").rsplit("/", 1)[-1]
    if safe_name in ("", ".", ".."):
        note(f"attachment.chunk {attachment_id} ignored: unusable file name")
        return
    try:
        payload = binascii.a2b_base64(data)
    except binascii.Error:
        note(f"attachment.chunk {attachment_id} ignored: dataBase64 is not base64")
        return
    directory = os.path.join(workspace, ATTACHMENTS_DIR, attachment_id)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, safe_name), "ab") as f:
        f.write(payload)


def load_adapter(target: str) -> type[Adapter]:
    module_name, _, class_name = target.partition(":")
    __import__(module_name)  # `importlib` itself would cost start-up time
    adapter: type[Adapter] = getattr(sys.modules[module_name], class_name)
    return adapter


def workspace_from_env() -> str:
    """`CHIRON_WORKSPACE` (else the current directory) as an absolute path, spelled the way
    `str(pathlib.Path(...))` spells it: no `.` or empty segment, no trailing slash.

    Absolute because commands are started there by changing the harness's own directory
    (see `command_process`); a relative value is taken from the start-up directory.
    """
    path = os.environ.get("CHIRON_WORKSPACE") or os.getcwd()
    if not path.startswith("/"):
        path = os.path.join(os.getcwd(), path)
    # POSIX keeps a leading `//` (and only exactly two slashes) as it is; pathlib does too.
    root = "//" if path.startswith("//") and not path.startswith("///") else "/"
    return root + "/".join(part for part in path.split("/") if part not in ("", "."))


def serve(adapter: Adapter, workspace: str, stdin: BinaryIO) -> None:
    """Dispatch stdin lines to `adapter` until EOF."""
    for raw in stdin:
        stripped = raw.strip()
        if not stripped:
            continue
        try:
            line = loads(stripped)
        except ValueError:
            line = None
        if not isinstance(line, dict):
            text = line if isinstance(line, str) else raw.rstrip(b"\r\n").decode("utf-8", "replace")
            adapter.on_user(text, None)
            continue
        kind = line.get("type")
        if kind == "user":
            adapter.on_user(user_text(line.get("message")), line)
        elif kind == "interrupt":
            reason = line.get("reason")
            adapter.on_interrupt(reason if isinstance(reason, str) else None)
        elif kind == "attachment.chunk":
            try:
                write_attachment_chunk(workspace, line)
            except OSError as exc:
                note(f"attachment.chunk could not be written: {exc}")
        else:
            note(f"ignored a stdin line of type {kind!r}")
    adapter.close()


def run(adapter_target: str) -> int:
    workspace = workspace_from_env()
    writer = NdjsonWriter()
    adapter = load_adapter(adapter_target)(writer, workspace)
    serve(adapter, workspace, sys.stdin.buffer)
    return 0
