"""What a secret is, apart from its value: the typed result of parsing a declaration.

A `SecretSpec` is safe to store, list, hash and show. `document()` gives the normalized
declaration back (the stored `spec` column), which `parse_declaration` reads again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

SecretType = Literal["http", "hmac_sign", "aws_auth", "oauth_token", "brokered_token"]
Mode = Literal["replace", "inject"]
SECRET_TYPES: tuple[SecretType, ...] = (
    "http",
    "hmac_sign",
    "aws_auth",
    "oauth_token",
    "brokered_token",
)


@dataclass(frozen=True)
class Replace:
    placeholder: str
    headers: tuple[str, ...]
    query: tuple[str, ...]
    path: bool
    body: bool


@dataclass(frozen=True)
class Inject:
    header: str | None
    query: str | None
    formatter: str


@dataclass(frozen=True)
class HmacSigning:
    header: str
    algorithm: Literal["sha1", "sha256", "sha512"]
    encoding: Literal["hex", "base64"]
    formatter: str


@dataclass(frozen=True)
class AwsSigning:
    access_key_id: str
    regions: tuple[str, ...]
    services: tuple[str, ...]


@dataclass(frozen=True)
class OAuthClient:
    token_url: str
    client_id: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class Broker:
    url: str
    refresh_seconds: int


@dataclass(frozen=True)
class SecretSpec:
    """Everything about a secret except its value."""

    name: str
    type: SecretType
    hosts: tuple[str, ...]
    methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    replace: Replace | None = None
    inject: Inject | None = None
    hmac: HmacSigning | None = None
    aws: AwsSigning | None = None
    oauth: OAuthClient | None = None
    broker: Broker | None = None

    @property
    def mode(self) -> Mode | None:
        if self.replace is not None:
            return "replace"
        return "inject" if self.inject is not None else None

    @property
    def placeholder(self) -> str | None:
        return None if self.replace is None else self.replace.placeholder

    def document(self) -> dict[str, Any]:
        """The normalized declaration without the value; `parse_declaration` reads it back."""
        doc: dict[str, Any] = {
            "type": self.type,
            "hosts": list(self.hosts),
            "methods": list(self.methods),
            "paths": list(self.paths),
        }
        if self.replace is not None:
            doc |= {
                "mode": "replace",
                "placeholder": self.replace.placeholder,
                "match_headers": list(self.replace.headers),
                "match_query": list(self.replace.query),
                "match_path": self.replace.path,
                "match_body": self.replace.body,
            }
        if self.inject is not None:
            doc["mode"] = "inject"
            if self.inject.header is not None:
                doc["inject_header"] = self.inject.header
            if self.inject.query is not None:
                doc["inject_query"] = self.inject.query
            doc["inject_formatter"] = self.inject.formatter
        if self.hmac is not None:
            doc |= {
                "signature_header": self.hmac.header,
                "algorithm": self.hmac.algorithm,
                "signature_encoding": self.hmac.encoding,
                "signature_formatter": self.hmac.formatter,
            }
        if self.aws is not None:
            doc |= {
                "access_key_id": self.aws.access_key_id,
                "regions": list(self.aws.regions),
                "services": list(self.aws.services),
            }
        if self.oauth is not None:
            doc |= {
                "token_url": self.oauth.token_url,
                "client_id": self.oauth.client_id,
                "scopes": list(self.oauth.scopes),
            }
        if self.broker is not None:
            doc |= {"broker_url": self.broker.url, "refresh_seconds": self.broker.refresh_seconds}
        return doc
