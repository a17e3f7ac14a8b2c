"""Addon: one audit record per request, handed to the control plane's callback.

A request ends in exactly one of: a response (`response`, also for answers the proxy gave
itself), a failure (`error`: upstream unreachable, connection cut), or a refused CONNECT
(`http_connect_error`). Records carry secret names, never values, and the path the sandbox
sent (placeholders only) without its query string.
"""

from __future__ import annotations

import time

from mitmproxy import http

from chiron.egress.audit_record import AuditRecord, EventSink
from chiron.egress.flow_note import note_of


class AuditAddon:
    def __init__(self, sink: EventSink) -> None:
        self._sink = sink

    def response(self, flow: http.HTTPFlow) -> None:
        self._record(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._record(flow)

    def http_connect_error(self, flow: http.HTTPFlow) -> None:
        self._record(flow)

    def _record(self, flow: http.HTTPFlow) -> None:
        note = note_of(flow)
        if note is None or note.recorded:
            return
        note.recorded = True
        response = flow.response
        status = response.status_code if response is not None and flow.error is None else 0
        self._sink.audit(
            AuditRecord(
                time=time.time(),
                sandbox_id=note.sandbox_id,
                principal_id=note.principal_id,
                host=note.host,
                method=note.method,
                path=note.path,
                status=status,
                secrets=tuple(note.applied),
                request_bytes=note.request_bytes,
                response_bytes=note.response_bytes,
                duration_ms=round((time.monotonic() - note.started) * 1000, 3),
                denied=note.denied,
            )
        )
