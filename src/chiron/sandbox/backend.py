"""The contract every sandbox backend fulfils (DESIGN.md §6).

DESIGN.md's `open_io` / `read_output_since` pair is expressed here as `write_input` plus
`open_output(sandbox_id, offset)`: the harness's stdout is recorded by the sandbox into an
append-only log, and a reader names the byte offset it wants to continue from. Replaying missed
output after a control-plane restart and tailing live output are then the same call, and an
offset stored next to the events it produced makes the hand-over exactly-once.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Protocol


class SandboxState(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    SUSPENDED = "suspended"
    STOPPED = "stopped"
    GONE = "gone"


class SandboxError(Exception):
    """A sandbox operation failed; the message is safe to show to users."""


class SandboxUnavailable(SandboxError):
    """The backend cannot create sandboxes here (no bubblewrap, bad configuration)."""


class SandboxLost(SandboxError):
    """The sandbox or its harness went away while it was needed."""


@dataclass(frozen=True)
class ResourceLimits:
    memory_bytes: int
    cpu_seconds: int
    max_processes: int
    file_bytes: int


@dataclass(frozen=True)
class EgressBinding:
    """A sandbox's only way out: an egress proxy listener on a host unix socket (DESIGN.md §6).

    The socket's directory is mounted into the sandbox (read-only), so it must hold nothing
    but this sandbox's socket; a listener re-created there after a restart is found again.
    `ca_cert` is the proxy CA's certificate (never its key): the sandbox trusts only it.
    Inside, the proxy answers on 127.0.0.1:`proxy_port`, announced by `HTTP(S)_PROXY`.
    """

    socket_path: Path
    ca_cert: Path
    proxy_port: int = 3128

    def __post_init__(self) -> None:
        if not 0 < self.proxy_port < 65536:
            raise ValueError(f"proxy_port {self.proxy_port} is not a TCP port")


@dataclass(frozen=True)
class SandboxSpec:
    sandbox_id: str
    harness: str
    limits: ResourceLimits
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    principal_id: str | None = None
    # None: no network at all but loopback (as before the egress proxy existed).
    egress: EgressBinding | None = None
    # Host folders mounted read-only at these sandbox paths (model SDKs, harness CLIs).
    read_only_mounts: dict[str, Path] = field(default_factory=dict)


class OutputLine(NamedTuple):
    """One harness stdout line read from the sandbox's output log (a tuple: one per line).

    `end_offset` is the log offset just past this line's newline: store it with the event and
    resume from it. `original_bytes` is set when the line was longer than the cap and `data`
    holds only its kept prefix.
    """

    data: bytes
    end_offset: int
    original_bytes: int | None = None


@dataclass(frozen=True)
class InputReceipt:
    """`offset`: the output-log end when the lines reached stdin; the turn's output follows it."""

    offset: int
    written: bool


@dataclass(frozen=True)
class SandboxInfo:
    sandbox_id: str
    state: SandboxState
    labels: dict[str, str]


class SandboxBackend(Protocol):
    async def create(
        self, spec: SandboxSpec, *, on_serving: Callable[[], None] | None = None
    ) -> str:
        """Start a sandbox; returns once its harness runs and accepts input.

        `on_serving` is called as soon as input can be written: it waits in the harness's stdin
        while the harness starts (and if the harness then fails to start, this still raises).
        """

    async def status(self, sandbox_id: str) -> SandboxState: ...

    async def write_input(self, sandbox_id: str, lines: list[str], *, token: str) -> InputReceipt:
        """Write NDJSON lines to the harness's stdin, at most once per `token`.

        Lines with an already delivered token are not written again; the receipt then says so
        and carries the original offset. Raises SandboxLost when the sandbox is not running.
        """

    async def input_delivered(self, sandbox_id: str, token: str) -> int | None:
        """The output-log offset at which `token`'s lines were written, or None if never."""

    async def output_end(self, sandbox_id: str) -> int:
        """Offset of the end of the output log right now."""

    def open_output(
        self, sandbox_id: str, offset: int, *, line_cap: int
    ) -> AsyncIterator[list[OutputLine]]:
        """Lines recorded from `offset` on, then live ones as they come, in order, as lists
        (the lines of each chunk read: per-line iteration costs too much in a flood).

        The iterator ends when the harness's stdout reached EOF and every recorded line was
        yielded; it raises SandboxLost if the sandbox disappears without an orderly EOF.
        """

    async def pause(self, sandbox_id: str) -> None: ...

    async def resume(self, sandbox_id: str) -> None: ...

    async def stop(self, sandbox_id: str) -> None:
        """Kill every process of the sandbox and remove its files; idempotent."""

    async def list(self) -> list[SandboxInfo]: ...
