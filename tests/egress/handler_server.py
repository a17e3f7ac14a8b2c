"""A loopback HTTPS server whose answers a test decides: `handler(received)` returns
(status, headers, body). The default handler echoes the request as JSON, like `EchoServer`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from urllib.parse import urlsplit

from tests.egress.tls_servers import EchoServer, Received

Answer = tuple[int, dict[str, str], bytes]
Handler = Callable[[Received], Answer]


def echo(received: Received, status: int = 200) -> Answer:
    document = {
        "method": received.method,
        "target": received.target,
        "headers": received.headers,
        "body": received.body.decode("utf-8", "replace"),
    }
    return status, {"content-type": "application/json"}, json.dumps(document).encode()


class HandlerServer(EchoServer):
    handler: Handler = staticmethod(echo)

    async def _respond(self, received: Received, writer: asyncio.StreamWriter) -> None:
        if urlsplit(received.target).path == "/sse":
            await super()._respond(received, writer)
            return
        status, headers, body = self.handler(received)
        head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(f"{head}content-length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
