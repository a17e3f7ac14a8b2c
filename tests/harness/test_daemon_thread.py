"""`DaemonThread`, the harness's stand-in for `threading.Thread`."""

from __future__ import annotations

import _thread
import time

import pytest

from chiron.harness.daemon_thread import DaemonThread


def test_join_waits_for_the_target_and_can_time_out() -> None:
    gate = _thread.allocate_lock()
    gate.acquire()
    seen: list[str] = []
    thread = DaemonThread(lambda text: (gate.acquire(), seen.append(text)), "ran", name="t")
    thread.start()
    started = time.monotonic()
    thread.join(timeout=0.05)
    assert seen == [] and time.monotonic() - started >= 0.05
    gate.release()
    thread.join()
    assert seen == ["ran"]
    thread.join()  # joining again returns at once


def test_an_escaping_exception_is_printed_before_join_returns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def boom() -> None:
        raise RuntimeError("boom")

    thread = DaemonThread(boom, name="turn-x")
    thread.start()
    thread.join()
    err = capsys.readouterr().err
    assert err.startswith("Exception in thread turn-x:\nTraceback")
    assert "RuntimeError: boom" in err
