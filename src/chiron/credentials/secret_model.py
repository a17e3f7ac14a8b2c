"""Secret declarations: the types of DESIGN.md §8, parsed so that anything doubtful fails closed.

A declaration is a JSON object (API body, CLI flags, the stored `spec` column). Parsing it gives
a `SecretSpec` (everything but the value, safe to store, list and hash) and the value, if one
was given. Every rejection is an `InvalidDeclaration` naming the field; no message ever holds
the value.

Types and their own fields (besides `type`, `value`, `hosts`, `methods`, `paths`):

- `http`: how the value reaches a request, `mode` `replace` (default: the sandbox holds the
  placeholder, swapped for the value in `match_headers` (default `authorization`),
  `match_query` parameters, the path (`match_path`) or the body (`match_body`)) or `inject`
  (`inject_header` or `inject_query` set to `inject_formatter`, default `{value}`).
- `hmac_sign`: the value is a key; the proxy signs the request (timestamp, method, host,
  target and body; exactly: `chiron.egress.hmac_signer`) into `signature_header` with
  `algorithm` (sha256) as `signature_encoding` (hex) through `signature_formatter`.
- `aws_auth`: the value (or `secret_access_key`) with `access_key_id`; re-signs SigV4 only
  for the listed `regions` and `services`.
- `oauth_token`: the value (or `client_secret`) with `client_id`, `token_url` (https) and
  `scopes`; the minted token is applied like `http` (default: inject `Bearer {value}` into
  `authorization`).
- `brokered_token`: the value is what the control plane presents to `broker_url` (https) every
  `refresh_seconds`; the token it gets is applied like `http` (default: inject as a bearer).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from chiron.credentials import secret_fields as fields
from chiron.credentials.errors import InvalidDeclaration
from chiron.credentials.host_rules import normalize_hosts, normalize_methods, normalize_paths
from chiron.credentials.names import validate_secret_name
from chiron.credentials.secret_fields import CONTROL_CHARS, INJECT_KEYS, REPLACE_KEYS
from chiron.credentials.secret_spec import SECRET_TYPES, SecretSpec, SecretType

MIN_VALUE_CHARS = 8
MAX_VALUE_CHARS = 64 * 1024

_COMMON = frozenset({"type", "value", "hosts", "methods", "paths"})
_APPLY_KEYS = REPLACE_KEYS | INJECT_KEYS | {"mode"}
_TYPE_KEYS: dict[str, frozenset[str]] = {
    "http": _APPLY_KEYS,
    "hmac_sign": frozenset(
        {"signature_header", "algorithm", "signature_encoding", "signature_formatter"}
    ),
    "aws_auth": frozenset({"access_key_id", "secret_access_key", "regions", "services"}),
    "oauth_token": _APPLY_KEYS | {"token_url", "client_id", "client_secret", "scopes"},
    "brokered_token": _APPLY_KEYS | {"broker_url", "refresh_seconds"},
}
# Type-specific names a declaration may use for its value instead of `value`.
_VALUE_ALIASES = {"aws_auth": "secret_access_key", "oauth_token": "client_secret"}
_BEARER_DEFAULT = {"oauth_token", "brokered_token"}


@dataclass(frozen=True)
class ParsedSecret:
    spec: SecretSpec
    # Never in a repr: a parsed secret may end up in a log line or a traceback.
    value: str | None

    def __repr__(self) -> str:
        held = "a value" if self.value is not None else "no value"
        return f"ParsedSecret(spec={self.spec!r}, {held})"


def parse_declaration(
    name: str, declaration: Mapping[str, Any], *, value_required: bool = True
) -> ParsedSecret:
    """Validate a declaration for secret `name`; `InvalidDeclaration` names the bad field."""
    try:
        return _parse(name, declaration, value_required=value_required)
    except InvalidDeclaration as exc:
        # A value pasted into the wrong field (a host, say) would be quoted back: withhold.
        if any(value in exc.message for value in _given_values(declaration)):
            raise InvalidDeclaration(
                exc.field, "is invalid (details withheld: they would show the value)"
            ) from None
        raise


def _given_values(declaration: object) -> list[str]:
    if not isinstance(declaration, Mapping):
        return []
    keys = ("value", *_VALUE_ALIASES.values())
    return [v for k in keys if isinstance(v := declaration.get(k), str) and v]


def _parse(name: str, declaration: Mapping[str, Any], *, value_required: bool) -> ParsedSecret:
    validate_secret_name(name)
    if not isinstance(declaration, Mapping):
        raise InvalidDeclaration("body", "must be a JSON object")
    doc = {k: v for k, v in declaration.items() if v is not None}
    secret_type = doc.get("type")
    if secret_type is None:
        raise InvalidDeclaration("type", f"is required: one of {', '.join(SECRET_TYPES)}")
    if secret_type not in SECRET_TYPES:
        shown = (
            f" {secret_type!r}" if isinstance(secret_type, str) and len(secret_type) < 40 else ""
        )
        raise InvalidDeclaration("type", f"unknown type{shown}; known: {', '.join(SECRET_TYPES)}")
    kind = cast(SecretType, secret_type)
    allowed = _COMMON | _TYPE_KEYS[kind]
    unknown = sorted(k for k in doc if k not in allowed)
    if unknown:
        raise InvalidDeclaration(_field_name(unknown[0]), f"is not a field of type {kind}")

    value = _value(doc, kind, required=value_required)
    spec = SecretSpec(
        name=name,
        type=kind,
        hosts=normalize_hosts(doc.get("hosts")),
        methods=normalize_methods(doc.get("methods")),
        paths=normalize_paths(doc.get("paths")),
    )
    if kind in ("http", "oauth_token", "brokered_token"):
        replace, inject = fields.application(name, doc, bearer_default=kind in _BEARER_DEFAULT)
        spec = _with(spec, replace=replace, inject=inject)
    if kind == "hmac_sign":
        spec = _with(spec, hmac=fields.hmac_signing(doc))
    elif kind == "aws_auth":
        spec = _with(spec, aws=fields.aws_signing(doc))
    elif kind == "oauth_token":
        spec = _with(spec, oauth=fields.oauth_client(doc))
    elif kind == "brokered_token":
        spec = _with(spec, broker=fields.broker(doc))
    if value is not None:
        _check_value_apart(spec, value)
    return ParsedSecret(spec=spec, value=value)


def _with(spec: SecretSpec, **changes: Any) -> SecretSpec:
    return dataclasses.replace(spec, **changes)


def _field_name(key: str) -> str:
    # An unknown key is named back only when it looks like a field name: a value pasted as
    # a key must not be echoed.
    return key if re.fullmatch(r"[a-z][a-z0-9_]{0,39}", key) else "an unknown field"


def _value(doc: Mapping[str, Any], kind: str, *, required: bool) -> str | None:
    alias = _VALUE_ALIASES.get(kind)
    if alias is not None and alias in doc and "value" in doc:
        raise InvalidDeclaration(alias, "give either value or " + alias + ", not both")
    field = alias if alias is not None and alias in doc else "value"
    value = doc.get(field)
    if value is None:
        if required:
            raise InvalidDeclaration(field, "is required when creating a secret")
        return None
    if not isinstance(value, str):
        raise InvalidDeclaration(field, "must be a string")
    if not MIN_VALUE_CHARS <= len(value) <= MAX_VALUE_CHARS:
        raise InvalidDeclaration(
            field, f"must be {MIN_VALUE_CHARS} to {MAX_VALUE_CHARS} characters long"
        )
    if CONTROL_CHARS.search(value):
        raise InvalidDeclaration(field, "must not contain line breaks or control characters")
    return value


def _check_value_apart(spec: SecretSpec, value: str) -> None:
    """The value must not also sit in a field that is stored and shown in plain text."""
    if spec.placeholder == value:
        raise InvalidDeclaration("placeholder", "must differ from the value")
    if any(value in text for text in [spec.name, *_strings(spec.document())]):
        raise InvalidDeclaration(
            "value", "also appears in a non-secret field, which would store it in plain text"
        )


def _strings(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, Mapping):
        return [s for k, v in node.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(node, list | tuple):
        return [s for item in node for s in _strings(item)]
    return []
