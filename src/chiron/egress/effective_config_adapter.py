"""From the registry's effective config (`chiron.credentials.effective_config`) to a
`ProxyConfig`: the same hosts and transforms, one to one, plus the granted values and, for
signing and OAuth secrets, how their values are used (`secret_methods.py`)."""

from __future__ import annotations

from chiron.credentials.effective_config import EffectiveConfig
from chiron.credentials.secret_spec import SecretSpec
from chiron.egress.proxy_config import ProxyConfig, Transform
from chiron.egress.secret_methods import AwsSign, HmacSign, OAuthClient, SecretMethod


def proxy_config_from_effective(effective: EffectiveConfig) -> ProxyConfig:
    methods = {
        granted.spec.name: method
        for granted in effective.secrets
        if (method := secret_method(granted.spec)) is not None
    }
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
        methods=methods,
        source_hash=effective.hash,
    )


def secret_method(spec: SecretSpec) -> SecretMethod | None:
    if spec.hmac is not None:
        h = spec.hmac
        return HmacSign(h.header, h.algorithm, h.encoding, h.formatter)
    if spec.aws is not None:
        return AwsSign(spec.aws.access_key_id, spec.aws.regions, spec.aws.services)
    if spec.oauth is not None:
        o = spec.oauth
        return OAuthClient(o.token_url, o.client_id, o.scopes)
    return None
