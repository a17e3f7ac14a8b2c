"""The egress proxy: every sandbox's only way out, and where credentials become real.

Owns (DESIGN.md §6, §8): the proxy built on mitmproxy as a library (one `Master` per
control-plane process, one unix-socket listener per sandbox, the sandbox identified by its
listener), its CA (the key never leaves `CHIRON_HOME/egress-ca`), the default-deny policy,
placeholder swap and injection, HMAC signing, AWS SigV4 re-signing, OAuth token minting,
the response scrubber, and audit records and denials handed to the control plane's callbacks.
Secret values live here only in memory.

Must not import `api`, `cli` or `runtime`, nor touch the store: the control plane loads
configs in and stores what the callbacks report.
"""

from chiron.egress.audit_record import AuditCallback, AuditRecord, DeniedCallback
from chiron.egress.ca import EgressCA, EgressCAError
from chiron.egress.effective_config_adapter import proxy_config_from_effective
from chiron.egress.egress_options import EgressOptions
from chiron.egress.egress_proxy import EgressProxy, EgressProxyError
from chiron.egress.proxy_config import InjectAs, ProxyConfig, ReplaceIn, SecretRule, Transform
from chiron.egress.secret_methods import AwsSign, HmacSign, OAuthClient, SecretMethod

__all__ = [
    "AuditCallback",
    "AuditRecord",
    "AwsSign",
    "DeniedCallback",
    "EgressCA",
    "EgressCAError",
    "EgressOptions",
    "EgressProxy",
    "EgressProxyError",
    "HmacSign",
    "InjectAs",
    "OAuthClient",
    "ProxyConfig",
    "ReplaceIn",
    "SecretMethod",
    "SecretRule",
    "Transform",
    "proxy_config_from_effective",
]
