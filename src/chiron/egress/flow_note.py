"""What the egress addons know about one flow, kept on the flow itself.

The policy addon writes the note when a request (or CONNECT) arrives, with the listener's
policy at that moment: a re-pointed listener never mixes two principals' configs in one flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mitmproxy import flow as mitm_flow
from mitmproxy import http

from chiron.egress.listener_policy import ListenerPolicy

_KEY = "chiron.egress"


@dataclass
class FlowNote:
    sandbox_id: str
    principal_id: str | None
    policy: ListenerPolicy | None
    host: str
    method: str
    path: str
    started: float
    denied: str | None = None
    applied: list[str] = field(default_factory=list)
    # Access tokens minted for this request's OAuth secrets (secret name → token).
    tokens: dict[str, str] = field(default_factory=dict, repr=False)
    request_bytes: int = 0
    response_bytes: int = 0
    recorded: bool = False


def set_note(flow: http.HTTPFlow, note: FlowNote) -> None:
    flow.metadata[_KEY] = note


def note_of(flow: http.HTTPFlow) -> FlowNote | None:
    note = flow.metadata.get(_KEY)
    return note if isinstance(note, FlowNote) else None


def kill(flow: mitm_flow.Flow) -> None:
    """Cut the flow's connection (mitmproxy leaves `Flow.kill` untyped)."""
    flow.kill()  # type: ignore[no-untyped-call]
