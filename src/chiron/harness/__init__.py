"""The harness: the agent program that runs INSIDE a sandbox (DESIGN.md §7).

Owns: the stdin/stdout NDJSON protocol, the harness server loop and its adapters: `shell`,
`codex` and `claudecode` (which drive the real CLIs mounted into the sandbox) and, in the
`agent` subpackage, `chiron` (our own agent loop). Runs under the sandbox's Python with `-S`: it
must import nothing from the server side of Chiron (store, api, runtime, sandbox backends,
settings); the modules here use only the standard library, and `agent` adds only the model
SDKs, mounted read-only into the sandbox.

Start-up is on the sandbox cold-start path, so the harness imports none of `json`, `typing`,
`pathlib`, `re`, `subprocess`, `signal`, `threading` or `asyncio`: with what they pull in
(`enum`, `collections`, `functools`, …) they cost ~15 ms. `wire_json` wraps the C JSON
accelerator, `command_process` spawns commands with `os.posix_spawn`, `daemon_thread` runs
threads on `_thread`, and `typing` names are imported under `if TYPE_CHECKING:` only (mypy reads
them; `from __future__ import annotations` keeps annotations unevaluated).
tests/harness/test_startup_imports.py keeps it so.
"""
