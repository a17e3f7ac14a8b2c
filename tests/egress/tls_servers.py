"""Loopback HTTPS servers for egress tests, with a test CA of their own.

`TestCA` issues server certificates for any names; `EchoServer` is a small HTTP/1.1 server
(keep-alive, content-length and chunked bodies) with the routes the tests need:

- `/echo…`: a JSON document of what arrived (method, path, query, headers, body);
- `/sse`: `text/event-stream`, one event per `release()` from the test, each sent as its own
  chunk; `sse_chunks` queues raw chunks instead (for values split across chunks);
- `/gzip-echo`: like `/echo`, gzip-encoded.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import json
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class TestCA:
    directory: Path
    key: ec.EllipticCurvePrivateKey = field(init=False)
    cert: x509.Certificate = field(init=False)

    __test__ = False  # not a test class

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Chiron test upstream CA")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    @property
    def cert_path(self) -> Path:
        return self.directory / "test-ca.pem"

    def server_context(self, names: Iterable[str]) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        names = list(names)
        sans: list[x509.GeneralName] = []
        for n in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        stem = self.directory / f"server-{x509.random_serial_number():x}"
        cert_file, key_file = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        return context


class HeaderLookup:
    """`header(name)` over a request's `headers` list, as HTTP compares names."""

    headers: list[tuple[str, str]]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class Received(HeaderLookup):
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    sni: str | None


class EchoServer:
    """An HTTPS (or plain, with `context=None`) server on 127.0.0.1, on this loop."""

    def __init__(self, context: ssl.SSLContext | None) -> None:
        self._context = context
        self._server: asyncio.Server | None = None
        self.port = 0
        self.received: list[Received] = []
        self.connections = 0
        self.sse_chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        if context is not None:
            context.sni_callback = self._remember_sni
        self._last_sni: str | None = None

    def _remember_sni(self, sslobj: Any, name: str | None, ctx: Any) -> None:
        self._last_sni = name

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self._context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        sni = self._last_sni
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = [
                    (k.strip(), v.strip())
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                ]
                lower = {k.lower(): v for k, v in headers}
                if "content-length" in lower:
                    body = await reader.readexactly(int(lower["content-length"]))
                elif lower.get("transfer-encoding", "").lower() == "chunked":
                    body = await _read_chunked(reader)
                else:
                    body = b""
                received = Received(method, target, headers, body, sni)
                self.received.append(received)
                await self._respond(received, writer)
                if lower.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _respond(self, received: Received, writer: asyncio.StreamWriter) -> None:
        path = urlsplit(received.target).path
        if path == "/sse":
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
            )
            await writer.drain()
            while (chunk := await self.sse_chunks.get()) is not None:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return
        document = {
            "method": received.method,
            "target": received.target,
            "path": path,
            "query": parse_qsl(urlsplit(received.target).query),
            "headers": received.headers,
            "body": received.body.decode("utf-8", "replace"),
            "sni": received.sni,
        }
        body = json.dumps(document).encode()
        extra = b""
        if path == "/gzip-echo":
            body = gzip.compress(body)
            extra = b"content-encoding: gzip\r\n"
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            + extra
            + b"x-echo-authorization: "
            + (received.header("authorization") or "").encode()
            + b"\r\ncontent-length: %d\r\n\r\n" % len(body)
            + body
        )
        await writer.drain()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while True:
        size = int((await reader.readline()).split(b";")[0], 16)
        if size == 0:
            await reader.readline()
            return body
        body += await reader.readexactly(size)
        await reader.readline()
