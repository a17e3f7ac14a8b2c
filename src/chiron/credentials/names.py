"""Names in the registry: secrets (env-var-like), roles, and principal ids."""

from __future__ import annotations

import re

from chiron.credentials.errors import InvalidDeclaration

# A secret's name is also its default placeholder and the sandbox's environment variable.
SECRET_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
ROLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
# `prn_<hex>` for sessions; front doors may derive others such as `slack:U123`.
PRINCIPAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")

MAX_SECRET_NAME = 128
MAX_ROLE_NAME = 64
MAX_PRINCIPAL_ID = 128


def validate_secret_name(name: object, field: str = "name") -> str:
    return _check(name, field, SECRET_NAME, MAX_SECRET_NAME, "[A-Z_][A-Z0-9_]* (env-var-like)")


def validate_role_name(name: object, field: str = "role") -> str:
    return _check(name, field, ROLE_NAME, MAX_ROLE_NAME, "letters, digits and _ . : -")


def validate_principal_id(principal_id: object, field: str = "principal_id") -> str:
    return _check(
        principal_id, field, PRINCIPAL_ID, MAX_PRINCIPAL_ID, "letters, digits and _ . : @ -"
    )


def _check(value: object, field: str, pattern: re.Pattern[str], limit: int, shape: str) -> str:
    if not isinstance(value, str):
        raise InvalidDeclaration(field, "must be a string")
    if not value:
        raise InvalidDeclaration(field, "must not be empty")
    if len(value) > limit:
        raise InvalidDeclaration(field, f"must be at most {limit} characters")
    if not pattern.match(value):
        raise InvalidDeclaration(field, f"{value!r} must match {shape}")
    return value
