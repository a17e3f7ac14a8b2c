"""Addon: requests signed with secrets the sandbox never holds (HMAC keys, AWS keys).

Runs in `request`, once the body is complete and after the swap addon changed it, so the
signature covers the request exactly as it leaves: `hmac_signer.py` sets an HMAC signature
header, `aws_resigner.py` replaces the sandbox's placeholder SigV4 signature. An AWS request
for a region or service the secret does not allow is refused with 403 and reported through
`on_denied`. A request whose body was streamed (over 1 MiB) has already left with its head:
it is not signed (and fails upstream).
"""

from __future__ import annotations

from mitmproxy import http

from chiron.egress.audit_record import EventSink
from chiron.egress.aws_resigner import AwsRefused, resign
from chiron.egress.flow_note import FlowNote, note_of
from chiron.egress.hmac_signer import sign_request
from chiron.egress.listener_policy import request_path
from chiron.egress.policy_addon import forbidden
from chiron.egress.proxy_config import AWS_SIGV4, HMAC_SIGN, Transform
from chiron.egress.secret_methods import AwsSign, HmacSign


class SigningAddon:
    def __init__(self, sink: EventSink) -> None:
        self._sink = sink

    def request(self, flow: http.HTTPFlow) -> None:
        note = note_of(flow)
        if note is None or note.policy is None or note.denied or flow.response is not None:
            return
        if flow.request.stream:
            return
        request = flow.request
        config = note.policy.config
        transforms = config.transforms_for(note.host, request.method, request_path(request.path))
        # AWS first: an HMAC signature, if any, must cover the final request.
        for transform in sorted(transforms, key=lambda t: t.kind != AWS_SIGV4):
            if not self._apply(flow, note, transform):
                return

    def _apply(self, flow: http.HTTPFlow, note: FlowNote, transform: Transform) -> bool:
        """False: the request was refused."""
        assert note.policy is not None
        config = note.policy.config
        method = config.methods.get(transform.secret)
        value = config.values.get(transform.secret)
        if value is None:
            return True
        applied = False
        if transform.kind == HMAC_SIGN and isinstance(method, HmacSign):
            kind, _, header = transform.target.partition(":")
            if kind == "header" and header:
                sign_request(
                    flow.request,
                    note.host,
                    key=value,
                    header=header,
                    formatter=transform.formatter or method.formatter,
                    algorithm=method.algorithm,
                    encoding=method.encoding,
                )
                applied = True
        elif transform.kind == AWS_SIGV4 and isinstance(method, AwsSign):
            try:
                applied = resign(flow.request, note.host, method, value)
            except AwsRefused as refused:
                note.denied = refused.rule
                self._sink.denied(note.sandbox_id, note.host, flow.request.method, refused.rule)
                flow.response = forbidden(refused.rule)
                return False
        if applied and transform.secret not in note.applied:
            note.applied.append(transform.secret)
        return True
