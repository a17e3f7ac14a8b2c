"""One typed settings tree for the whole server, read from `CHIRON_*` variables and `chiron.toml`.

Owns: names, defaults and validation of every option (DESIGN.md §13, §14). Must not touch the
store, the network or the file system beyond reading `chiron.toml` and resolving paths.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

MIB = 1024 * 1024


def _default_home() -> Path:
    return Path(os.environ.get("CHIRON_HOME") or Path.home() / ".chiron").expanduser()


class Settings(BaseSettings):
    """Every option of a Chiron server; the field name prefixed with `CHIRON_` is its variable."""

    model_config = SettingsConfigDict(env_prefix="CHIRON_", extra="ignore", frozen=True)

    home: Path = Field(
        default_factory=_default_home,
        description="Config and data dir: database file, admin key, sandboxes.",
    )
    database_url: str | None = Field(
        default=None,
        description="sqlite+aiosqlite:///… or postgresql+asyncpg://…; default: SQLite in home.",
    )
    listen: str = Field(default="127.0.0.1:8742", description="host:port the API listens on.")
    admin_api_key: SecretStr | None = Field(
        default=None, description="Admin bearer key; generated into home on first start."
    )
    sandbox_backend: Literal["local"] = Field(
        default="local", description="Sandbox backend (`local`; `kubernetes` comes later)."
    )
    sandbox_isolation: Literal["bwrap", "none"] = Field(
        default="bwrap", description="`bwrap`, or `none` to run harnesses without isolation."
    )
    sandbox_python: Path = Field(
        default=Path("/usr/bin/python3"),
        description="Python 3.11+ under /usr that runs the harness inside sandboxes.",
    )
    sandbox_uid_base: int = Field(
        default=1_500_000,
        description="First host uid for sandboxes when the server runs as root.",
    )
    sandbox_uid_count: int = Field(default=100_000, description="Size of the sandbox uid range.")
    sandbox_memory_bytes: int = Field(
        default=4096 * MIB, description="Address-space cap per sandbox process."
    )
    sandbox_cpu_seconds: int = Field(default=3600, description="CPU-time cap per process.")
    sandbox_max_processes: int = Field(default=512, description="Process cap per sandbox.")
    sandbox_file_bytes: int = Field(
        default=2048 * MIB, description="Largest file a sandbox may write."
    )
    sandbox_ready_timeout_s: float = Field(default=60.0, description="Wait for a new sandbox.")
    default_harness: str = Field(default="shell", description="Harness for sessions naming none.")
    output_line_cap_bytes: int = Field(
        default=1 * MIB, description="Longer stdout lines are stored truncated."
    )
    lease_seconds: float = Field(default=45.0, description="Output lease on an execution.")
    lease_renew_seconds: float = Field(default=10.0, description="Lease renewal interval.")
    recovery_scan_seconds: float = Field(default=15.0, description="Recovery scan interval.")
    sse_keepalive_seconds: float = Field(default=15.0, description="SSE keep-alive comment.")
    stream_requery_seconds: float = Field(default=5.0, description="Safety re-query of streams.")
    idle_pause_ms: int = Field(
        default=10 * 60 * 1000, description="Pause a sandbox this long after its turn ends."
    )
    max_duration_ms: int = Field(
        default=60 * 60 * 1000, description="Default cap on one execution's duration."
    )
    shutdown_drain_seconds: float = Field(default=20.0, description="Wait for running turns.")
    body_limit_bytes: int = Field(default=2 * MIB, description="Request body cap.")
    large_body_limit_bytes: int = Field(
        default=64 * MIB, description="Request body cap for messages and execute."
    )
    log_level: str = Field(default="INFO", description="Log level of the server.")
    # Checked when the server loads it (chiron.credentials.encryption), not here: a settings
    # validation error would print the value it got.
    secrets_key: SecretStr | None = Field(
        default=None,
        description="Key encrypting secret values at rest (base64 of 32 bytes); "
        "generated into home/secrets.key (0600) when unset.",
    )
    egress_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma list of hosts every sandbox may reach (exact or *.one-label "
        "wildcards); granted secrets add their own hosts.",
    )
    egress_upstream_ca: Path | None = Field(
        default=None,
        description="Extra CA bundle (PEM) the egress proxy trusts upstream, added to the "
        "system bundle (private services, tests).",
    )
    egress_resolve: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Comma list of host=ip:port name overrides used by the egress proxy "
        "(split DNS, tests); overridden names may point at private addresses.",
    )

    model_provider: Literal["openai", "anthropic"] = Field(
        default="openai",
        description="Model API of the `chiron` harness: `openai` (any OpenAI-compatible Chat "
        "Completions API) or `anthropic` (Messages API).",
    )
    model_base_url: str | None = Field(
        default=None,
        description="Base URL of that API (https://api.openai.com/v1 or "
        "https://api.anthropic.com when unset); its host is reachable from model harnesses.",
    )
    model: str | None = Field(
        default=None, description="Default model name; sessions and executions may override it."
    )
    agent_max_steps: int = Field(
        default=50, ge=1, description="Model calls one `chiron` harness turn may make."
    )
    model_max_retries: int = Field(
        default=3, ge=0, description="Retries of a model request after a transient failure."
    )
    model_timeout_s: float = Field(
        default=120.0, gt=0, description="How long a harness waits for the model to answer."
    )
    harness_cli_dir: Path | None = Field(
        default=None,
        description="npm `node_modules` folder holding the codex and claude CLIs, mounted "
        "read-only into sandboxes; default: harness-clis/node_modules of the source checkout.",
    )
    overlay_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Colon list of overlay folders (SYSTEM_PROMPT.md, personas/<id>.md).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _default_home() / "chiron.toml"
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"CHIRON_LISTEN must be host:port, got {value!r}")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(
            ("sqlite+aiosqlite://", "postgresql+asyncpg://")
        ):
            raise ValueError(
                "CHIRON_DATABASE_URL must start with sqlite+aiosqlite:// or "
                f"postgresql+asyncpg://, got a URL with scheme {value.split(':', 1)[0]!r}"
            )
        return value

    @field_validator("model_base_url")
    @classmethod
    def _check_model_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"CHIRON_MODEL_BASE_URL must be an http(s) URL with a host, got {value!r}"
            )
        return value.rstrip("/")

    @field_validator("overlay_dirs", mode="before")
    @classmethod
    def _split_overlay_dirs(cls, value: object) -> object:
        if isinstance(value, str):
            return [Path(part) for part in value.split(":") if part.strip()]
        return value

    @field_validator("egress_allow", mode="before")
    @classmethod
    def _split_egress_allow(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("egress_allow")
    @classmethod
    def _check_egress_allow(cls, value: list[str]) -> list[str]:
        from chiron.credentials.errors import InvalidDeclaration
        from chiron.credentials.host_rules import normalize_host_pattern

        try:
            return sorted({normalize_host_pattern(h, "host") for h in value})
        except InvalidDeclaration as exc:
            raise ValueError(f"CHIRON_EGRESS_ALLOW: {exc.problem}") from None

    @field_validator("egress_resolve", mode="before")
    @classmethod
    def _split_egress_resolve(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        entries: dict[str, str] = {}
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            host, sep, target = part.partition("=")
            if not sep:
                raise ValueError(f"CHIRON_EGRESS_RESOLVE: {part!r} is not host=ip:port")
            entries[host.strip()] = target.strip()
        return entries

    @field_validator("egress_resolve")
    @classmethod
    def _check_egress_resolve(cls, value: dict[str, str]) -> dict[str, str]:
        import ipaddress

        from chiron.credentials.errors import InvalidDeclaration
        from chiron.credentials.host_rules import normalize_host_pattern

        checked = {}
        for raw_host, target in value.items():
            try:
                host = normalize_host_pattern(raw_host, "host")
            except InvalidDeclaration as exc:
                raise ValueError(f"CHIRON_EGRESS_RESOLVE: {exc.problem}") from None
            ip, sep, port = target.rpartition(":")
            try:
                ipaddress.ip_address(ip.removeprefix("[").removesuffix("]"))
                valid = bool(sep) and port.isdigit() and 0 < int(port) < 65536
            except ValueError:
                valid = False
            if host.startswith("*.") or not valid:
                raise ValueError(
                    f"CHIRON_EGRESS_RESOLVE: {raw_host}={target!r} must be host=ip:port "
                    "(one host name, an IP address and a port)"
                )
            checked[host] = target
        return checked

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.home / 'chiron.db'}"

    @property
    def listen_host(self) -> str:
        return self.listen.rpartition(":")[0]

    @property
    def listen_port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def sandboxes_dir(self) -> Path:
        return self.home / "sandboxes"

    @property
    def admin_key_file(self) -> Path:
        return self.home / "admin.key"


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment; a bad value raises naming the variable."""
    return Settings(**overrides)
