"""From the registry's effective config (`chiron.credentials.effective_config`) to a
`ProxyConfig`: the same hosts and transforms, one to one, plus the granted values."""

from __future__ import annotations

from chiron.credentials.effective_config import EffectiveConfig
from chiron.egress.proxy_config import ProxyConfig, Transform


def proxy_config_from_effective(effective: EffectiveConfig) -> ProxyConfig:
    return ProxyConfig(
        principal_id=effective.principal_id,
        allowed_hosts=tuple(effective.allowed_hosts),
        hosts={
            host: tuple(
                Transform(
                    secret=t.secret,
                    kind=t.kind,
                    target=t.target,
                    methods=tuple(t.methods),
                    paths=tuple(t.paths),
                    placeholder=t.placeholder,
                    formatter=t.formatter,
                )
                for t in transforms
            )
            for host, transforms in effective.hosts.items()
        },
        values=dict(effective.values),
        source_hash=effective.hash,
    )
