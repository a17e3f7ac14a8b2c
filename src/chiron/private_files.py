"""Creating files that must not exist yet and must not be followed through a link."""

from __future__ import annotations

import os
from pathlib import Path


def write_new_file(path: Path, content: bytes, mode: int) -> None:
    """Create `path` with `mode` (O_EXCL, no symlink following) and write all of `content`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
