"""The credential registry's exceptions; the API maps them to HTTP in `credential_routes`.

CredentialError                  (message safe to show: never a secret value)
├── InvalidDeclaration           422 invalid_declaration — names the offending `field`
├── UnknownName                  404 secret_not_found / role_not_found
└── SecretsKeyError              the secrets key is malformed, unreadable or not the one a
                                 stored value was encrypted with (fails start-up clearly)
"""

from __future__ import annotations


class CredentialError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidDeclaration(CredentialError):
    """A secret, role, principal or grant that must not be accepted (fail closed)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class UnknownName(CredentialError):
    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"no {kind} named {name!r}")
        self.kind = kind
        self.name = name

    @property
    def code(self) -> str:
        return f"{self.kind}_not_found"


class SecretsKeyError(CredentialError):
    pass
