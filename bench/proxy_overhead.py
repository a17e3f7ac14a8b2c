"""Egress proxy overhead: keep-alive HTTPS requests from a sandbox through the proxy (one
placeholder swap each) vs the same requests made directly on the host, in the same run.

Parts, as deployed: the proxy runs in this process on its own thread (as in the control
plane); the upstream HTTPS server runs in a separate process; the client is stdlib
`http.client` on one keep-alive connection, run inside a bwrap sandbox (through socat and the
proxy) and then on the host (straight to the server). Reported: added latency p50/p99,
requests per second of each, and the proxy thread's CPU time per request. Target (issue 3):
added p50 under 3 ms.

    .venv/bin/python bench/proxy_overhead.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import json
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench_support import percentile
from chiron.egress import EgressOptions, EgressProxy, ProxyConfig, ReplaceIn, SecretRule
from chiron.sandbox.backend import EgressBinding, ResourceLimits, SandboxSpec
from chiron.sandbox.local_backend import LocalSandboxBackend
from chiron.settings import Settings

HOST = "api.bench.test"
PLACEHOLDER = "BENCH_TOKEN"
VALUE = "real-bench-" + secrets.token_hex(16)
PYTHON = "/usr/bin/python3"
WARMUP = 50

SERVER = r"""
import asyncio, ssl, sys
cert, key, expected = sys.argv[1:4]
body_ok, body_bad = b'{"ok": true}', b'{"ok": false}'
async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            ok = (b"authorization: " + expected.encode() + b"\r\n").lower() in head.lower()
            body = body_ok if ok else body_bad
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                         b"content-length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        writer.close()
async def main():
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
"""

CLIENT = r"""
import http.client, json, ssl, sys, time
mode, target, port, host, token, cafile, n, warmup = sys.argv[1:9]
n, warmup = int(n), int(warmup)
context = ssl.create_default_context(cafile=cafile)
if mode == "proxy":
    conn = http.client.HTTPSConnection("127.0.0.1", int(port), context=context)
    conn.set_tunnel(target, 443)
else:
    conn = http.client.HTTPSConnection(target, int(port), context=context)
headers = {"Host": host, "Authorization": "Bearer " + token}
latencies, ok = [], 0
for i in range(warmup + n):
    started = time.perf_counter()
    conn.request("GET", "/bench", headers=headers)
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    if i >= warmup:
        latencies.append(elapsed)
        ok += response.status == 200 and body == b'{"ok": true}'
print(json.dumps({"latencies": latencies, "ok": ok}))
"""


def make_certs(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for HOST and 127.0.0.1: (ca, cert, key) paths."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench upstream CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(HOST), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


async def run_in_sandbox(backend: LocalSandboxBackend, sandbox_id: str, command: str) -> str:
    """One shell turn; returns its output."""
    offset = await backend.output_end(sandbox_id)
    line = json.dumps({"type": "user", "message": {"role": "user", "content": command}})
    await backend.write_input(sandbox_id, [line], token=secrets.token_hex(8))
    output: list[str] = []
    async for lines in backend.open_output(sandbox_id, offset, line_cap=16 << 20):
        for raw in lines:
            message = json.loads(raw.data)
            method = message.get("method")
            if method == "item/commandExecution/outputDelta":
                output.append(message["params"]["delta"])
            elif method == "turn/completed":
                return "".join(output)
    raise RuntimeError("the sandbox's output ended before the turn did")


def report(name: str, result: dict[str, Any], seconds: float) -> None:
    latencies = result["latencies"]
    print(
        f"  {name:<22} p50 {percentile(latencies, 0.5) * 1000:6.2f} ms   "
        f"p99 {percentile(latencies, 0.99) * 1000:6.2f} ms   "
        f"{len(latencies) / sum(latencies):7.0f} req/s   ok {result['ok']}/{len(latencies)}"
        f"   (wall {seconds:.1f} s)"
    )


async def main(requests: int) -> None:
    with tempfile.TemporaryDirectory(prefix="chiron-bench-egress-") as tmp:
        root = Path(tmp)
        ca, cert, key = make_certs(root)
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(cert), str(key), f"Bearer {VALUE}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        port = int(server.stdout.readline())
        home = root / "home"
        proxy = EgressProxy(
            EgressOptions(home=home, upstream_ca=ca, resolve={HOST: f"127.0.0.1:{port}"})
        )
        backend = LocalSandboxBackend(Settings(home=home))
        sandbox_id = f"bench_{secrets.token_hex(4)}"
        try:
            await proxy.start()
            socket_path = await proxy.open_listener(sandbox_id)
            secret = SecretRule(
                name=PLACEHOLDER, value=VALUE, hosts=(HOST,), replace=ReplaceIn(PLACEHOLDER)
            )
            await proxy.load(sandbox_id, ProxyConfig.from_secrets("prn_bench", [secret]))
            limits = ResourceLimits(4 << 30, 3600, 256, 1 << 30)
            await backend.create(
                SandboxSpec(
                    sandbox_id=sandbox_id,
                    harness="shell",
                    limits=limits,
                    env={PLACEHOLDER: PLACEHOLDER},
                    files={"client.py": CLIENT.encode()},
                    egress=EgressBinding(socket_path, proxy.ca_cert_path),
                )
            )
            command = (
                f"python3 client.py proxy {HOST} 3128 {HOST} ${PLACEHOLDER} "
                f"$SSL_CERT_FILE {requests} {WARMUP}"
            )
            cpu_before, started = proxy.cpu_seconds, time.perf_counter()
            proxied = json.loads(await run_in_sandbox(backend, sandbox_id, command))
            proxied_wall = time.perf_counter() - started
            proxy_cpu = proxy.cpu_seconds - cpu_before

            started = time.perf_counter()
            direct_run = await asyncio.to_thread(
                subprocess.run,
                [PYTHON, "-c", CLIENT, "direct", "127.0.0.1", str(port), HOST, VALUE,
                 str(ca), str(requests), str(WARMUP)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            direct_wall = time.perf_counter() - started
            direct = json.loads(direct_run.stdout)
        finally:
            await backend.stop(sandbox_id)
            await proxy.stop()
            server.terminate()
            server.wait(10)

    p = {q: percentile(proxied["latencies"], q) for q in (0.5, 0.99)}
    d = {q: percentile(direct["latencies"], q) for q in (0.5, 0.99)}
    print(f"egress proxy overhead: {requests} keep-alive HTTPS GETs, one swap each")
    report("through the proxy", proxied, proxied_wall)
    report("direct on the host", direct, direct_wall)
    print(
        f"  added latency          p50 {(p[0.5] - d[0.5]) * 1000:6.2f} ms   "
        f"p99 {(p[0.99] - d[0.99]) * 1000:6.2f} ms   (target: p50 under 3 ms)"
    )
    print(
        f"  proxy CPU              {proxy_cpu / (requests + WARMUP) * 1000:6.2f} ms per request "
        f"(proxy thread, {proxy_cpu:.2f} s for {requests + WARMUP} requests incl. warm-up)"
    )
    if proxied["ok"] != requests or direct["ok"] != requests:
        raise SystemExit("some requests did not reach the server with the real token")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    asyncio.run(main(parser.parse_args().requests))
