"""Per-sandbox supervisor: owns the harness's pipes so a sandbox outlives the control plane.

Standard library only, run as a script (the server imports this module only for its file-name
constants and `descendants`):

    python -I -S supervisor.py <sandbox_dir> <ready_fd>

The local backend starts it detached (new session, stdio to `supervisor.log`). It forks once so
the backend's child exits at once (nobody has to reap us), reads `spec.json`, starts the harness
command (for bwrap isolation the whole `bwrap …` command line) with piped stdin/stdout, appends
every stdout byte to `output.log`, and serves `supervisor.sock` (mode 0600): one JSON request
line per connection, answered by one JSON line (`read` then streams raw log bytes).

    status                      -> {ok, state: running|suspended|exited, output_end, eof,
                                    exit_code, pid}
    write {lines, token}        -> {ok, written, offset}; lines go to stdin at most once per
                                   token; offset = output-log end when they were written
    delivered {token}           -> {ok, delivered, offset}
    read {offset}               -> {ok} then output.log from offset, following appends; the
                                   connection closes once stdout hit EOF, the harness exited
                                   and all was sent
    pause / resume              -> SIGSTOP / SIGCONT every process of the sandbox
    stop                        -> SIGKILL the sandbox's PID-namespace init, answer, exit

`ready_fd` gets `serving` once the socket takes requests (input written from then on waits in
the harness's stdin), then, once the harness reported readiness (or died trying), `ready` or
`failed`. If this process dies, the kernel ends the sandbox: bwrap runs with
`--die-with-parent`, which ties the outer bwrap to this process and the sandbox to the outer
bwrap.
"""

from __future__ import annotations

# Start-up is on the sandbox cold-start path, so the harness is spawned before anything costly
# is imported: `signal`, `json`, `socket`, `threading` and `typing` pull in `enum`, `re` and
# more (~12 ms together). `socket` and `threading` are imported while the sandbox boots;
# `_signal` and the C JSON scanner/encoder stand in for `signal` and `json`.
import _json
import fcntl
import os
import resource
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from typing import Any

_signal: Any = __import__("_signal")

SPEC_FILE = "spec.json"
SOCKET_FILE = "supervisor.sock"
OUTPUT_LOG = "output.log"
STDERR_LOG = "stderr.log"
SUPERVISOR_LOG = "supervisor.log"
PID_FILE = "supervisor.pid"
INIT_FILE = "init.json"
EXIT_FILE = "exit.json"
TOKENS_FILE = "delivered_tokens"

RLIMITS = {
    "as": resource.RLIMIT_AS,
    "cpu": resource.RLIMIT_CPU,
    "fsize": resource.RLIMIT_FSIZE,
    "nofile": resource.RLIMIT_NOFILE,
    "nproc": resource.RLIMIT_NPROC,
}

_MAX_REQUEST_BYTES = 1 << 30
_PIPE_BYTES = 1 << 20
_STOP_WAIT_S = 5.0
_IDLE_CHECK_S = 10.0
_DIR_CHECK_S = 2.0


# -- JSON through the C accelerator only --------------------------------------------------


class _ScanContext:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float


def _unencodable(value: object) -> object:
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_scan_context: Any = _ScanContext()
_scan = _json.make_scanner(_scan_context)
_encode = _json.make_encoder(
    None, _unencodable, _json.encode_basestring_ascii, None, ":", ",", False, False, False
)


def loads(data: bytes | str) -> Any:
    text = (data.decode("utf-8") if isinstance(data, bytes) else data).strip(" \t\r\n")
    try:
        value, end = _scan(text, 0)
    except (StopIteration, ValueError, SystemError):
        # The scanner reports some errors through json.decoder, which is not loaded here
        # (it then raises SystemError): any failure means the text is not JSON.
        raise ValueError("not JSON") from None
    if end != len(text):
        raise ValueError("trailing data after JSON")
    return value


def dumps(value: object) -> str:
    return "".join(_encode(value, 0))


# -- the harness process ------------------------------------------------------------------


class Harness:
    """The spawned harness (or outer bwrap) with the supervisor's ends of its pipes."""

    def __init__(self, spec: dict[str, Any]) -> None:
        fds = spec.get("fds", {})
        stdin_r, self.stdin_w = os.pipe()
        self.stdout_r, stdout_w = os.pipe()
        self.ready_r, ready_w = os.pipe()
        stderr = os.open(STDERR_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        placed = {0: stdin_r, 1: stdout_w, 2: stderr, fds["ready"]: ready_w}
        self.info_r = -1
        if fds.get("info") is not None:
            self.info_r, info_w = os.pipe()
            placed[fds["info"]] = info_w
        for fd in (self.stdin_w, self.stdout_r):
            try:  # noqa: SIM105 - contextlib would cost start-up time
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
            except OSError:
                pass
        self.pid = _spawn(spec, placed)
        for fd in placed.values():
            os.close(fd)


def _spawn(spec: dict[str, Any], placed: dict[int, int]) -> int:
    argv: list[str] = spec["argv"]
    env: dict[str, str] = spec["env"]
    cwd: str = spec["cwd"]
    limits: dict[str, int] = spec.get("rlimits", {})
    pid = os.fork()
    if pid:
        return pid
    # Child (the supervisor has no other thread yet): set up, then exec or _exit(127).
    try:
        os.setsid()
        # Park every source above the targets first so no dup2 clobbers a source still needed.
        parked = {
            target: fcntl.fcntl(source, fcntl.F_DUPFD_CLOEXEC, 64)
            for target, source in placed.items()
        }
        for target, source in parked.items():
            os.dup2(source, target)
        for name, value in limits.items():
            resource.setrlimit(RLIMITS[name], (value, value))
        # Python ignores these; programs in the sandbox expect the defaults (`yes | head`).
        for signum in (_signal.SIGPIPE, _signal.SIGXFSZ):
            _signal.signal(signum, _signal.SIG_DFL)
        # The supervisor's own files are private (umask 077); the sandbox gets the usual mask.
        os.umask(0o022)
        os.chdir(cwd)
        os.execve(argv[0], argv, env)
    except BaseException as exc:
        try:
            os.write(2, f"supervisor: cannot start {argv[0]}: {exc}\n".encode())
        finally:
            os._exit(127)
    raise AssertionError("unreachable")


def _read_child_pid(fd: int) -> int:
    """bwrap's `--info-fd` JSON carries the host pid of the sandbox's PID-namespace init.

    bwrap writes it line by line and closes the descriptor once the sandbox runs.
    """
    data = b""
    while chunk := _read_some(fd):
        data += chunk
    try:
        return int(loads(data)["child-pid"])
    except (ValueError, KeyError, TypeError):
        return 0


# -- the supervisor proper ----------------------------------------------------------------


class Supervisor:
    def __init__(self, spec: dict[str, Any], harness: Harness) -> None:
        import threading

        self.spec = spec
        self.harness = harness
        self.cond = threading.Condition()
        self.write_lock = threading.Lock()
        self.exited = threading.Event()
        self.output_end = os.stat(OUTPUT_LOG).st_size if os.path.exists(OUTPUT_LOG) else 0
        self.eof = False
        self.exit_code: int | None = None
        self.suspended = False
        # token -> output-log end at the moment its lines were written to stdin
        self.delivered: dict[str, int] = {}
        # Without a PID namespace (isolation `none`) the harness's session is its scope.
        self.session_scope = not spec.get("pid_namespace", True)
        self.init_pid = harness.pid
        self.log_w = os.open(
            OUTPUT_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        self.log_r = os.open(OUTPUT_LOG, os.O_RDONLY | os.O_CLOEXEC)

    def run(self, listener: socket.socket, ready_fd: int) -> bool:
        """Record the sandbox's init, start pumping and serving; True once the harness is ready.

        Says `serving` on `ready_fd` as soon as requests are answered, before that wait.
        """
        if self.harness.info_r >= 0:
            self.init_pid = _read_child_pid(self.harness.info_r) or self.harness.pid
            os.close(self.harness.info_r)
        _write_atomic(
            INIT_FILE,
            dumps(
                {
                    "init_pid": self.init_pid,
                    "child_pid": self.harness.pid,
                    "pidns": _pidns(self.init_pid),
                }
            ),
        )
        _thread(self._pump)
        _thread(self._wait_child)
        _thread(self._accept_loop, listener)
        try:  # noqa: SIM105 - contextlib would cost start-up time
            os.write(ready_fd, b"serving\n")
        except OSError:
            pass  # the control plane went away; the sandbox still starts
        ready = _read_some(self.harness.ready_r)
        os.close(self.harness.ready_r)
        return bool(ready)

    def _pump(self) -> None:
        while data := _read_some(self.harness.stdout_r):
            _write_all_retrying(self.log_w, data)
            with self.cond:
                self.output_end += len(data)
                self.cond.notify_all()
        os.close(self.harness.stdout_r)
        with self.cond:
            self.eof = True
            self.cond.notify_all()
            self._record_exit_locked()

    def _wait_child(self) -> None:
        _, status = os.waitpid(self.harness.pid, 0)
        with self.cond:
            self.exit_code = os.waitstatus_to_exitcode(status)
            self.cond.notify_all()
            self._record_exit_locked()
        self.exited.set()

    def _record_exit_locked(self) -> None:
        # Written once output and process are both finished, so a reader that finds the
        # supervisor gone can still tell an orderly end from a lost sandbox.
        if self._finished_locked():
            _write_atomic(
                EXIT_FILE, dumps({"exit_code": self.exit_code, "output_end": self.output_end})
            )

    # -- serving -------------------------------------------------------------------------

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                time.sleep(0.05)
                continue
            _thread(self._serve_connection, conn)

    def _serve_connection(self, conn: socket.socket) -> None:
        try:
            with conn:
                request = _read_request(conn)
                if request is not None:
                    self._dispatch(conn, request)
        except OSError:
            pass

    def _dispatch(self, conn: socket.socket, request: dict[str, Any]) -> None:
        op = request.get("op")
        if op == "status":
            _reply(conn, self._status())
        elif op == "write":
            _reply(conn, self._write(request.get("lines"), request.get("token")))
        elif op == "delivered":
            offset = self.delivered.get(str(request.get("token")))
            _reply(conn, {"ok": True, "delivered": offset is not None, "offset": offset})
        elif op == "read":
            self._stream(conn, request.get("offset"))
        elif op in ("pause", "resume"):
            _reply(conn, self._freeze(op == "pause"))
        elif op == "stop":
            self.kill_sandbox()
            self.exited.wait(_STOP_WAIT_S)
            _reply(conn, {"ok": True})
            os._exit(0)
        else:
            _reply(conn, {"ok": False, "error": "unknown op"})

    def _status(self) -> dict[str, Any]:
        with self.cond:
            if self.exit_code is not None:
                state = "exited"
            else:
                state = "suspended" if self.suspended else "running"
            return {
                "ok": True,
                "state": state,
                "output_end": self.output_end,
                "eof": self.eof,
                "exit_code": self.exit_code,
                "pid": self.init_pid,
            }

    def _write(self, lines: Any, token: Any) -> dict[str, Any]:
        if not isinstance(token, str) or not token or "\n" in token:
            return {"ok": False, "error": "bad token"}
        if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
            return {"ok": False, "error": "lines must be a list of strings"}
        with self.write_lock:
            if token in self.delivered:
                return {"ok": True, "written": False, "offset": self.delivered[token]}
            if self.exit_code is not None:
                return {"ok": False, "error": "harness exited"}
            payload = "".join(line + "\n" for line in lines).encode("utf-8", "surrogatepass")
            with self.cond:
                offset = self.output_end
            try:
                _write_all(self.harness.stdin_w, payload)
            except OSError:
                return {"ok": False, "error": "harness exited"}
            self.delivered[token] = offset
            fd = os.open(TOKENS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                _write_all(fd, f"{token} {offset}\n".encode())
            finally:
                os.close(fd)
            return {"ok": True, "written": True, "offset": offset}

    def _stream(self, conn: socket.socket, offset: Any) -> None:
        with self.cond:
            end = self.output_end
        if not isinstance(offset, int) or offset < 0 or offset > end:
            _reply(conn, {"ok": False, "error": f"offset out of range 0..{end}"})
            return
        _reply(conn, {"ok": True})
        position = offset
        while True:
            with self.cond:
                while position >= self.output_end and not self._finished_locked():
                    # Wake now and then so a reader that went away while the sandbox is quiet
                    # does not keep this thread forever.
                    if not self.cond.wait(_IDLE_CHECK_S) and _peer_closed(conn):
                        return
                end, finished = self.output_end, self._finished_locked()
            while position < end:
                position += os.sendfile(conn.fileno(), self.log_r, position, end - position)
            if finished:
                return

    def _finished_locked(self) -> bool:
        # The stream ends once stdout hit EOF *and* the harness exited, so whoever saw it end
        # also finds `status` saying exited.
        return self.eof and self.exit_code is not None

    # -- process tree --------------------------------------------------------------------

    def _freeze(self, pause: bool) -> dict[str, Any]:
        sig = _signal.SIGSTOP if pause else _signal.SIGCONT
        signalled: set[int] = set()
        deadline = time.monotonic() + 5.0
        # A process forking while we scan can add a child we have not seen: rescan until a
        # pass finds nothing new and (when pausing) every member is really stopped.
        while time.monotonic() < deadline:
            members = descendants(self.init_pid, self.session_scope)
            fresh = members - signalled
            for pid in fresh:
                _kill(pid, sig)
            signalled |= fresh
            if not fresh and (not pause or _all_stopped(members)):
                break
            time.sleep(0.001)
        with self.cond:
            self.suspended = pause and self.exit_code is None
        return {"ok": True}

    def kill_sandbox(self) -> None:
        _kill(self.init_pid, _signal.SIGKILL)
        if self.session_scope:
            # Without a PID namespace nothing dies with the harness: kill its session and
            # descendants until none is left.
            for _ in range(100):
                members = descendants(self.init_pid, True)
                if not members:
                    break
                for pid in members:
                    _kill(pid, _signal.SIGKILL)
                time.sleep(0.01)
        if self.harness.pid != self.init_pid:
            _kill(self.harness.pid, _signal.SIGKILL)


# -- /proc helpers (also used by the backend when a supervisor is gone) ---------------------


def proc_table() -> list[tuple[int, int, int, bytes]]:
    """(pid, ppid, session, state) of every process on the host."""
    rows = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fd = os.open(f"/proc/{name}/stat", os.O_RDONLY | os.O_CLOEXEC)
            try:
                data = os.read(fd, 4096)
            finally:
                os.close(fd)
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2 :].split()
        rows.append((int(name), int(fields[1]), int(fields[3]), fields[0]))
    return rows


def descendants(root: int, include_session: bool) -> set[int]:
    """`root` and every process below it, plus its session's members if `include_session`.

    Every process of a PID namespace, nested namespaces included, descends from the
    namespace's init; without a namespace the session catches what was re-parented away.
    """
    table = proc_table()
    children: dict[int, list[int]] = {}
    members: set[int] = set()
    for pid, ppid, session, _ in table:
        children.setdefault(ppid, []).append(pid)
        if pid == root or (include_session and session == root):
            members.add(pid)
    todo = list(members)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in members:
                members.add(child)
                todo.append(child)
    return members


def _all_stopped(pids: set[int]) -> bool:
    states = {pid: state for pid, _, _, state in proc_table()}
    return all(states.get(pid, b"X") in (b"T", b"t", b"Z", b"X") for pid in pids)


def _pidns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def _kill(pid: int, sig: int) -> None:
    if pid > 0:
        try:  # noqa: SIM105 - contextlib would cost start-up time
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


# -- small I/O helpers --------------------------------------------------------------------


def _thread(target: Any, *args: Any) -> None:
    import threading

    threading.Thread(target=target, args=args, daemon=True).start()


def _read_some(fd: int) -> bytes:
    while True:
        try:
            return os.read(fd, _PIPE_BYTES)
        except InterruptedError:
            continue


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_all_retrying(fd: int, data: bytes) -> None:
    # A full disk must not lose output: keep the bytes (the harness blocks on its pipe
    # meanwhile) and retry until the write goes through.
    while True:
        try:
            _write_all(fd, data)
            return
        except OSError as exc:
            sys.stderr.write(f"supervisor: output.log write failed, retrying: {exc}\n")
            sys.stderr.flush()
            time.sleep(1.0)


def _write_atomic(name: str, text: str) -> None:
    tmp = f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        _write_all(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, name)


def _read_request(conn: socket.socket) -> dict[str, Any] | None:
    data = bytearray()
    newline = -1
    while newline < 0:
        chunk = conn.recv(1 << 20)
        if not chunk:
            return None
        found = chunk.find(b"\n")
        if found >= 0:
            newline = len(data) + found
        data += chunk
        if len(data) > _MAX_REQUEST_BYTES:
            _reply(conn, {"ok": False, "error": "request too large"})
            return None
    try:
        request = loads(bytes(data[:newline]))
    except ValueError:
        _reply(conn, {"ok": False, "error": "request is not JSON"})
        return None
    if not isinstance(request, dict):
        _reply(conn, {"ok": False, "error": "request must be an object"})
        return None
    return request


def _peer_closed(conn: socket.socket) -> bool:
    import socket

    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _reply(conn: socket.socket, message: dict[str, Any]) -> None:
    conn.sendall(dumps(message).encode() + b"\n")


def main(argv: list[str]) -> int:
    """`supervisor.py SANDBOX_DIR READY_FD`: supervise the sandbox described in SANDBOX_DIR."""
    return _supervise(os.path.abspath(argv[1]), int(argv[2]))


def standby(argv: list[str]) -> int:
    """`supervisor.py --standby`: start up now, take a sandbox directory later.

    The control plane keeps one such process ready so a cold sandbox does not wait for an
    interpreter to start. It writes the sandbox directory as one line to stdin and reads
    "ready"/"failed" from stdout; stdin closing first (the control plane went away) ends it.
    """
    line = sys.stdin.buffer.readline()
    if not line.endswith(b"\n"):
        return 0
    sandbox_dir = os.path.abspath(os.fsdecode(line[:-1]))
    ready_fd = os.dup(1)
    # From here on our own output belongs in the sandbox's log, like a freshly launched one's.
    log_fd = os.open(
        os.path.join(sandbox_dir, SUPERVISOR_LOG),
        os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
        0o600,
    )
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(null_fd)
    os.close(log_fd)
    return _supervise(sandbox_dir, ready_fd)


def _supervise(sandbox_dir: str, ready_fd: int) -> int:
    os.chdir(sandbox_dir)
    os.set_inheritable(ready_fd, False)
    pid = os.fork()
    if pid:
        # Written by the launcher before it exits, so whoever waited for it finds the pid.
        _write_atomic(PID_FILE, f"{pid}\n")
        os._exit(0)
    os.umask(0o077)
    with open(SPEC_FILE, "rb") as f:
        spec = loads(f.read())
    ready = False
    supervisor: Supervisor | None = None
    try:
        harness = Harness(spec)
        import socket

        supervisor = Supervisor(spec, harness)
        if os.path.lexists(SOCKET_FILE):
            os.unlink(SOCKET_FILE)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(SOCKET_FILE)
        os.chmod(SOCKET_FILE, 0o600)
        listener.listen(64)
        ready = supervisor.run(listener, ready_fd)
    except Exception as exc:
        sys.stderr.write(f"supervisor: start failed: {exc!r}\n")
    try:
        os.write(ready_fd, b"ready\n" if ready else b"failed\n")
        os.close(ready_fd)
    except OSError:
        pass
    # Threads do the work; status keeps reporting an exited harness until `stop`. A sandbox
    # whose directory was deleted can no longer be found or stopped by anyone: end it.
    while _same_directory(sandbox_dir):
        time.sleep(_DIR_CHECK_S)
    sys.stderr.write("supervisor: sandbox directory removed, stopping the sandbox\n")
    if supervisor is not None:
        supervisor.kill_sandbox()
    return 0


def _same_directory(path: str) -> bool:
    try:
        return os.path.samestat(os.stat(path), os.stat("."))
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(standby(sys.argv) if sys.argv[1:] == ["--standby"] else main(sys.argv))
