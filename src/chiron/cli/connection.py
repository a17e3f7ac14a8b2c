"""Where the CLI finds the server and which token it presents.

URL: `CHIRON_URL`, else `http://` + `CHIRON_LISTEN` (a wildcard listen address is dialled on
loopback). Token: `CHIRON_API_KEY`, else `CHIRON_ADMIN_API_KEY`, else the admin key file the
server created in `CHIRON_HOME`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import ValidationError

from chiron.cli.errors import ConfigError
from chiron.settings import Settings, load_settings

_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1", "": "127.0.0.1"}


@dataclass(frozen=True)
class Connection:
    base_url: str
    token: str
    # Named in error messages instead of the token, which must never be printed.
    token_source: str


def load_cli_settings() -> Settings:
    try:
        return load_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"CHIRON_{'_'.join(str(p) for p in error['loc']).upper()}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None


def local_base_url(settings: Settings) -> str:
    """The URL that reaches a server listening on `settings.listen` from this machine."""
    host = _WILDCARD_HOSTS.get(settings.listen_host, settings.listen_host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.listen_port}"


def resolve_connection(settings: Settings, environ: Mapping[str, str] | None = None) -> Connection:
    env = os.environ if environ is None else environ
    base_url = (env.get("CHIRON_URL") or "").strip().rstrip("/") or local_base_url(settings)
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"CHIRON_URL must start with http:// or https://, got {base_url!r}")
    token = (env.get("CHIRON_API_KEY") or "").strip()
    if token:
        return Connection(base_url, token, "CHIRON_API_KEY")
    if settings.admin_api_key is not None:
        return Connection(
            base_url, settings.admin_api_key.get_secret_value(), "CHIRON_ADMIN_API_KEY"
        )
    key_file = settings.admin_key_file
    try:
        token = key_file.read_text().strip()
    except FileNotFoundError:
        raise ConfigError(
            f"no API key: set CHIRON_API_KEY, or start the server once with `chiron up` "
            f"so it creates {key_file}"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the admin key file {key_file}: {exc.strerror}") from None
    if not token:
        raise ConfigError(f"the admin key file {key_file} is empty")
    return Connection(base_url, token, str(key_file))
