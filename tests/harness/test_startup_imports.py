"""The harness stays off the heavy standard-library modules (its cold-start budget).

No timings here: only which modules a fresh `python -s -S` has loaded after importing every
harness module and running one turn through the stdin loop.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.conftest import PACKAGE_PARENT

# Each costs milliseconds of start-up, directly or through what it pulls in (`enum`,
# `functools`, `collections`, …); see src/chiron/harness/__init__.py.
FORBIDDEN = [
    "asyncio",
    "collections",
    "enum",
    "json",
    "pathlib",
    "re",
    "signal",
    "subprocess",
    "threading",
    "typing",
]

SCRIPT = """
import io, os, sys
from chiron.harness.__main__ import main
from chiron.harness import server
from chiron.harness.shell_adapter import ShellAdapter

writer = server.NdjsonWriter(os.open(os.devnull, os.O_WRONLY))
workspace = os.getcwd()
lines = b'{"type": "user", "message": {"content": "read a; echo $a"}}\\nsteer\\n'
server.serve(ShellAdapter(writer, workspace), workspace, io.BytesIO(lines))
print(" ".join(sorted(sys.modules)))
"""

PYTHONS = sorted({sys.executable, *(p for p in ["/usr/bin/python3"] if os.path.exists(p))})


@pytest.mark.parametrize("python", PYTHONS)
def test_the_harness_imports_no_heavy_module(python: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [python, "-s", "-S", "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": PACKAGE_PARENT},
    )
    assert (result.returncode, result.stderr) == (0, "")
    loaded = set(result.stdout.split())
    assert "chiron.harness.shell_adapter" in loaded
    assert sorted(loaded.intersection(FORBIDDEN)) == []
