"""Addon: who may go where. Default deny, 403 for refused requests, 503 before a config.

Checked at every step a request could change its destination:
- `http_connect`: the CONNECT target must be an allowed name (not an IP literal) on 443;
- `requestheaders`: HTTPS only; Host/:authority must name the tunnel's host; the destination
  is checked again against the listener's current config (it may have been re-pointed);
- `server_connect`: every upstream connection is re-checked and must go to the tunnel's host;
- `tls_start_server`: the upstream SNI is pinned to the tunnel's host;
- `tcp_start`: anything that is not HTTP inside a tunnel is cut.

Each refusal calls `on_denied(sandbox_id, host, method, rule)` (never a value or a path).
Must run before mitmproxy's TlsConfig addon, which reads the SNI pinned here.
"""

from __future__ import annotations

import time

from mitmproxy import http, tcp, tls
from mitmproxy.proxy import server_hooks

from chiron.egress.audit_record import EventSink
from chiron.egress.flow_note import FlowNote, kill, set_note
from chiron.egress.listener_policy import (
    HOST_MISMATCH,
    NOT_HTTP,
    PLAIN_HTTP,
    destination_denial,
    host_header_matches,
    normalize_host,
)
from chiron.egress.sandbox_listener import ClientState, ConnectionTable

_NOT_READY = b"egress proxy: this sandbox's configuration is not loaded yet\n"


def forbidden(rule: str) -> http.Response:
    return http.Response.make(
        403,
        f"egress proxy: request refused ({rule})\n".encode(),
        {"content-type": "text/plain; charset=utf-8", "x-chiron-egress-denied": rule},
    )


def _unavailable() -> http.Response:
    return http.Response.make(
        503, _NOT_READY, {"content-type": "text/plain; charset=utf-8", "retry-after": "1"}
    )


class PolicyAddon:
    def __init__(self, table: ConnectionTable, sink: EventSink) -> None:
        self._table = table
        self._sink = sink

    # -- CONNECT -------------------------------------------------------------------------

    def http_connect(self, flow: http.HTTPFlow) -> None:
        state = self._table.get(flow.client_conn.id)
        if state is None:
            kill(flow)
            return
        host = normalize_host(flow.request.host)
        note = self._note(flow, state, host)
        policy = state.listener.policy
        if policy is None:
            flow.response = _unavailable()
            return
        rule = destination_denial(policy, host, flow.request.port)
        if rule is not None:
            self._deny(flow, note, rule)
            return
        state.target = (host, flow.request.port)

    # -- requests ------------------------------------------------------------------------

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        state = self._table.get(flow.client_conn.id)
        if state is None:
            kill(flow)
            return
        request = flow.request
        target = state.target or (normalize_host(request.host), request.port)
        note = self._note(flow, state, target[0])
        policy = state.listener.policy
        if policy is None:
            self._refuse(flow, _unavailable())
            return
        rule = _request_denial(request, target) or destination_denial(policy, *target)
        if rule is not None:
            self._deny(flow, note, rule)

    # -- upstream connections ------------------------------------------------------------

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        state = self._table.get(data.client.id)
        address = data.server.address
        if state is None or address is None:
            data.server.error = "egress proxy: unknown connection"
            return
        host, port = normalize_host(str(address[0])), int(address[1])
        policy = state.listener.policy
        if state.target is None:
            # Absolute-form https:// requests without CONNECT: the request was checked.
            state.target = (host, port)
        if policy is None or (host, port) != state.target:
            data.server.error = "egress proxy: upstream connection refused"
            return
        if destination_denial(policy, host, port) is not None:
            data.server.error = "egress proxy: upstream connection refused"
            return
        data.server.sni = host

    def tls_start_server(self, tls_start: tls.TlsData) -> None:
        state = self._table.get(tls_start.context.client.id)
        if state is None or state.target is None:
            return
        tls_start.conn.sni = state.target[0]

    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        state = self._table.get(flow.client_conn.id)
        if state is not None:
            host = state.target[0] if state.target else "?"
            self._sink.denied(state.listener.sandbox_id, host, "TCP", NOT_HTTP)
        kill(flow)

    # -- helpers -------------------------------------------------------------------------

    def _note(self, flow: http.HTTPFlow, state: ClientState, host: str) -> FlowNote:
        policy = state.listener.policy
        note = FlowNote(
            sandbox_id=state.listener.sandbox_id,
            principal_id=policy.config.principal_id if policy is not None else None,
            policy=policy,
            host=host,
            method=flow.request.method,
            path=flow.request.path.split("?", 1)[0][:2048],
            started=time.monotonic(),
        )
        set_note(flow, note)
        return note

    def _deny(self, flow: http.HTTPFlow, note: FlowNote, rule: str) -> None:
        note.denied = rule
        self._sink.denied(note.sandbox_id, note.host, flow.request.method, rule)
        self._refuse(flow, forbidden(rule))

    @staticmethod
    def _refuse(flow: http.HTTPFlow, response: http.Response) -> None:
        if flow.request.stream:
            # mitmproxy cannot answer a request whose body it streams: cut it instead.
            kill(flow)
        else:
            flow.response = response


def _request_denial(request: http.Request, target: tuple[str, int]) -> str | None:
    """Why a request may not go through its tunnel: not HTTPS, or naming another host."""
    if request.scheme != "https":
        return PLAIN_HTTP
    same_destination = (normalize_host(request.host), request.port) == target
    names_target = host_header_matches(request.host_header, *target) and (
        not request.authority or host_header_matches(request.authority, *target)
    )
    return None if same_destination and names_target else HOST_MISMATCH
