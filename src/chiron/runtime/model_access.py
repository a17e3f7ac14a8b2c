"""What a model harness's sandbox gets to reach its model API (DESIGN.md §7, §8).

The operator configures the endpoint once (`CHIRON_MODEL_PROVIDER`, `CHIRON_MODEL_BASE_URL`,
`CHIRON_MODEL`) and stores the key as an ordinary secret named after the provider
(`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`). Sandboxes of model harnesses (`chiron`, `codex`,
`claudecode`) then get:

- network to the model hosts: the configured provider's always, the other provider's when its
  key secret exists (codex speaks OpenAI's API and claude Anthropic's, whatever the default);
- the key secrets as implicit grants below every real grant's priority, so the proxy adds the
  real key at the edge without a per-principal grant, and a principal's own grant wins;
- placeholders in the environment (`OPENAI_API_KEY=OPENAI_API_KEY`): the SDKs and CLIs insist on
  a key; the proxy swaps the placeholder (replace mode) or sets the header (inject mode);
- the endpoints and the harness limits as `CHIRON_*` variables, and read-only mounts of the
  Python model SDKs and the npm CLIs.
"""

from __future__ import annotations

import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import chiron
from chiron.credentials import ImplicitAccess
from chiron.harness.registry import MODEL_HARNESSES
from chiron.settings import Settings

DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
}
KEY_SECRETS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}

SDK_MOUNT = "/opt/chiron/site-packages"
# Named node_modules: node finds a package's dependencies by walking up to such a folder.
CLI_MOUNT = "/opt/chiron/clis/node_modules"


@dataclass(frozen=True)
class ModelAccess:
    provider: str
    base_urls: dict[str, str]
    env: dict[str, str]
    mounts: dict[str, Path] = field(default_factory=dict)

    def host_of(self, provider: str) -> str:
        host = urlsplit(self.base_urls[provider]).hostname
        assert host is not None  # checked by the settings
        return host

    def implicit_access(self) -> ImplicitAccess:
        return ImplicitAccess(
            hosts=(self.host_of(self.provider),),
            secrets=tuple(KEY_SECRETS[p] for p in sorted(self.base_urls)),
            hosts_with_secret={
                KEY_SECRETS[p]: self.host_of(p) for p in self.base_urls if p != self.provider
            },
        )


def default_cli_dir() -> Path | None:
    """`harness-clis/node_modules` next to the source tree, when Chiron runs from a checkout."""
    candidate = Path(chiron.__file__).resolve().parents[2] / "harness-clis" / "node_modules"
    return candidate if candidate.is_dir() else None


def sdk_dir() -> Path:
    """Where this server's `openai` and `anthropic` packages live."""
    return Path(sysconfig.get_paths()["purelib"])


def model_access(settings: Settings, harness: str, *, isolated: bool) -> ModelAccess | None:
    """The model endpoint setup of a sandbox running `harness`; None for model-free harnesses.

    `isolated`: the SDKs and CLIs are mounted (bwrap); otherwise the harness uses host paths.
    """
    if harness not in MODEL_HARNESSES:
        return None
    cli_dir = settings.harness_cli_dir or default_cli_dir()
    mounts = {SDK_MOUNT: sdk_dir()}
    if cli_dir is not None:
        mounts[CLI_MOUNT] = cli_dir
    sdk_path, cli_path = (SDK_MOUNT, CLI_MOUNT) if isolated else (str(sdk_dir()), str(cli_dir))
    base_urls = dict(DEFAULT_BASE_URLS)
    if settings.model_base_url is not None:
        base_urls[settings.model_provider] = settings.model_base_url
    env = {
        "CHIRON_MODEL_PROVIDER": settings.model_provider,
        "CHIRON_OPENAI_BASE_URL": base_urls["openai"],
        "CHIRON_ANTHROPIC_BASE_URL": base_urls["anthropic"],
        "CHIRON_AGENT_MAX_STEPS": str(settings.agent_max_steps),
        "CHIRON_MODEL_MAX_RETRIES": str(settings.model_max_retries),
        "CHIRON_MODEL_TIMEOUT_S": str(settings.model_timeout_s),
        "CHIRON_SDK_PATH": sdk_path,
        "CHIRON_CLI_BIN": f"{cli_path}/.bin",
        **{name: name for name in KEY_SECRETS.values()},
    }
    if settings.model is not None:
        env["CHIRON_MODEL"] = settings.model
    return ModelAccess(settings.model_provider, base_urls, env, mounts if isolated else {})
