"""The proxy's options, read from `Settings` (DESIGN.md §13) or given directly (tests, bench)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chiron.settings import Settings

# Bodies above this are streamed rather than buffered (requests: not swapped inside the body).
STREAM_ABOVE = "1m"
# No request or response body above this passes at all.
BODY_LIMIT = "2g"


@dataclass(frozen=True)
class EgressOptions:
    """`home`: CHIRON_HOME (the CA lives in `home/egress-ca`, listeners in `home/egress`).
    `allow`: hosts every sandbox may reach. `upstream_ca`: extra CAs trusted upstream, on top
    of the system bundle. `resolve`: `{host: "ip:port"}` name overrides."""

    home: Path
    allow: tuple[str, ...] = ()
    upstream_ca: Path | None = None
    resolve: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> EgressOptions:
        return cls(
            home=settings.home,
            allow=tuple(settings.egress_allow),
            upstream_ca=settings.egress_upstream_ca,
            resolve=dict(settings.egress_resolve),
        )

    @property
    def ca_dir(self) -> Path:
        return self.home / "egress-ca"

    @property
    def listeners_dir(self) -> Path:
        return self.home / "egress"
