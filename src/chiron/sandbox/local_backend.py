"""The local sandbox backend: bubblewrap sandboxes on this machine, one supervisor each.

Owns the lifecycle of sandboxes under `settings.sandboxes_dir` (DESIGN.md §6): preparing the
directory, starting the detached supervisor (`supervisor.py`) that runs the harness, and
talking to it. Sandboxes survive a control-plane restart; every method works from what is on
disk and what the supervisors answer, with no in-memory state that matters after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import chiron
from chiron.sandbox import bwrap_command, host_processes, supervisor
from chiron.sandbox.backend import (
    InputReceipt,
    OutputLine,
    SandboxError,
    SandboxInfo,
    SandboxLost,
    SandboxSpec,
    SandboxState,
    SandboxUnavailable,
)
from chiron.sandbox.output_lines import LineSplitter
from chiron.sandbox.sandbox_dir import SandboxDir, check_sandbox_id
from chiron.sandbox.supervisor_client import (
    OutputStream,
    SupervisorRefused,
    SupervisorUnreachable,
    open_output_stream,
    request,
)
from chiron.settings import Settings

_SUPERVISOR_DIR = str(Path(supervisor.__file__).resolve().parent)
# Imported rather than run as a script so its bytecode is cached (compiling it costs ~5 ms of
# cold start); appended to sys.path so nothing next to it can shadow a stdlib module.
_SUPERVISOR_BOOT = (
    "import sys; sys.path.append(sys.argv[1]); import supervisor; "
    "sys.exit(supervisor.main(sys.argv[1:]))"
)
_STANDBY_BOOT = (
    "import sys; sys.path.append(sys.argv[1]); import supervisor; "
    "sys.exit(supervisor.standby(sys.argv[1:]))"
)
_SUPERVISOR_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
_REQUEST_TIMEOUT_S = 10.0
_WRITE_TIMEOUT_S = 60.0
_READ_CHUNK = 1 << 20
_NOFILE = 4096
# The spare supervisor that replaces a used one starts this much later, so its interpreter does
# not compete for the CPU with the new sandbox's own start-up and first turn.
_SPARE_RESTART_DELAY_S = 0.05
_STATES = {"running": SandboxState.RUNNING, "suspended": SandboxState.SUSPENDED}


class LocalSandboxBackend:
    """`SandboxBackend` on this machine; isolation per `settings.sandbox_isolation`.

    Raises SandboxUnavailable at construction when isolation is `bwrap` and bubblewrap (or,
    as root, setpriv) is missing, or the sandbox Python is unusable.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        bwrap_path: str = "bwrap",
        setpriv_path: str = "setpriv",
        socat_path: str = "socat",
        keep_spare_supervisor: bool = False,
    ) -> None:
        self._settings = settings
        self._isolated = settings.sandbox_isolation == "bwrap"
        self._as_root = os.geteuid() == 0
        self._python = str(settings.sandbox_python)
        self._package_dir = Path(chiron.__file__).resolve().parent
        self._bwrap: str | None = None
        self._setpriv: str | None = None
        # The egress bridge; only needed (and checked) for sandboxes with an egress binding.
        self._socat = shutil.which(socat_path)
        self._rng = random.SystemRandom()
        self._uid_lock = threading.Lock()
        self._uids: dict[str, int] = {}
        self._creating: set[str] = set()
        # A supervisor process started ahead of time (see supervisor.standby): a cold sandbox
        # then skips an interpreter start. Kept only when asked, and ended by `close()`.
        self._keep_spare = keep_spare_supervisor
        self._spare: subprocess.Popen[bytes] | None = None
        self._spare_timer: asyncio.TimerHandle | None = None
        self._locate_tools(bwrap_path, setpriv_path)

    # -- configuration -----------------------------------------------------------------

    @property
    def isolation_note(self) -> str | None:
        """A user-facing notice when sandboxes are not isolated (None when they are)."""
        if self._isolated:
            return None
        return (
            "Sandbox isolation is off (CHIRON_SANDBOX_ISOLATION=none): the harness runs "
            "directly on the host as the server's user, with its files and network."
        )

    def _locate_tools(self, bwrap_path: str, setpriv_path: str) -> None:
        if not os.access(self._python, os.X_OK):
            raise SandboxUnavailable(
                f"CHIRON_SANDBOX_PYTHON {self._python!r} is not an executable file"
            )
        if not self._isolated:
            return
        self._bwrap = shutil.which(bwrap_path)
        if self._bwrap is None:
            raise SandboxUnavailable(
                f"bubblewrap ({bwrap_path!r}) is not installed or not on PATH: install it "
                "(apt install bubblewrap) or set CHIRON_SANDBOX_ISOLATION=none to run "
                "harnesses without isolation"
            )
        if self._as_root:
            self._setpriv = shutil.which(setpriv_path)
            if self._setpriv is None or not self._setpriv.startswith("/usr/"):
                raise SandboxUnavailable(
                    f"setpriv ({setpriv_path!r}) under /usr is needed to drop root inside "
                    "sandboxes: install util-linux"
                )
        if not self._python.startswith("/usr/"):
            raise SandboxUnavailable(
                f"CHIRON_SANDBOX_PYTHON {self._python!r} must be under /usr: only /usr is "
                "mounted into sandboxes"
            )

    def check(self) -> None:
        """Run the real sandbox layout once (importing the harness inside); raise
        SandboxUnavailable saying why sandboxes cannot work here."""
        self._compile_harness()
        if not self._isolated or self._bwrap is None:
            return
        with tempfile.TemporaryDirectory(prefix="chiron-check-") as scratch:
            directory = SandboxDir(Path(scratch) / "sandbox")
            uid = self._settings.sandbox_uid_base if self._as_root else None
            owner = uid if uid is not None else os.getuid()
            group = uid if uid is not None else os.getgid()
            directory.create(owner=uid, etc_files=bwrap_command.synthetic_etc(owner, group))
            env = bwrap_command.sandbox_env({})
            del env[bwrap_command.READY_FD_VARIABLE]
            argv = bwrap_command.bwrap_argv(
                bwrap=self._bwrap,
                setpriv=self._setpriv,
                uid=uid,
                paths=directory.host_paths(self._package_dir),
                python=self._python,
                harness="",
                command=[self._python, "-s", "-S", "-c", "import chiron.harness.server"],
            )
            info = argv.index("--info-fd")
            del argv[info : info + 2]
            try:
                result = subprocess.run(
                    argv, capture_output=True, timeout=30, check=False, env=env, cwd=scratch
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise SandboxUnavailable(f"bubblewrap cannot run here: {exc}") from exc
        if result.returncode != 0:
            reason = result.stderr.decode("utf-8", "replace").strip()[-500:]
            raise SandboxUnavailable(f"bubblewrap cannot start a sandbox here: {reason}")

    def _compile_harness(self) -> None:
        """Byte-compile what sandboxes import, with the sandbox's own Python.

        Sandboxes see the package read-only, so without this every sandbox of a fresh install
        compiles the harness again before its first output (~6 ms of each cold start). Where
        the package is not writable this quietly does nothing.
        """
        targets = [self._package_dir / "__init__.py", self._package_dir / "harness"]
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(
                [self._python, "-m", "compileall", "-q", *map(str, targets)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=120,
                check=False,
            )

    # -- create ------------------------------------------------------------------------

    async def create(
        self, spec: SandboxSpec, *, on_serving: Callable[[], None] | None = None
    ) -> str:
        sandbox_id = check_sandbox_id(spec.sandbox_id)
        self._check_egress(spec)
        directory = self._dir(sandbox_id)
        if sandbox_id in self._creating or directory.root.exists():
            raise SandboxError(f"sandbox {sandbox_id} already exists")
        self._creating.add(sandbox_id)
        launcher: subprocess.Popen[bytes] | None = None
        try:
            uid = await asyncio.to_thread(self._make_dir, spec, directory)
            try:
                await asyncio.to_thread(self._fill_dir, spec, directory, uid)
                launcher, ready_fd = self._launch_supervisor(directory)
                try:
                    async with asyncio.timeout(self._settings.sandbox_ready_timeout_s):
                        await self._wait_ready(ready_fd, directory, spec, on_serving)
                except TimeoutError:
                    timeout = self._settings.sandbox_ready_timeout_s
                    raise self._start_error(
                        directory, spec, f"not ready within {timeout:g} s"
                    ) from None
                finally:
                    os.close(ready_fd)
                await self._reap_launcher(launcher)
                self._start_spare_later()
            except BaseException:
                await asyncio.shield(self._discard(sandbox_id, directory, launcher))
                raise
        finally:
            self._creating.discard(sandbox_id)
        return sandbox_id

    def _check_egress(self, spec: SandboxSpec) -> None:
        egress = spec.egress
        if egress is None or not self._isolated:
            # Without isolation the harness has the host's network anyway: there is no
            # namespace to bridge the proxy into (see `isolation_note`).
            return
        if self._socat is None or not self._socat.startswith("/usr/"):
            raise SandboxUnavailable(
                "socat under /usr is needed to bridge the egress proxy into sandboxes: "
                "install it (apt install socat)"
            )
        if not egress.socket_path.parent.is_dir():
            raise SandboxError(
                f"the egress listener directory {egress.socket_path.parent} does not exist: "
                "open the sandbox's listener before creating it"
            )
        if not egress.ca_cert.is_file():
            raise SandboxError(f"the egress CA certificate {egress.ca_cert} does not exist")

    def _make_dir(self, spec: SandboxSpec, directory: SandboxDir) -> int | None:
        """Create the directory (only ours once this returns); the sandbox uid when root."""
        uid = self._reserve_uid(spec.sandbox_id) if self._isolated and self._as_root else None
        owner_uid = uid if uid is not None else os.getuid()
        owner_gid = uid if uid is not None else os.getgid()
        try:
            directory.create(owner=uid, etc_files=bwrap_command.synthetic_etc(owner_uid, owner_gid))
        except BaseException:
            self._release_uid(spec.sandbox_id)
            raise
        return uid

    def _fill_dir(self, spec: SandboxSpec, directory: SandboxDir, uid: int | None) -> None:
        directory.place_files(spec.files, owner=uid)
        directory.write_spec(self._supervisor_spec(spec, directory, uid))

    def _reserve_uid(self, sandbox_id: str) -> int:
        base, count = self._settings.sandbox_uid_base, self._settings.sandbox_uid_count
        with self._uid_lock:
            taken = host_processes.uids_in_use() | set(self._uids.values())
            for _ in range(1000):
                uid = base + self._rng.randrange(count)
                if uid not in taken:
                    self._uids[sandbox_id] = uid
                    return uid
        raise SandboxUnavailable(
            f"no free sandbox uid in [{base}, {base + count}): raise CHIRON_SANDBOX_UID_COUNT"
        )

    def _release_uid(self, sandbox_id: str) -> None:
        with self._uid_lock:
            self._uids.pop(sandbox_id, None)

    def _supervisor_spec(
        self, spec: SandboxSpec, directory: SandboxDir, uid: int | None
    ) -> dict[str, Any]:
        for key, value in spec.env.items():
            if not key or "=" in key or "\x00" in key or "\x00" in value:
                raise SandboxError(f"invalid sandbox environment variable name {key[:100]!r}")
        paths = directory.host_paths(self._package_dir)
        limits = spec.limits
        rlimits = {
            "as": limits.memory_bytes,
            "cpu": limits.cpu_seconds,
            "fsize": limits.file_bytes,
            "nofile": _NOFILE,
        }
        if self._isolated:
            assert self._bwrap is not None
            try:
                argv = bwrap_command.bwrap_argv(
                    bwrap=self._bwrap,
                    setpriv=self._setpriv,
                    uid=uid,
                    paths=paths,
                    python=self._python,
                    harness=spec.harness,
                    egress=spec.egress,
                    socat=self._socat,
                    read_only_mounts=spec.read_only_mounts,
                )
            except ValueError as exc:
                raise SandboxError(str(exc)) from None
            env = bwrap_command.sandbox_env(spec.env, spec.egress)
            # Without its own uid or user namespace a sandbox would share the process count
            # of the server's user, so the cap only applies to isolated sandboxes.
            rlimits["nproc"] = limits.max_processes
        else:
            argv = bwrap_command.harness_argv(self._python, spec.harness)
            env = bwrap_command.unisolated_env(spec.env, paths)
        return {
            "sandbox_id": spec.sandbox_id,
            "harness": spec.harness,
            "labels": spec.labels,
            "principal_id": spec.principal_id,
            "uid": uid,
            "isolation": self._settings.sandbox_isolation,
            "created_at": time.time(),
            "argv": argv,
            "env": env,
            "cwd": str(directory.workspace),
            "rlimits": rlimits,
            "pid_namespace": self._isolated,
            "fds": {
                "info": bwrap_command.INFO_FD if self._isolated else None,
                "ready": bwrap_command.READY_FD,
            },
        }

    def start_spare(self) -> None:
        """Start a standby supervisor now (when enabled) so the first cold sandbox uses it."""
        self._start_spare()

    def _start_spare(self) -> None:
        if not self._keep_spare or (self._spare is not None and self._spare.poll() is None):
            return
        try:
            self._spare = subprocess.Popen(
                [self._python, "-I", "-S", "-c", _STANDBY_BOOT, _SUPERVISOR_DIR],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                cwd="/",
                env=_SUPERVISOR_ENV,
            )
        except OSError:
            self._spare = None

    def _start_spare_later(self) -> None:
        if self._keep_spare and self._spare_timer is None:
            self._spare_timer = asyncio.get_running_loop().call_later(
                _SPARE_RESTART_DELAY_S, self._start_spare_now
            )

    def _start_spare_now(self) -> None:
        self._spare_timer = None
        self._start_spare()

    def _hand_over_spare(self, directory: SandboxDir) -> tuple[subprocess.Popen[bytes], int] | None:
        spare, self._spare = self._spare, None
        if spare is None or spare.poll() is not None:
            return None
        assert spare.stdin is not None and spare.stdout is not None
        try:
            spare.stdin.write(os.fsencode(directory.root) + b"\n")
            spare.stdin.close()
        except OSError:
            spare.kill()
            spare.wait()
            return None
        ready_fd = os.dup(spare.stdout.fileno())
        spare.stdout.close()
        return spare, ready_fd

    def close(self) -> None:
        """End the spare supervisor, if any (sandboxes themselves keep running)."""
        if self._spare_timer is not None:
            self._spare_timer.cancel()
            self._spare_timer = None
        spare, self._spare = self._spare, None
        if spare is not None:
            assert spare.stdin is not None and spare.stdout is not None
            spare.stdin.close()  # a standby supervisor exits when its stdin closes
            spare.stdout.close()
            try:
                spare.wait(5)
            except subprocess.TimeoutExpired:
                spare.kill()
                spare.wait()

    def _launch_supervisor(self, directory: SandboxDir) -> tuple[subprocess.Popen[bytes], int]:
        handed_over = self._hand_over_spare(directory)
        if handed_over is not None:
            return handed_over
        ready_r, ready_w = os.pipe()
        log_fd = os.open(
            directory.supervisor_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600
        )
        try:
            launcher = subprocess.Popen(
                # The system Python starts faster than a typical venv's, and the supervisor
                # needs nothing but the standard library.
                [
                    self._python,
                    "-I",
                    "-S",
                    "-c",
                    _SUPERVISOR_BOOT,
                    _SUPERVISOR_DIR,
                    str(directory.root),
                    str(ready_w),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                pass_fds=(ready_w,),
                start_new_session=True,
                cwd=directory.root,
                env=_SUPERVISOR_ENV,
            )
        except OSError as exc:
            os.close(ready_r)
            raise SandboxError(f"cannot start the sandbox supervisor: {exc}") from exc
        finally:
            os.close(ready_w)
            os.close(log_fd)
        return launcher, ready_r

    async def _wait_ready(
        self,
        ready_fd: int,
        directory: SandboxDir,
        spec: SandboxSpec,
        on_serving: Callable[[], None] | None,
    ) -> None:
        """Until the supervisor says `ready` (its harness signalled readiness itself).

        `on_serving` runs at its earlier `serving` line. No status round trip on the cold-start
        path: a harness that dies right after `ready` shows up as a lost sandbox on first use.
        """
        loop = asyncio.get_running_loop()
        said = b""
        while not said.endswith((b"ready\n", b"failed\n")):
            readable: asyncio.Future[None] = loop.create_future()

            def on_readable(readable: asyncio.Future[None] = readable) -> None:
                if not readable.done():
                    readable.set_result(None)

            loop.add_reader(ready_fd, on_readable)
            try:
                await readable
            finally:
                loop.remove_reader(ready_fd)
            chunk = os.read(ready_fd, 256)
            if not chunk:
                break
            said += chunk
            if on_serving is not None and b"serving\n" in said:
                on_serving()
                on_serving = None
        if not said.endswith(b"ready\n"):
            raise self._start_error(directory, spec, "the harness did not start")

    def _start_error(self, directory: SandboxDir, spec: SandboxSpec, reason: str) -> SandboxError:
        details = []
        for path in (directory.stderr_log, directory.supervisor_log):
            tail = directory.tail(path).strip()
            if tail:
                details.append(f"{path.name}: {_redact(tail, spec.env)}")
        message = f"sandbox {spec.sandbox_id} failed to start: {reason}"
        return SandboxError("\n".join([message, *details]))

    async def _reap_launcher(self, launcher: subprocess.Popen[bytes]) -> None:
        # The launcher forks the supervisor and exits at once; by now it normally has.
        if launcher.poll() is None:
            await asyncio.to_thread(launcher.wait)

    async def _discard(
        self, sandbox_id: str, directory: SandboxDir, launcher: subprocess.Popen[bytes] | None
    ) -> None:
        if launcher is not None:
            # Its exit guarantees supervisor.pid exists, so the supervisor can be found.
            await self._reap_launcher(launcher)
        await self._stop_dir(sandbox_id, directory)

    # -- queries -----------------------------------------------------------------------

    def _dir(self, sandbox_id: str) -> SandboxDir:
        return SandboxDir(self._settings.sandboxes_dir / check_sandbox_id(sandbox_id))

    async def _status_answer(self, directory: SandboxDir) -> dict[str, Any] | None:
        try:
            return await request(directory.socket, {"op": "status"}, timeout=_REQUEST_TIMEOUT_S)
        except (SupervisorUnreachable, SupervisorRefused):
            return None
        except TimeoutError:
            raise SandboxError(
                f"the supervisor of sandbox {directory.root.name} does not answer"
            ) from None

    async def status(self, sandbox_id: str) -> SandboxState:
        directory = self._dir(sandbox_id)
        if sandbox_id in self._creating:
            return SandboxState.CREATED
        if not directory.root.exists():
            return SandboxState.STOPPED
        answer = await self._status_answer(directory)
        if answer is None:
            return SandboxState.GONE
        return _STATES.get(str(answer.get("state")), SandboxState.GONE)

    async def output_end(self, sandbox_id: str) -> int:
        directory = self._dir(sandbox_id)
        try:
            return directory.output_log.stat().st_size
        except FileNotFoundError:
            if directory.root.exists():
                return 0
            raise SandboxLost(f"sandbox {sandbox_id} does not exist") from None

    # -- input -------------------------------------------------------------------------

    async def write_input(self, sandbox_id: str, lines: list[str], *, token: str) -> InputReceipt:
        for index, line in enumerate(lines):
            if "\n" in line or "\r" in line:
                raise SandboxError(f"input line {index} contains a line break")
        _check_token(token)
        directory = self._dir(sandbox_id)
        message = {"op": "write", "lines": lines, "token": token}
        try:
            answer = await request(directory.socket, message, timeout=_WRITE_TIMEOUT_S)
        except SupervisorUnreachable:
            raise SandboxLost(f"sandbox {sandbox_id} is not running") from None
        except SupervisorRefused as exc:
            raise SandboxLost(f"sandbox {sandbox_id} cannot take input: {exc}") from None
        except TimeoutError:
            raise SandboxError(f"writing to sandbox {sandbox_id} timed out") from None
        return InputReceipt(offset=int(answer["offset"]), written=bool(answer.get("written")))

    async def input_delivered(self, sandbox_id: str, token: str) -> int | None:
        _check_token(token)
        directory = self._dir(sandbox_id)
        try:
            answer = await request(
                directory.socket, {"op": "delivered", "token": token}, timeout=_REQUEST_TIMEOUT_S
            )
            offset = answer.get("offset")
            return int(offset) if answer.get("delivered") and offset is not None else None
        except (SupervisorUnreachable, SupervisorRefused):
            # The supervisor is gone; the tokens it recorded on disk still answer.
            try:
                recorded = directory.delivered_tokens.read_text().splitlines()
            except OSError:
                return None
            for entry in recorded:
                name, _, offset_text = entry.partition(" ")
                if name == token and offset_text.isdigit():
                    return int(offset_text)
            return None
        except TimeoutError:
            raise SandboxError(f"the supervisor of sandbox {sandbox_id} does not answer") from None

    # -- output ------------------------------------------------------------------------

    async def open_output(
        self, sandbox_id: str, offset: int, *, line_cap: int
    ) -> AsyncIterator[list[OutputLine]]:
        directory = self._dir(sandbox_id)
        if not directory.root.exists():
            raise SandboxLost(f"sandbox {sandbox_id} does not exist")
        splitter = LineSplitter(offset, line_cap)
        while True:
            before = splitter.position
            stream = await self._open_stream(directory, splitter.position)
            if stream is not None:
                try:
                    while chunk := await stream.read(_READ_CHUNK):
                        if lines := splitter.feed(chunk):
                            yield lines
                finally:
                    await stream.close()
            # The stream ended: the output is complete, or the supervisor went away (maybe
            # before sending everything it had written). Decide from its status, then take
            # whatever the log holds beyond what was streamed.
            answer = await self._status_answer(directory)
            async for lines in self._log_lines(directory, splitter):
                yield lines
            if answer is None:
                if not self._ended_orderly(directory, splitter.position):
                    raise SandboxLost(f"sandbox {sandbox_id} went away without ending its output")
                break
            if answer.get("eof") and answer.get("state") == "exited":
                break
            if splitter.position == before:
                await asyncio.sleep(0.05)
        last = splitter.finish()
        if last is not None:
            yield [last]

    async def _open_stream(self, directory: SandboxDir, offset: int) -> OutputStream | None:
        try:
            return await open_output_stream(directory.socket, offset, timeout=_REQUEST_TIMEOUT_S)
        except SupervisorUnreachable:
            return None
        except SupervisorRefused as exc:
            raise SandboxError(f"cannot read sandbox {directory.root.name}: {exc}") from None

    async def _log_lines(
        self, directory: SandboxDir, splitter: LineSplitter
    ) -> AsyncIterator[list[OutputLine]]:
        position = splitter.position
        while chunk := await asyncio.to_thread(_read_at, directory.output_log, position):
            position += len(chunk)
            if lines := splitter.feed(chunk):
                yield lines

    def _ended_orderly(self, directory: SandboxDir, position: int) -> bool:
        ended = directory.read_json(directory.exit_info)
        return ended is not None and position >= int(ended.get("output_end", 0))

    # -- pause / resume / stop ----------------------------------------------------------

    async def pause(self, sandbox_id: str) -> None:
        await self._control(sandbox_id, "pause")

    async def resume(self, sandbox_id: str) -> None:
        await self._control(sandbox_id, "resume")

    async def _control(self, sandbox_id: str, op: str) -> None:
        directory = self._dir(sandbox_id)
        try:
            await request(directory.socket, {"op": op}, timeout=_REQUEST_TIMEOUT_S)
        except SupervisorUnreachable:
            raise SandboxLost(f"sandbox {sandbox_id} is not running") from None
        except SupervisorRefused as exc:
            raise SandboxError(f"cannot {op} sandbox {sandbox_id}: {exc}") from None
        except TimeoutError:
            raise SandboxError(f"the supervisor of sandbox {sandbox_id} does not answer") from None

    async def stop(self, sandbox_id: str) -> None:
        directory = self._dir(sandbox_id)
        if not directory.root.exists():
            return
        await self._stop_dir(sandbox_id, directory)

    async def _stop_dir(self, sandbox_id: str, directory: SandboxDir) -> None:
        with contextlib.suppress(SupervisorUnreachable, SupervisorRefused, TimeoutError):
            await request(directory.socket, {"op": "stop"}, timeout=_REQUEST_TIMEOUT_S)
        await asyncio.to_thread(self._kill_leftovers, directory)
        await asyncio.to_thread(directory.remove)
        self._release_uid(sandbox_id)

    def _kill_leftovers(self, directory: SandboxDir) -> None:
        """Make sure nothing of the sandbox runs, whether or not its supervisor did `stop`."""
        root = os.fsencode(directory.root)
        pid = directory.read_supervisor_pid()
        if pid is not None and root in host_processes.cmdline(pid):
            host_processes.kill_quietly(pid)
        init = directory.read_json(directory.init_info) or {}
        spec = directory.read_spec() or {}
        init_pid = int(init.get("init_pid") or 0)
        if init_pid > 0 and self._is_sandbox_init(init_pid, init, spec):
            members = supervisor.descendants(init_pid, not spec.get("pid_namespace", True))
            for member in members:
                host_processes.kill_quietly(member)
            host_processes.wait_gone(sorted(members), 5.0)
        uid = spec.get("uid")
        if isinstance(uid, int):
            host_processes.kill_uid(uid)
        if pid is not None:
            host_processes.wait_gone([pid], 5.0)

    def _is_sandbox_init(self, pid: int, init: dict[str, Any], spec: dict[str, Any]) -> bool:
        # Guard against pid reuse: the recorded namespace (or harness command) must match.
        if spec.get("pid_namespace", True):
            recorded = init.get("pidns")
            return recorded is not None and host_processes.pid_namespace(pid) == recorded
        return b"chiron.harness" in host_processes.cmdline(pid)

    # Last in the class: below this, `list` in annotations would mean this method.
    async def list(self) -> list[SandboxInfo]:
        root = self._settings.sandboxes_dir
        try:
            names = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
        except FileNotFoundError:
            return []
        ids = [name for name in names if _valid_id(name)]
        states = await asyncio.gather(*(self.status(sandbox_id) for sandbox_id in ids))
        infos = []
        for sandbox_id, state in zip(ids, states, strict=True):
            spec = self._dir(sandbox_id).read_spec() or {}
            labels = spec.get("labels")
            infos.append(
                SandboxInfo(sandbox_id, state, dict(labels) if isinstance(labels, dict) else {})
            )
        return infos


def _read_at(path: Path, offset: int) -> bytes:
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            return log.read(_READ_CHUNK)
    except FileNotFoundError:
        return b""


def _valid_id(name: str) -> bool:
    try:
        check_sandbox_id(name)
    except SandboxError:
        return False
    return True


def _check_token(token: str) -> None:
    # The supervisor records "token offset" lines: no blanks or line breaks inside a token.
    if not token or len(token) > 512 or any(ch.isspace() for ch in token):
        raise SandboxError("an input token must be 1-512 characters without white space")


def _redact(text: str, env: dict[str, str]) -> str:
    for value in sorted(env.values(), key=len, reverse=True):
        if len(value) >= 4:
            text = text.replace(value, "[redacted]")
    return text
