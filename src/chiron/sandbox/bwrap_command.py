"""The harness command line and environment for one sandbox (bubblewrap or no isolation).

Owns what a sandbox can see: mounts, namespaces, identity, environment. Nothing here starts a
process; the supervisor runs the argv this module builds.

Network: the sandbox always gets a network namespace of its own with only loopback. With an
`EgressBinding`, its way out is the egress proxy: the proxy's unix socket directory is mounted
at `/run/chiron-egress`, and a boot step before the harness starts `socat` listening on
127.0.0.1:<proxy_port> inside, forwarding to that socket (`EGRESS_BOOT`); `HTTP(S)_PROXY` and
the CA variables point there, and the proxy CA's certificate is also mounted over the system
bundle for tools that ignore the variables.

Run as root, bwrap uses no user namespace (with one, the sandbox would be real root on the host)
and `setpriv` turns every process inside into an unprivileged host uid with no capabilities.
Run as anyone else, bwrap maps the caller into a fresh user namespace.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from chiron.sandbox.backend import EgressBinding

WORKSPACE = "/workspace"
HOME = "/home/agent"
PACKAGE_ROOT = "/opt/chiron"
INFO_FD = 3
READY_FD = 4
READY_FD_VARIABLE = "CHIRON_HARNESS_READY_FD"
PATH = "/usr/local/bin:/usr/bin:/bin"

# Only what common tools need from /etc; everything else there (shadow, ssh keys, the host's
# passwd) stays invisible. passwd, group, hosts and hostname are synthetic per sandbox.
ETC_BINDS = (
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/nsswitch.conf",
)
SYNTHETIC_ETC = ("passwd", "group", "hosts", "hostname")
EGRESS_DIR = "/run/chiron-egress"
EGRESS_CA = "/etc/chiron-egress-ca.pem"
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
EGRESS_CA_VARIABLES = (
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
    "CURL_CA_BUNDLE",
    "PIP_CERT",
)
_ROOT_LINKS = ("/bin", "/lib", "/lib64", "/lib32", "/libx32", "/sbin")


@dataclass(frozen=True)
class HostPaths:
    """Where one sandbox's pieces live on the host."""

    workspace: Path
    home: Path
    etc: Path
    package_dir: Path


# Same as `python -s -S -m chiron.harness`, minus `runpy` and the importlib machinery it
# loads: ~4 ms on the cold-start path.
HARNESS_BOOT = "import sys; from chiron.harness.__main__ import main; sys.exit(main(sys.argv[1:]))"


# The egress bridge, then the harness (HARNESS_BOOT): `socat` listens on 127.0.0.1:<port> and
# forwards each connection to the proxy's unix socket. It is double-forked into a session of
# its own (the pid-namespace init reaps it and it dies with the sandbox; the harness never
# waits for it), holds none of the harness's pipes (or supervisor stdin/stdout would not see
# EOF), and the harness reports ready only once the bridge listens.
EGRESS_BOOT = """\
import os, sys, time
port, target, socat = sys.argv[1:4]
del sys.argv[1:4]
pid = os.fork()
if pid == 0:
    try:
        os.setsid()
        if os.fork() == 0:
            null = os.open("/dev/null", os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.closerange(3, 1 << 16)
            listen = "TCP-LISTEN:%s,bind=127.0.0.1,fork,reuseaddr,nodelay" % port
            os.execv(socat, [socat, listen, "UNIX-CONNECT:" + target])
    finally:
        os._exit(0)
os.waitpid(pid, 0)
listening = "0100007F:%04X 00000000:0000 0A" % int(port)
deadline = time.monotonic() + 10
while True:
    with open("/proc/net/tcp") as table:
        if listening in table.read():
            break
    if time.monotonic() > deadline:
        sys.stderr.write("sandbox: the egress bridge (socat) did not start\\n")
        sys.exit(70)
    time.sleep(0.002)
from chiron.harness.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def harness_argv(
    python: str, harness: str, *, egress: EgressBinding | None = None, socat: str | None = None
) -> list[str]:
    # -P: the harness starts in /workspace, where the agent could plant a module named like
    # one the harness imports; never put the working directory on its import path.
    if egress is None:
        return [python, "-P", "-s", "-S", "-c", HARNESS_BOOT, "--adapter", harness]
    if socat is None:
        raise ValueError("socat is required for a sandbox with an egress binding")
    target = f"{EGRESS_DIR}/{egress.socket_path.name}"
    boot = [python, "-P", "-s", "-S", "-c", EGRESS_BOOT, str(egress.proxy_port), target, socat]
    return [*boot, "--adapter", harness]


def egress_mounts(egress: EgressBinding) -> list[str]:
    """The proxy socket's directory and the CA certificate (also over the system bundle)."""
    argv = ["--perms", "0755", "--dir", "/run"]
    argv += ["--ro-bind", str(egress.socket_path.parent), EGRESS_DIR]
    argv += ["--ro-bind", str(egress.ca_cert), EGRESS_CA]
    if os.path.isfile(SYSTEM_CA_BUNDLE):
        argv += ["--ro-bind", str(egress.ca_cert), SYSTEM_CA_BUNDLE]
    return argv


def bwrap_argv(
    *,
    bwrap: str,
    setpriv: str | None,
    uid: int | None,
    paths: HostPaths,
    python: str,
    harness: str,
    command: list[str] | None = None,
    egress: EgressBinding | None = None,
    socat: str | None = None,
    read_only_mounts: Mapping[str, Path] | None = None,
) -> list[str]:
    """The full command line; `setpriv` and `uid` are given when the server runs as root.

    `command` replaces the harness (for a start-up self-check). With `egress`, the proxy is
    mounted and bridged in (`socat` is the bridge's path on the host, under /usr).
    """
    argv = [bwrap]
    if uid is not None:
        argv += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
        argv += ["--unshare-cgroup-try"]
    else:
        # --disable-userns: a nested user namespace could hide processes from pause.
        argv += ["--unshare-all", "--unshare-user", "--disable-userns"]
    argv += ["--die-with-parent", "--new-session", "--hostname", "chiron"]
    argv += ["--info-fd", str(INFO_FD)]
    argv += ["--ro-bind", "/usr", "/usr"]
    for link in _ROOT_LINKS:
        if os.path.islink(link):
            argv += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            argv += ["--ro-bind", link, link]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--perms", "1777", "--tmpfs", "/tmp", "--perms", "1777", "--tmpfs", "/dev/shm"]
    # Run as root, bwrap makes implicit parents of mount points 0700: the sandbox's uid could
    # not even reach /etc. Create them readable first.
    for directory in ("/etc", "/home", "/opt", PACKAGE_ROOT):
        argv += ["--perms", "0755", "--dir", directory]
    for path in ETC_BINDS:
        argv += ["--ro-bind-try", path, path]
    if os.path.isdir("/etc/ssl/private"):
        # Private keys next to the certificates: mask them even though the mode should suffice.
        argv += ["--tmpfs", "/etc/ssl/private"]
    for name in SYNTHETIC_ETC:
        argv += ["--ro-bind", str(paths.etc / name), f"/etc/{name}"]
    if egress is not None:
        argv += egress_mounts(egress)
    argv += ["--bind", str(paths.workspace), WORKSPACE, "--bind", str(paths.home), HOME]
    argv += ["--ro-bind", str(paths.package_dir), f"{PACKAGE_ROOT}/chiron"]
    for target, source in sorted((read_only_mounts or {}).items()):
        if not target.startswith(f"{PACKAGE_ROOT}/") or ".." in target.split("/"):
            raise ValueError(f"read-only mounts go under {PACKAGE_ROOT}/, not {target!r}")
        # Implicit parents of a mount point would be 0700 (see above).
        parts = target[len(PACKAGE_ROOT) + 1 :].split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            argv += ["--perms", "0755", "--dir", "/".join([PACKAGE_ROOT, *parts[:depth]])]
        argv += ["--ro-bind", str(source), target]
    argv += ["--chdir", WORKSPACE]
    if uid is not None:
        if setpriv is None:
            raise ValueError("setpriv is required when bwrap runs as root")
        argv += [setpriv, "--reuid", str(uid), "--regid", str(uid), "--clear-groups"]
        argv += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    if command is None:
        command = harness_argv(python, harness, egress=egress, socat=socat)
    return argv + command


def egress_env(egress: EgressBinding) -> dict[str, str]:
    """What tells every common tool to go through the proxy and trust its CA."""
    proxy = f"http://127.0.0.1:{egress.proxy_port}"
    env = {name: proxy for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")}
    env |= {"NO_PROXY": "localhost,127.0.0.1", "no_proxy": "localhost,127.0.0.1"}
    env |= {name: EGRESS_CA for name in EGRESS_CA_VARIABLES}
    return env


def sandbox_env(extra: dict[str, str], egress: EgressBinding | None = None) -> dict[str, str]:
    """Environment inside a bwrap sandbox: nothing of the host's, plus `extra`, plus the proxy
    variables when the sandbox has an egress binding (they win over `extra`).

    The supervisor starts bwrap with exactly this environment instead of `--clearenv` plus
    `--setenv`, so values never appear on a command line (readable by every host user).
    """
    return {
        "PATH": PATH,
        "HOME": HOME,
        "USER": "agent",
        "LOGNAME": "agent",
        "LANG": "C.UTF-8",
        "PYTHONPATH": PACKAGE_ROOT,
        "PYTHONUNBUFFERED": "1",
        "CHIRON_WORKSPACE": WORKSPACE,
        **extra,
        **(egress_env(egress) if egress is not None else {}),
        READY_FD_VARIABLE: str(READY_FD),
    }


def unisolated_env(extra: dict[str, str], paths: HostPaths) -> dict[str, str]:
    """Environment for isolation `none`: host paths instead of the sandbox's mount points."""
    return {
        "PATH": PATH,
        "HOME": str(paths.home),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(paths.package_dir.parent),
        "PYTHONUNBUFFERED": "1",
        "CHIRON_WORKSPACE": str(paths.workspace),
        **extra,
        READY_FD_VARIABLE: str(READY_FD),
    }


def synthetic_etc(uid: int, gid: int) -> dict[str, bytes]:
    """passwd/group/hosts/hostname so `id`, `whoami`, `ls -l` and localhost resolve."""
    return {
        "passwd": (
            "root:x:0:0:root:/root:/usr/sbin/nologin\n"
            f"agent:x:{uid}:{gid}:Chiron agent:{HOME}:/bin/bash\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ).encode(),
        "group": f"root:x:0:\nagent:x:{gid}:\nnogroup:x:65534:\n".encode(),
        "hosts": b"127.0.0.1\tlocalhost chiron\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        "hostname": b"chiron\n",
    }
