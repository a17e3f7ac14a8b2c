"""`DaemonThread`: the little of `threading.Thread` the harness needs, on `_thread`.

`threading` costs ~2.5 ms of the harness's cold start (it pulls in `functools` and
`collections`). Threads started with `_thread` are never waited for at exit, like daemon
threads. An exception escaping the target is printed to stderr before `join` returns, as
`threading` does, so it is not lost when the harness exits right after.
"""

from __future__ import annotations

import _thread
import sys

TYPE_CHECKING = False  # `typing` stays unimported at run time (see the package docstring)
if TYPE_CHECKING:
    from collections.abc import Callable


class DaemonThread:
    """Runs `target(*args)` once started; `join` waits on a lock released when it returns."""

    def __init__(self, target: Callable[..., object], *args: object, name: str) -> None:
        self.name = name
        self._target = target
        self._args = args
        self._done = _thread.allocate_lock()

    def start(self) -> None:
        self._done.acquire()
        try:
            _thread.start_new_thread(self._run, ())
        except BaseException:
            self._done.release()
            raise

    def _run(self) -> None:
        try:
            self._target(*self._args)
        except BaseException as exc:
            sys.stderr.write(f"Exception in thread {self.name}:\n")
            sys.excepthook(type(exc), exc, exc.__traceback__)
        finally:
            self._done.release()

    def join(self, timeout: float = -1) -> None:
        """Wait until the target returned, or `timeout` seconds (forever when negative)."""
        if self._done.acquire(timeout=timeout):
            self._done.release()
