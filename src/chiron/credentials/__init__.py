"""The credential registry (DESIGN.md §8): principals, roles, grants, secrets and their rules.

Owns: secret declarations and their fail-closed validation (`secret_model` over
`secret_spec` and `secret_fields`; `host_rules`; `names`), encryption of values at rest and
their fingerprints (`encryption`), the pure effective-config function a proxy applies
(`effective_config`), and the operations over the store (`registry_service`). Principals are
ids (`prn_…` per session by default); they exist through their role assignments and grants.

Must not import `chiron.api`, `chiron.cli` or `chiron.runtime` (the API maps this package's
errors to HTTP itself), and must never return, log or raise with a secret value.
"""

from chiron.credentials.effective_config import (
    EffectiveConfig,
    Grant,
    GrantedSecret,
    Override,
    Transform,
    effective_config,
)
from chiron.credentials.encryption import SecretBox, load_secret_box
from chiron.credentials.errors import (
    CredentialError,
    InvalidDeclaration,
    SecretsKeyError,
    UnknownName,
)
from chiron.credentials.host_rules import host_matches, normalize_host_pattern, request_matches
from chiron.credentials.registry_service import (
    CredentialRegistry,
    ImplicitAccess,
    SecretSummary,
    load_known_values,
)
from chiron.credentials.secret_model import ParsedSecret, parse_declaration
from chiron.credentials.secret_spec import SECRET_TYPES, SecretSpec

__all__ = [
    "SECRET_TYPES",
    "CredentialError",
    "CredentialRegistry",
    "EffectiveConfig",
    "Grant",
    "GrantedSecret",
    "ImplicitAccess",
    "InvalidDeclaration",
    "Override",
    "ParsedSecret",
    "SecretBox",
    "SecretSpec",
    "SecretSummary",
    "SecretsKeyError",
    "Transform",
    "UnknownName",
    "effective_config",
    "host_matches",
    "load_known_values",
    "load_secret_box",
    "normalize_host_pattern",
    "parse_declaration",
    "request_matches",
]
