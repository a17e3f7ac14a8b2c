"""Issue 3's acceptance against real parts: bwrap sandboxes whose only way out is the egress
proxy, `curl` and Python `httpx` inside, and a loopback HTTPS server with its own CA.

Items covered: 1 (the service gets the real token; the sandbox's environment, files and
processes never hold it), 2 (the placeholder to a host outside the secret's rules arrives
unchanged; an unlisted host gets 403 and a denial), 3 (an echoing server shows the sandbox the
placeholder), 4 (bypass attempts fail) and 8 (SSE arrives event by event; a value split
across two chunks is still scrubbed).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import secrets
import socket
from pathlib import Path

import pytest

from chiron.egress import ProxyConfig, ReplaceIn, SecretRule
from chiron.sandbox.backend import EgressBinding, SandboxSpec
from chiron.sandbox.local_backend import LocalSandboxBackend
from tests.egress.conftest import (
    API,
    OTHER,
    TOKEN_NAME,
    TOKEN_VALUE,
    UNLISTED,
    Egress,
    new_sandbox_id,
)
from tests.sandbox.conftest import LIMITS, Reader, deltas, run_turn, user_line

pytestmark = pytest.mark.slow

PYLIB = "/workspace/.pylib"
VENV_SITE = Path(__import__("httpx").__file__).resolve().parents[1]


@functools.cache
def httpx_files() -> dict[str, bytes]:
    """httpx and its dependencies (pure Python) for the sandbox's system Python."""
    files = {}
    for package in ("httpx", "httpcore", "h11", "anyio", "idna", "certifi"):
        for path in (VENV_SITE / package).rglob("*"):
            if path.suffix in (".py", ".pem") and "__pycache__" not in path.parts:
                files[f"{PYLIB}/{path.relative_to(VENV_SITE)}"] = path.read_bytes()
    files[f"{PYLIB}/typing_extensions.py"] = (VENV_SITE / "typing_extensions.py").read_bytes()
    return files


def token_config() -> ProxyConfig:
    secret = SecretRule(
        name=TOKEN_NAME, value=TOKEN_VALUE, hosts=(API,), replace=ReplaceIn(TOKEN_NAME)
    )
    return ProxyConfig.from_secrets("prn_sandbox", [secret], allowed_hosts=[OTHER])


async def egress_sandbox(
    egress: Egress, backend: LocalSandboxBackend, *, with_httpx: bool = False
) -> tuple[str, Reader]:
    sandbox_id = new_sandbox_id()
    socket_path = await egress.proxy.open_listener(sandbox_id)
    await egress.proxy.load(sandbox_id, token_config())
    spec = SandboxSpec(
        sandbox_id=sandbox_id,
        harness="shell",
        limits=LIMITS,
        env={TOKEN_NAME: TOKEN_NAME},
        files=httpx_files() if with_httpx else {},
        principal_id="prn_sandbox",
        egress=EgressBinding(socket_path, egress.proxy.ca_cert_path),
    )
    await backend.create(spec)
    return sandbox_id, Reader(backend, sandbox_id)


async def shell(backend: LocalSandboxBackend, reader: Reader, command: str) -> str:
    return deltas(await run_turn(backend, reader, command))


async def test_allowed_host_gets_the_real_token_and_the_sandbox_never_holds_it(
    egress: Egress, backend: LocalSandboxBackend
) -> None:
    sandbox_id, reader = await egress_sandbox(egress, backend, with_httpx=True)
    by_curl = await shell(
        backend,
        reader,
        f'curl -sS -i -H "Authorization: Bearer ${TOKEN_NAME}" https://{API}/echo',
    )
    by_httpx = await shell(
        backend,
        reader,
        f"PYTHONPATH={PYLIB} python3 -c 'import httpx, os; "
        f'r = httpx.get("https://{API}/echo?via=httpx", '
        f'headers={{"authorization": "Bearer " + os.environ["{TOKEN_NAME}"]}}); '
        "print(r.status_code, r.text)'",
    )
    # 1. The service received the real value from both clients.
    received = egress.server.received
    assert [r.header("authorization") for r in received] == [f"Bearer {TOKEN_VALUE}"] * 2
    assert received[1].target == "/echo?via=httpx" and received[1].sni == API
    # 3. What came back (headers and echoed body) shows the placeholder only.
    assert f"x-echo-authorization: Bearer {TOKEN_NAME}\r\n" in by_curl
    assert by_httpx.startswith("200 ") and f"Bearer {TOKEN_NAME}" in by_httpx
    assert TOKEN_VALUE not in by_curl + by_httpx
    # Everything the sandbox can see: environment, processes, its files and mounts.
    dump = await shell(
        backend,
        reader,
        "{ env; ps auxww; cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline; "
        "find /workspace /home /tmp /run /etc /dev/shm -xdev -type f -readable "
        "-exec cat {} + ; } 2>/dev/null | gzip -c | base64",
    )
    seen = __import__("gzip").decompress(base64.b64decode("".join(dump.split())))
    assert len(seen) > 100_000  # the dump really holds the files (the CA bundle alone is big)
    assert TOKEN_NAME.encode() in seen and TOKEN_VALUE.encode() not in seen
    assert b"PRIVATE KEY" not in seen  # the proxy CA's key is not mounted
    spec = json.loads((backend._dir(sandbox_id).spec).read_text())
    assert TOKEN_VALUE not in json.dumps(spec)
    assert TOKEN_VALUE.encode() not in backend._dir(sandbox_id).output_log.read_bytes()
    assert {r.secrets for r in egress.audits} == {(TOKEN_NAME,)}


async def test_other_hosts_get_the_placeholder_and_unlisted_ones_403(
    egress: Egress, backend: LocalSandboxBackend
) -> None:
    sandbox_id, reader = await egress_sandbox(egress, backend)
    header = f'-H "Authorization: Bearer ${TOKEN_NAME}"'
    to_other = await shell(backend, reader, f"curl -sS {header} https://{OTHER}/echo")
    to_unlisted = await shell(
        backend, reader, f"curl -sS {header} https://{UNLISTED}/echo; echo exit=$?"
    )
    assert [r.header("authorization") for r in egress.server.received] == [f"Bearer {TOKEN_NAME}"]
    assert json.loads(to_other)["sni"] == OTHER
    assert "CONNECT tunnel failed, response 403" in to_unlisted and "exit=56" in to_unlisted
    await egress.wait_for(lambda: bool(egress.denials))
    assert egress.denials == [(sandbox_id, UNLISTED, "CONNECT", "host-not-allowed")]


async def test_bypass_attempts_fail(egress: Egress, backend: LocalSandboxBackend) -> None:
    sandbox_id, reader = await egress_sandbox(egress, backend)
    host_ips = _host_addresses()
    server_port = egress.server.port
    attempts = {
        # Straight out, ignoring the proxy: no name resolution, no route, nothing listening.
        "direct-name": f"curl -sS -m 5 --noproxy '*' https://{API}/echo",
        "direct-loopback": f"curl -sS -m 5 --noproxy '*' -k https://127.0.0.1:{server_port}/",
        "direct-host-ips": "; ".join(
            f"curl -sS -m 3 --noproxy '*' -k https://{ip}:{server_port}/" for ip in host_ips
        )
        or "false",
        "dns": f'getent hosts {API} example.com || python3 -c "import socket; '
        "socket.getaddrinfo('example.com', 443)\"",
        "raw-socket": 'python3 -c "import socket; '
        'socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)"',
        "packet-socket": 'python3 -c "import socket; socket.socket(socket.AF_PACKET, '
        'socket.SOCK_RAW)"',
        "connect-unlisted": f"curl -sS -m 5 https://{UNLISTED}/echo",
        # 127.0.0.1 is in NO_PROXY (so curl tries it directly); through the proxy, an IP
        # literal is refused whatever Host says.
        "connect-ip-literal": f"curl -sS -m 5 --noproxy '' -H 'Host: {API}' https://127.0.0.1/",
        "connect-ip-literal-2": f"curl -sS -m 5 -H 'Host: {API}' https://10.11.12.13/echo",
        "connect-other-port": f"curl -sS -m 5 https://{API}:{server_port}/echo",
        "plain-http": f'curl -sS -m 5 -f -H "Authorization: Bearer ${TOKEN_NAME}" '
        f"http://{API}/echo",
    }
    outputs = {}
    for name, command in attempts.items():
        outputs[name] = await shell(backend, reader, f"{{ {command} ; }} 2>&1; echo exit=$?")
    for name, output in outputs.items():
        assert "exit=0" not in output, (name, output)
    assert "Could not resolve host" in outputs["direct-name"]
    assert "Permission" in outputs["raw-socket"] and "Permission" in outputs["packet-socket"]
    assert "403" in outputs["connect-unlisted"] + outputs["connect-ip-literal"]
    # Nothing reached the service, and the value never left the proxy.
    assert egress.server.received == [] and egress.server.connections == 0
    await egress.wait_for(lambda: len(egress.denials) >= 5)
    rules = {(host, rule) for (sid, host, _, rule) in egress.denials if sid == sandbox_id}
    assert rules == {
        (UNLISTED, "host-not-allowed"),
        ("127.0.0.1", "ip-literal"),
        ("10.11.12.13", "ip-literal"),
        (API, "port-not-allowed"),
        (API, "plain-http"),
    }
    # The sandbox sees its own listener only; another sandbox's is not even visible.
    _, other_reader = await egress_sandbox(egress, backend)
    listing = await shell(backend, other_reader, f"ls -a /run/chiron-egress; ls /run/{sandbox_id}")
    assert listing.split()[:3] == [".", "..", "proxy.sock"]
    assert "No such file" in listing


async def test_sse_reaches_the_sandbox_event_by_event(
    egress: Egress, backend: LocalSandboxBackend
) -> None:
    sandbox_id, reader = await egress_sandbox(egress, backend)
    out = backend._dir(sandbox_id).workspace / "sse.out"
    token = secrets.token_hex(8)
    await backend.write_input(
        sandbox_id, [user_line(f"curl -sS -N https://{API}/sse > sse.out")], token=token
    )
    chunks = egress.server.sse_chunks
    half = len(TOKEN_VALUE) // 2

    async def shows(text: bytes) -> None:
        async with asyncio.timeout(10):
            while not (out.exists() and text in out.read_bytes()):
                await asyncio.sleep(0.01)

    await chunks.put(b"event: one\ndata: first\n\n")
    await shows(b"data: first\n\n")
    await chunks.put(b"data: token=" + TOKEN_VALUE[:half].encode())
    await chunks.put(TOKEN_VALUE[half:].encode() + b" end\n\n")
    await shows(f"data: token={TOKEN_NAME} end\n\n".encode())
    # Both events arrived while the stream is still open.
    assert egress.audits == []
    await chunks.put(b"data: last\n\n")
    await shows(b"data: last\n\n")
    await chunks.put(None)
    await reader.turn()
    assert TOKEN_VALUE.encode() not in out.read_bytes()
    assert out.read_bytes().count(b"\n\n") == 3
    await egress.wait_for(lambda: bool(egress.audits))
    assert egress.audits[0].status == 200 and egress.audits[0].response_bytes > 0


def _host_addresses() -> list[str]:
    """This host's own non-loopback addresses (what a sandbox might try to reach)."""
    addresses = set()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            addresses.add(str(info[4][0]))
    except OSError:
        pass
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: picks the outgoing address
        addresses.add(probe.getsockname()[0])
    except OSError:
        pass
    finally:
        probe.close()
    return sorted(a for a in addresses if not a.startswith(("127.", "::1")))


async def test_a_running_sandbox_finds_a_restarted_proxy(
    egress: Egress, backend: LocalSandboxBackend
) -> None:
    sandbox_id, reader = await egress_sandbox(egress, backend)
    fetch = f'curl -sS -m 5 -H "Authorization: Bearer ${TOKEN_NAME}" https://{API}/echo; echo'
    assert '"sni": "api.example.test"' in await shell(backend, reader, fetch)
    await egress.proxy.stop()  # e.g. the control plane restarts; the sandbox keeps running
    assert "exit=0" not in await shell(backend, reader, f"{fetch} exit=$?")
    await egress.proxy.start()
    await egress.proxy.open_listener(sandbox_id)
    assert "503" in await shell(backend, reader, f"curl -sS -m 5 https://{API}/echo")
    await egress.proxy.load(sandbox_id, token_config())
    assert '"sni": "api.example.test"' in await shell(backend, reader, fetch)
    assert [r.header("authorization") for r in egress.server.received] == [
        f"Bearer {TOKEN_VALUE}"
    ] * 2
