"""Parsers for the type-specific fields of a secret declaration (see `secret_model`).

Each returns a part of a `SecretSpec` or raises `InvalidDeclaration` naming the field; none
ever sees the value.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from chiron.credentials.errors import InvalidDeclaration
from chiron.credentials.host_rules import normalize_host_pattern
from chiron.credentials.secret_spec import (
    AwsSigning,
    Broker,
    HmacSigning,
    Inject,
    OAuthClient,
    Replace,
)

MIN_PLACEHOLDER_CHARS = 8
REPLACE_KEYS = frozenset(
    {"placeholder", "match_headers", "match_query", "match_path", "match_body"}
)
INJECT_KEYS = frozenset({"inject_header", "inject_query", "inject_formatter"})

_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
_QUERY_NAME = re.compile(r"^[A-Za-z0-9_.~\-\[\]]{1,128}$")
_VISIBLE = re.compile(r"^[\x21-\x7e]+$")
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_ACCESS_KEY_ID = re.compile(r"^[A-Z0-9]{16,128}$")
_AWS_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$")
_AWS_SERVICE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_SCOPE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,256}$")


def application(
    name: str, doc: Mapping[str, Any], *, bearer_default: bool
) -> tuple[Replace | None, Inject | None]:
    mode = doc.get("mode")
    replace_keys = sorted(k for k in REPLACE_KEYS if k in doc)
    inject_keys = sorted(k for k in INJECT_KEYS if k in doc)
    if mode is None:
        if replace_keys and inject_keys:
            raise InvalidDeclaration(
                inject_keys[0],
                f"inject keys ({', '.join(inject_keys)}) and replace keys "
                f"({', '.join(replace_keys)}) cannot be mixed",
            )
        if inject_keys:
            mode = "inject"
        elif replace_keys:
            mode = "replace"
        else:
            mode = "inject" if bearer_default else "replace"
    if mode == "replace":
        if inject_keys:
            raise InvalidDeclaration(inject_keys[0], "is an inject-mode key; mode is replace")
        return _replace(name, doc), None
    if mode == "inject":
        if replace_keys:
            raise InvalidDeclaration(replace_keys[0], "is a replace-mode key; mode is inject")
        return None, _inject(doc, bearer_default=bearer_default)
    raise InvalidDeclaration("mode", "must be replace or inject")


def _replace(name: str, doc: Mapping[str, Any]) -> Replace:
    placeholder = doc.get("placeholder", name)
    if not isinstance(placeholder, str) or not _VISIBLE.match(placeholder):
        raise InvalidDeclaration("placeholder", "must be visible ASCII without spaces")
    if len(placeholder) > 256:
        raise InvalidDeclaration("placeholder", "must be at most 256 characters")
    if placeholder != name and len(placeholder) < MIN_PLACEHOLDER_CHARS:
        raise InvalidDeclaration(
            "placeholder",
            f"must be at least {MIN_PLACEHOLDER_CHARS} characters (unless it is the name), "
            "so it cannot appear in a request by accident",
        )
    headers = _names(doc.get("match_headers"), "match_headers", _HEADER_NAME, lower=True)
    query = _names(doc.get("match_query"), "match_query", _QUERY_NAME, lower=False)
    path = _flag(doc.get("match_path"), "match_path")
    body = _flag(doc.get("match_body"), "match_body")
    if not (headers or query or path or body):
        headers = ("authorization",)
    return Replace(placeholder=placeholder, headers=headers, query=query, path=path, body=body)


def _inject(doc: Mapping[str, Any], *, bearer_default: bool) -> Inject:
    header = doc.get("inject_header")
    query = doc.get("inject_query")
    if header is not None and query is not None:
        raise InvalidDeclaration("inject_query", "give either inject_header or inject_query")
    if header is None and query is None:
        if not bearer_default:
            raise InvalidDeclaration(
                "inject_header", "inject mode needs inject_header or inject_query"
            )
        header = "authorization"
    formatter_default = "Bearer {value}" if bearer_default and query is None else "{value}"
    formatter = _formatter(
        doc.get("inject_formatter", formatter_default), "inject_formatter", "value"
    )
    return Inject(
        header=None if header is None else _name(header, "inject_header", _HEADER_NAME, True),
        query=None if query is None else _name(query, "inject_query", _QUERY_NAME, False),
        formatter=formatter,
    )


def hmac_signing(doc: Mapping[str, Any]) -> HmacSigning:
    header = doc.get("signature_header")
    if header is None:
        raise InvalidDeclaration("signature_header", "is required for hmac_sign")
    algorithm = doc.get("algorithm", "sha256")
    if algorithm not in ("sha1", "sha256", "sha512"):
        raise InvalidDeclaration("algorithm", "must be sha1, sha256 or sha512")
    encoding = doc.get("signature_encoding", "hex")
    if encoding not in ("hex", "base64"):
        raise InvalidDeclaration("signature_encoding", "must be hex or base64")
    return HmacSigning(
        header=_name(header, "signature_header", _HEADER_NAME, True),
        algorithm=algorithm,
        encoding=encoding,
        formatter=_formatter(
            doc.get("signature_formatter", "{signature}"), "signature_formatter", "signature"
        ),
    )


def aws_signing(doc: Mapping[str, Any]) -> AwsSigning:
    key_id = doc.get("access_key_id")
    if not isinstance(key_id, str) or not _ACCESS_KEY_ID.match(key_id):
        raise InvalidDeclaration("access_key_id", "is required: 16+ uppercase letters or digits")
    return AwsSigning(
        access_key_id=key_id,
        regions=_required_list(
            doc.get("regions"), "regions", _AWS_REGION, "a region such as us-east-1"
        ),
        services=_required_list(
            doc.get("services"), "services", _AWS_SERVICE, "a service such as s3"
        ),
    )


def oauth_client(doc: Mapping[str, Any]) -> OAuthClient:
    client_id = doc.get("client_id")
    if not isinstance(client_id, str) or not client_id or len(client_id) > 512:
        raise InvalidDeclaration("client_id", "is required (a string of at most 512 characters)")
    if CONTROL_CHARS.search(client_id):
        raise InvalidDeclaration("client_id", "must not contain control characters")
    scopes = doc.get("scopes", [])
    if not isinstance(scopes, list | tuple):
        raise InvalidDeclaration("scopes", "must be a list of scope names")
    for i, scope in enumerate(scopes):
        if not isinstance(scope, str) or not _SCOPE.match(scope):
            raise InvalidDeclaration(f"scopes[{i}]", "must be a scope name without spaces")
    return OAuthClient(
        token_url=_https_url(doc.get("token_url"), "token_url"),
        client_id=client_id,
        scopes=tuple(scopes),
    )


def broker(doc: Mapping[str, Any]) -> Broker:
    refresh = doc.get("refresh_seconds", 300)
    if not isinstance(refresh, int) or isinstance(refresh, bool) or not 30 <= refresh <= 86_400:
        raise InvalidDeclaration("refresh_seconds", "must be a whole number from 30 to 86400")
    return Broker(url=_https_url(doc.get("broker_url"), "broker_url"), refresh_seconds=refresh)


def _https_url(raw: object, field: str) -> str:
    if not isinstance(raw, str) or not raw:
        raise InvalidDeclaration(field, "is required: an https:// URL")
    if CONTROL_CHARS.search(raw) or " " in raw:
        raise InvalidDeclaration(field, "must not contain spaces or control characters")
    parts = urlsplit(raw)
    if parts.scheme != "https":
        raise InvalidDeclaration(field, "must be an https:// URL")
    if parts.username is not None or parts.password is not None:
        raise InvalidDeclaration(field, "must not carry credentials")
    try:
        port = parts.port
    except ValueError:
        raise InvalidDeclaration(field, "has an invalid port") from None
    host = normalize_host_pattern(parts.hostname or "", field)
    if host.startswith("*"):
        raise InvalidDeclaration(field, "must name one host, not a wildcard")
    netloc = host if port is None else f"{host}:{port}"
    return parts._replace(netloc=netloc, fragment="").geturl()


def _names(raw: object, field: str, pattern: re.Pattern[str], *, lower: bool) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list | tuple):
        raise InvalidDeclaration(field, "must be a list of names")
    return tuple(sorted({_name(n, f"{field}[{i}]", pattern, lower) for i, n in enumerate(raw)}))


def _name(raw: object, field: str, pattern: re.Pattern[str], lower: bool) -> str:
    if not isinstance(raw, str) or not pattern.match(raw):
        raise InvalidDeclaration(field, "is not a valid name")
    return raw.lower() if lower else raw


def _flag(raw: object, field: str) -> bool:
    if raw is None:
        return False
    if not isinstance(raw, bool):
        raise InvalidDeclaration(field, "must be true or false")
    return raw


def _formatter(raw: object, field: str, slot: str) -> str:
    if not isinstance(raw, str) or CONTROL_CHARS.search(raw) or len(raw) > 256:
        raise InvalidDeclaration(field, "must be one line of at most 256 characters")
    try:
        slots = [
            (f, spec, conv) for _, f, spec, conv in string.Formatter().parse(raw) if f is not None
        ]
    except ValueError:
        raise InvalidDeclaration(field, "has unbalanced braces") from None
    if slots != [(slot, "", None)]:
        raise InvalidDeclaration(field, f"must contain {{{slot}}} exactly once and no other {{…}}")
    return raw


def _required_list(
    raw: object, field: str, pattern: re.Pattern[str], shape: str
) -> tuple[str, ...]:
    if not isinstance(raw, list | tuple) or not raw:
        raise InvalidDeclaration(field, f"at least one is required ({shape}; no wildcards)")
    for i, item in enumerate(raw):
        if not isinstance(item, str) or not pattern.match(item):
            raise InvalidDeclaration(f"{field}[{i}]", f"must be {shape}")
    return tuple(sorted(set(raw)))
