"""Running the model's tool calls in the workspace, each shown as an item of the turn.

`shell` and `run_tool` run commands (`commandExecution` items with output deltas), `write_file`
changes a file (`fileChange`), the rest are `mcpToolCall` items of the server `chiron`. Writes
are confined to the workspace (after resolving symlinks); reads are not, because `shell` can
read anything anyway and tool documentation may live elsewhere. Tool CLIs are the executables in
PATH directories that are not system directories (tool folders are put on PATH), plus whatever
`chiron-tools list` reports when that command exists.
"""

from __future__ import annotations

import difflib
import os
import shlex
import shutil
import stat
import subprocess
import threading
from dataclasses import dataclass
from typing import Any, BinaryIO

from chiron.harness import protocol
from chiron.harness.agent.commands import CommandResult, CommandRun
from chiron.harness.agent.emitter import TurnEmitter, new_id

SYSTEM_DIRS = frozenset(
    {"/usr/bin", "/bin", "/usr/local/bin", "/usr/sbin", "/sbin", "/usr/local/sbin"}
)
SKIPPED_DIRS = frozenset(
    {".git", "node_modules", "__pycache__", ".venv", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
)
MAX_READ_CHARS = 100_000
MAX_LIST_ENTRIES = 1000
ITEM_TEXT_CHARS = 16 * 1024
MAX_DIFF_CHARS = 64 * 1024
CHIRON_TOOLS_TIMEOUT_S = 10


@dataclass(frozen=True)
class ToolOutcome:
    output: str
    is_error: bool


class ToolError(Exception):
    """The tool ran into a problem the model should hear about (missing file, bad path…)."""


def tool_clis(path_variable: str) -> dict[str, str]:
    """Tool CLI name -> executable path, from PATH's non-system directories, first one wins."""
    found: dict[str, str] = {}
    for entry in path_variable.split(os.pathsep):
        directory = os.path.normpath(entry) if entry else ""
        if not directory or directory in SYSTEM_DIRS or not os.path.isdir(directory):
            continue
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            candidate = os.path.join(directory, name)
            if name not in found and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                found[name] = candidate
    return found


class ToolRunner:
    def __init__(self, workspace: str, emitter: TurnEmitter, command_timeout_s: float) -> None:
        self.workspace = workspace
        self.emitter = emitter
        self.command_timeout_s = command_timeout_s
        self._lock = threading.Lock()
        self._command: CommandRun | None = None
        self._killed = False

    def kill_running(self) -> None:
        """Interrupt: kill the running command, and any started after this."""
        with self._lock:
            self._killed = True
            command = self._command
        if command is not None:
            command.kill()

    def run(self, name: str, arguments: dict[str, Any]) -> ToolOutcome:
        if name == "shell":
            return self._command_tool(arguments["command"], arguments.get("timeout_s"))
        if name == "run_tool":
            return self._run_tool(arguments)
        if name == "write_file":
            return self._write_file(arguments["path"], arguments["content"])
        return self._plain_tool(name, arguments)

    def report_malformed(self, name: str, raw_arguments: str, problem: str) -> None:
        item = protocol.tool_call_item(
            new_id("tool"), "chiron", name, raw_arguments, "failed", error=problem
        )
        self.emitter.started({**item, "status": "inProgress", "error": None})
        self.emitter.completed(item)

    # -- commands ------------------------------------------------------------------------

    def _command_tool(self, command: str, timeout_s: int | None) -> ToolOutcome:
        item_id = new_id("cmd")
        cwd = self.workspace
        limit = float(timeout_s) if timeout_s is not None else self.command_timeout_s
        run = CommandRun(command, cwd, limit, lambda d: self.emitter.output_lines(item_id, d))
        with self._lock:
            self._command = run
            if self._killed:
                run.kill()
        self.emitter.started(protocol.command_execution_item(item_id, command, cwd, "inProgress"))
        try:
            result = run.run()
        finally:
            with self._lock:
                self._command = None
        self.emitter.completed(
            protocol.command_execution_item(
                item_id,
                command,
                cwd,
                "completed" if result.exit_code == 0 and not result.killed else "failed",
                exit_code=result.exit_code,
                aggregated_output=result.item_output,
                duration_ms=result.duration_ms,
            )
        )
        return ToolOutcome(_command_report(result, limit), is_error=result.exit_code != 0)

    def _run_tool(self, arguments: dict[str, Any]) -> ToolOutcome:
        name: str = arguments["tool"]
        clis = tool_clis(os.environ.get("PATH", ""))
        if "/" in name or name not in clis:
            known = ", ".join(sorted(clis)) or "none"
            return ToolOutcome(
                f"error: {name!r} is not an installed tool CLI (installed: {known}); "
                "use shell for other commands",
                is_error=True,
            )
        command = shlex.join([clis[name], *arguments.get("args", [])])
        return self._command_tool(command, arguments.get("timeout_s"))

    # -- files ---------------------------------------------------------------------------

    def _resolve(self, path: str) -> str:
        if "\x00" in path:
            raise ToolError("the path contains a NUL byte")
        return os.path.normpath(os.path.join(self.workspace, os.path.expanduser(path)))

    def _confined(self, path: str) -> str:
        target = self._resolve(path)
        root = os.path.realpath(self.workspace)
        real = os.path.realpath(target)
        if real == root or os.path.commonpath([root, real]) != root:
            raise ToolError(
                f"{path!r} is outside the workspace {self.workspace}; "
                "write_file only writes files inside it"
            )
        return target

    def _write_file(self, path: str, content: str) -> ToolOutcome:
        item_id = new_id("patch")
        try:
            target = self._confined(path)
        except ToolError as exc:
            return ToolOutcome(f"error: {exc}", is_error=True)
        change = {"path": target, "kind": {"type": "add"}, "diff": ""}
        self.emitter.started(protocol.file_change_item(item_id, [change], "inProgress"))
        try:
            old = _read_text(target) if os.path.lexists(target) else None
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write(content)
        except (OSError, ToolError) as exc:
            self.emitter.completed(protocol.file_change_item(item_id, [change], "failed"))
            return ToolOutcome(f"error: cannot write {path}: {_reason(exc)}", is_error=True)
        relative = os.path.relpath(target, self.workspace)
        diff = "".join(
            difflib.unified_diff(
                (old or "").splitlines(keepends=True),
                content.splitlines(keepends=True),
                "/dev/null" if old is None else f"a/{relative}",
                f"b/{relative}",
            )
        )
        change["kind"] = {"type": "add" if old is None else "update"}
        change["diff"] = diff[:MAX_DIFF_CHARS]
        self.emitter.completed(protocol.file_change_item(item_id, [change], "completed"))
        verb = "created" if old is None else "updated"
        return ToolOutcome(
            f"{verb} {relative} ({len(content.encode('utf-8', 'surrogateescape'))} bytes)",
            is_error=False,
        )

    def _plain_tool(self, name: str, arguments: dict[str, Any]) -> ToolOutcome:
        item_id = new_id("tool")
        self.emitter.started(
            protocol.tool_call_item(item_id, "chiron", name, arguments, "inProgress")
        )
        try:
            if name == "read_file":
                output = self._read_file(
                    arguments["path"], arguments.get("offset", 1), arguments.get("limit")
                )
            elif name == "list_files":
                output = self._list_files(
                    arguments.get("path", "."), arguments.get("recursive", False)
                )
            else:
                output = self._list_tools()
        except ToolError as exc:
            message = f"error: {exc}"
            self.emitter.completed(
                protocol.tool_call_item(item_id, "chiron", name, arguments, "failed", error=message)
            )
            return ToolOutcome(message, is_error=True)
        result = {"content": [{"type": "text", "text": output[:ITEM_TEXT_CHARS]}]}
        self.emitter.completed(
            protocol.tool_call_item(item_id, "chiron", name, arguments, "completed", result=result)
        )
        return ToolOutcome(output, is_error=False)

    def _read_file(self, path: str, offset: int, limit: int | None) -> str:
        target = self._resolve(path)
        try:
            info = os.stat(target)
            if stat.S_ISDIR(info.st_mode):
                raise ToolError(f"{path} is a directory; use list_files")
            if not stat.S_ISREG(info.st_mode):
                # A FIFO or device could block the turn (`/dev/stdin` is the harness's stdin).
                raise ToolError(f"{path} is not a regular file; use shell to inspect it")
            with open(target, "rb") as f:
                if b"\x00" in f.read(8192):
                    raise ToolError(
                        f"{path} looks binary ({info.st_size} bytes); inspect it with shell tools"
                    )
                f.seek(0)
                return _read_lines(f, path, offset, limit)
        except OSError as exc:
            raise ToolError(f"cannot read {path}: {_reason(exc)}") from None

    def _list_files(self, path: str, recursive: bool) -> str:
        target = self._resolve(path)
        if not os.path.isdir(target):
            raise ToolError(
                f"{path} is not a directory"
                if os.path.exists(target)
                else f"no such directory: {path}"
            )
        entries: list[str] = []
        try:
            if not recursive:
                for entry in sorted(os.scandir(target), key=lambda e: e.name):
                    entries.append(entry.name + ("/" if entry.is_dir() else ""))
            else:
                for root, dirs, files in os.walk(target):
                    dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
                    relative = os.path.relpath(root, target)
                    prefix = "" if relative == "." else relative + "/"
                    entries.extend(prefix + d + "/" for d in dirs)
                    entries.extend(prefix + f for f in sorted(files))
                    if len(entries) > MAX_LIST_ENTRIES:
                        break
        except OSError as exc:
            raise ToolError(f"cannot list {path}: {_reason(exc)}") from None
        if not entries:
            return "(empty directory)"
        listing = sorted(entries) if recursive else entries
        text = "\n".join(listing[:MAX_LIST_ENTRIES])
        if len(listing) > MAX_LIST_ENTRIES:
            text += f"\n[… more than {MAX_LIST_ENTRIES} entries; list a subdirectory]"
        return text

    def _list_tools(self) -> str:
        clis = tool_clis(os.environ.get("PATH", ""))
        parts = []
        if clis:
            width = max(map(len, clis))
            parts.append("\n".join(f"{name:<{width}}  {path}" for name, path in clis.items()))
        chiron_tools = shutil.which("chiron-tools")
        if chiron_tools is not None:
            try:
                listed = subprocess.run(
                    [chiron_tools, "list"],
                    capture_output=True,
                    text=True,
                    errors="replace",
                    timeout=CHIRON_TOOLS_TIMEOUT_S,
                    check=False,
                    cwd=self.workspace,
                    stdin=subprocess.DEVNULL,
                )
                parts.append(f"`chiron-tools list`:\n{listed.stdout}{listed.stderr}".rstrip())
            except (OSError, subprocess.SubprocessError) as exc:
                parts.append(f"`chiron-tools list` failed: {exc}")
        return "\n\n".join(parts) or "no tool CLIs are installed"


def _read_lines(f: BinaryIO, path: str, offset: int, limit: int | None) -> str:
    """Lines `offset`… (at most `limit`, at most MAX_READ_CHARS), memory bounded even for a
    file that is one huge line."""
    lines: list[str] = []
    chars = 0
    number = 1  # the line the next piece belongs to
    more_from: int | None = None
    partial_last = False
    while piece := f.readline(MAX_READ_CHARS):
        partial_last = not piece.endswith(b"\n")
        current = number
        if piece.endswith(b"\n"):
            number += 1
        if current < offset:
            continue
        if (limit is not None and current >= offset + limit) or (
            lines and chars + len(piece) > MAX_READ_CHARS
        ):
            more_from = current
            break
        text = piece.decode("utf-8", "replace")
        lines.append(text)
        chars += len(text)
    if not lines and offset > 1:
        count = number - 1 + partial_last
        return f"({path} has {count} lines; nothing from line {offset} on)"
    text = "".join(lines)
    if more_from is not None and not text.endswith("\n"):
        text += f"\n[… line {more_from} is too long to show whole; read it with shell tools]"
    elif more_from is not None:
        text += f"\n[… the file goes on; read on with offset={more_from}]"
    return text


def _read_text(path: str) -> str:
    if os.path.isdir(path):
        raise ToolError("it is a directory")
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _command_report(result: CommandResult, limit: float) -> str:
    head = f"exit code: {result.exit_code}"
    if result.timed_out:
        head = f"timed out after {limit:g} s: the command was killed ({head})"
    elif result.killed:
        head = f"interrupted: the command was killed ({head})"
    return f"{head}\n{result.output}" if result.output else f"{head}\n(no output)"
