"""The on-disk layout of one local sandbox: `<sandboxes_dir>/<sandbox_id>/`.

Owns file names, permissions and preparing/removing the directory. The directory is 0700 and
owned by the server user; only `workspace/` and `home/` belong to the sandbox's uid and are
mounted into it. Everything else (spec, logs, socket) stays outside the sandbox.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from chiron.private_files import write_new_file
from chiron.sandbox import supervisor
from chiron.sandbox.backend import SandboxError
from chiron.sandbox.bwrap_command import HOME, WORKSPACE, HostPaths

_SANDBOX_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def check_sandbox_id(sandbox_id: str) -> str:
    if not _SANDBOX_ID.fullmatch(sandbox_id):
        raise SandboxError(
            f"invalid sandbox id {sandbox_id[:80]!r}: use letters, digits, '_', '.', '-'"
        )
    return sandbox_id


@dataclass(frozen=True)
class SandboxDir:
    root: Path

    @property
    def spec(self) -> Path:
        return self.root / supervisor.SPEC_FILE

    @property
    def socket(self) -> Path:
        return self.root / supervisor.SOCKET_FILE

    @property
    def output_log(self) -> Path:
        return self.root / supervisor.OUTPUT_LOG

    @property
    def stderr_log(self) -> Path:
        return self.root / supervisor.STDERR_LOG

    @property
    def supervisor_log(self) -> Path:
        return self.root / supervisor.SUPERVISOR_LOG

    @property
    def supervisor_pid(self) -> Path:
        return self.root / supervisor.PID_FILE

    @property
    def init_info(self) -> Path:
        return self.root / supervisor.INIT_FILE

    @property
    def exit_info(self) -> Path:
        return self.root / supervisor.EXIT_FILE

    @property
    def delivered_tokens(self) -> Path:
        return self.root / supervisor.TOKENS_FILE

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    def host_paths(self, package_dir: Path) -> HostPaths:
        return HostPaths(self.workspace, self.home, self.etc, package_dir)

    def create(self, *, owner: int | None, etc_files: dict[str, bytes]) -> None:
        """Make the directory tree; `owner` (a uid, also used as gid) gets workspace and home."""
        self.root.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            self.root.mkdir(mode=0o700)
        except FileExistsError:
            raise SandboxError(f"sandbox {self.root.name} already exists") from None
        for directory in (self.workspace, self.home):
            directory.mkdir(mode=0o700)
            if owner is not None:
                os.chown(directory, owner, owner)
        self.etc.mkdir(mode=0o755)
        for name, content in etc_files.items():
            write_new_file(self.etc / name, content, 0o644)

    def write_spec(self, spec: dict[str, Any]) -> None:
        write_new_file(self.spec, json.dumps(spec).encode(), 0o600)

    def read_spec(self) -> dict[str, Any] | None:
        try:
            spec: dict[str, Any] = json.loads(self.spec.read_bytes())
        except (OSError, ValueError):
            return None
        return spec

    def place_files(self, files: dict[str, bytes], *, owner: int | None) -> None:
        """Put spec files into workspace/home before the sandbox starts.

        A key is a path relative to the workspace, or absolute under /workspace or /home/agent.
        """
        for key, content in files.items():
            target = self._file_target(key)
            _make_parents(target, stop=self.root, owner=owner)
            write_new_file(target, content, 0o600)
            if owner is not None:
                os.chown(target, owner, owner)

    def _file_target(self, key: str) -> Path:
        path = PurePosixPath(key)
        if ".." in path.parts or "\x00" in key:
            raise SandboxError(f"sandbox file path {key[:200]!r} must not contain '..'")
        if not path.is_absolute():
            relative, host = path, self.workspace
        elif path.is_relative_to(WORKSPACE):
            relative, host = path.relative_to(WORKSPACE), self.workspace
        elif path.is_relative_to(HOME):
            relative, host = path.relative_to(HOME), self.home
        else:
            raise SandboxError(
                f"sandbox file path {key[:200]!r} must be relative or under {WORKSPACE} or {HOME}"
            )
        if not relative.parts:
            raise SandboxError(f"sandbox file path {key[:200]!r} names a directory")
        return host.joinpath(*relative.parts)

    def read_supervisor_pid(self) -> int | None:
        try:
            return int(self.supervisor_pid.read_text().strip())
        except (OSError, ValueError):
            return None

    def read_json(self, path: Path) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None
        return data

    def tail(self, path: Path, size: int = 2048) -> str:
        try:
            with open(path, "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - size))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def remove(self) -> None:
        """Delete the tree; call only once no process of the sandbox is left."""
        if not self.root.exists():
            return
        if os.geteuid() != 0:
            _grant_owner_access(self.root)
        shutil.rmtree(self.root, onerror=_ignore_missing)


def _make_parents(target: Path, *, stop: Path, owner: int | None) -> None:
    missing = []
    parent = target.parent
    while not parent.exists() and parent != stop:
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700)
        if owner is not None:
            os.chown(directory, owner, owner)


def _grant_owner_access(root: Path) -> None:
    # Without root, a sandbox may have left directories we cannot list or empty. Symlinks are
    # never followed: they may point anywhere on the host.
    for dirpath, dirnames, _ in os.walk(root):
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, stat.S_IRWXU)


def _ignore_missing(
    function: Callable[..., Any], path: str, excinfo: tuple[type[BaseException], BaseException, Any]
) -> None:
    # A concurrent stop may have removed entries already.
    if not isinstance(excinfo[1], FileNotFoundError):
        raise excinfo[1]
