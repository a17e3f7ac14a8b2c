"""What the sandbox command line mounts and sets, checked without running it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chiron.harness import __main__ as harness_main
from chiron.sandbox import bwrap_command
from chiron.sandbox.backend import EgressBinding
from chiron.sandbox.bwrap_command import HostPaths


@pytest.fixture
def paths(tmp_path: Path) -> HostPaths:
    return HostPaths(tmp_path / "w", tmp_path / "h", tmp_path / "etc", Path("/opt/src/chiron"))


def _sources(argv: list[str]) -> list[str]:
    """Host paths mounted into the sandbox."""
    found = []
    for index, arg in enumerate(argv):
        if arg in ("--bind", "--ro-bind", "--ro-bind-try", "--dev-bind"):
            found.append(argv[index + 1])
    return found


def test_as_root_no_user_namespace_and_setpriv_drops_everything(paths: HostPaths) -> None:
    argv = bwrap_command.bwrap_argv(
        bwrap="/usr/bin/bwrap",
        setpriv="/usr/bin/setpriv",
        uid=1_500_123,
        paths=paths,
        python="/usr/bin/python3",
        harness="shell",
    )
    assert "--unshare-user" not in argv and "--unshare-all" not in argv
    for flag in ("--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"):
        assert flag in argv
    assert "--die-with-parent" in argv and "--new-session" in argv
    assert "--clearenv" not in argv and "--setenv" not in argv  # env is passed, not argv
    tail = argv[argv.index("/usr/bin/setpriv") :]
    assert tail == [
        "/usr/bin/setpriv",
        "--reuid",
        "1500123",
        "--regid",
        "1500123",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
        "/usr/bin/python3",
        "-P",
        "-s",
        "-S",
        "-c",
        bwrap_command.HARNESS_BOOT,
        "--adapter",
        "shell",
    ]


def test_without_root_a_user_namespace_and_no_setpriv(paths: HostPaths) -> None:
    argv = bwrap_command.bwrap_argv(
        bwrap="bwrap",
        setpriv=None,
        uid=None,
        paths=paths,
        python="/usr/bin/python3",
        harness="shell",
    )
    assert {"--unshare-all", "--unshare-user", "--disable-userns"} <= set(argv)
    assert not any("setpriv" in arg for arg in argv)


def test_only_the_sandbox_own_dirs_and_system_paths_are_mounted(paths: HostPaths) -> None:
    argv = bwrap_command.bwrap_argv(
        bwrap="bwrap",
        setpriv="/usr/bin/setpriv",
        uid=1_500_000,
        paths=paths,
        python="/usr/bin/python3",
        harness="shell",
    )
    allowed = {"/usr", *bwrap_command.ETC_BINDS, str(paths.workspace), str(paths.home)}
    allowed |= {str(paths.etc / name) for name in bwrap_command.SYNTHETIC_ETC}
    allowed |= {str(paths.package_dir)} | {p for p in ("/lib32", "/libx32") if os.path.isdir(p)}
    assert set(_sources(argv)) <= allowed
    for forbidden in ("/root", "/home", str(Path.home()), "/etc", "/"):
        assert forbidden not in _sources(argv)


def test_environment_is_explicit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHIRON_HOST_ONLY", "host")
    env = bwrap_command.sandbox_env({"GITHUB_TOKEN": "GITHUB_TOKEN"})
    assert env == {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/home/agent",
        "USER": "agent",
        "LOGNAME": "agent",
        "LANG": "C.UTF-8",
        "PYTHONPATH": "/opt/chiron",
        "PYTHONUNBUFFERED": "1",
        "CHIRON_WORKSPACE": "/workspace",
        "GITHUB_TOKEN": "GITHUB_TOKEN",
        bwrap_command.READY_FD_VARIABLE: str(bwrap_command.READY_FD),
    }


def test_the_readiness_variable_matches_the_harness() -> None:
    assert bwrap_command.READY_FD_VARIABLE == harness_main.READY_FD_VARIABLE


def test_synthetic_passwd_names_the_sandbox_user() -> None:
    files = bwrap_command.synthetic_etc(1_500_001, 1_500_001)
    assert b"agent:x:1500001:1500001:" in files["passwd"]
    assert b"localhost" in files["hosts"]


def _egress(tmp_path: Path) -> EgressBinding:
    (tmp_path / "listener").mkdir()
    return EgressBinding(tmp_path / "listener" / "proxy.sock", tmp_path / "ca.pem", 3128)


def test_egress_mounts_the_listener_dir_and_the_ca_certificate_only(
    paths: HostPaths, tmp_path: Path
) -> None:
    egress = _egress(tmp_path)
    plain = bwrap_command.bwrap_argv(
        bwrap="bwrap",
        setpriv=None,
        uid=None,
        paths=paths,
        python="/usr/bin/python3",
        harness="shell",
    )
    argv = bwrap_command.bwrap_argv(
        bwrap="bwrap",
        setpriv=None,
        uid=None,
        paths=paths,
        python="/usr/bin/python3",
        harness="shell",
        egress=egress,
        socat="/usr/bin/socat",
    )
    added = set(_sources(argv)) - set(_sources(plain))
    assert added == {str(tmp_path / "listener"), str(tmp_path / "ca.pem")}
    pairs = {(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == "--ro-bind"}
    assert (str(tmp_path / "listener"), bwrap_command.EGRESS_DIR) in pairs
    assert (str(tmp_path / "ca.pem"), bwrap_command.EGRESS_CA) in pairs
    if os.path.isfile(bwrap_command.SYSTEM_CA_BUNDLE):
        assert (str(tmp_path / "ca.pem"), bwrap_command.SYSTEM_CA_BUNDLE) in pairs
    # Still no network namespace shared with the host: loopback only, as without egress.
    assert "--share-net" not in argv and "--unshare-all" in argv
    tail = argv[argv.index(bwrap_command.EGRESS_BOOT) - 1 :]
    assert tail == [
        "-c",
        bwrap_command.EGRESS_BOOT,
        "3128",
        "/run/chiron-egress/proxy.sock",
        "/usr/bin/socat",
        "--adapter",
        "shell",
    ]
    with pytest.raises(ValueError, match="socat"):
        bwrap_command.harness_argv("/usr/bin/python3", "shell", egress=egress)


def test_egress_environment_points_every_tool_at_the_proxy(tmp_path: Path) -> None:
    env = bwrap_command.sandbox_env(
        {"GITHUB_TOKEN": "GITHUB_TOKEN", "HTTPS_PROXY": "http://elsewhere:1"}, _egress(tmp_path)
    )
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        assert env[name] == "http://127.0.0.1:3128"
    assert env["NO_PROXY"] == env["no_proxy"] == "localhost,127.0.0.1"
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO"):
        assert env[name] == bwrap_command.EGRESS_CA
    assert env["GITHUB_TOKEN"] == "GITHUB_TOKEN"
    assert not any("PROXY" in name.upper() for name in bwrap_command.sandbox_env({}))
