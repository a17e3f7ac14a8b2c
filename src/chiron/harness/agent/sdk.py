"""Loading the provider modules, which import the model SDKs, from `CHIRON_SDK_PATH`.

The harness runs with `-S`, so site-packages is not on `sys.path`; inside a sandbox the SDKs
live in a read-only mount named by `CHIRON_SDK_PATH`, which goes first on `sys.path` before any
SDK import.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from types import ModuleType

from chiron.harness.agent.model_api import Provider

PROVIDER_MODULES = {
    "openai": ("chiron.harness.agent.openai_chat", "OpenAIChatProvider"),
    "anthropic": ("chiron.harness.agent.anthropic_messages", "AnthropicMessagesProvider"),
}
_path_lock = threading.Lock()


class SdkUnavailable(Exception):
    """The SDK for a provider cannot be imported; the message says from where."""


def _add_sdk_path() -> None:
    path = os.environ.get("CHIRON_SDK_PATH")
    with _path_lock:
        if path and path not in sys.path:
            sys.path.insert(0, path)


def provider_module(provider: str) -> ModuleType:
    _add_sdk_path()
    module_name, _ = PROVIDER_MODULES[provider]
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        where = os.environ.get("CHIRON_SDK_PATH") or "sys.path (CHIRON_SDK_PATH is not set)"
        raise SdkUnavailable(f"cannot load the {provider} SDK from {where}: {exc}") from exc


def make_provider(provider: str, *, base_url: str, api_key: str, timeout_s: float) -> Provider:
    module = provider_module(provider)
    factory = getattr(module, PROVIDER_MODULES[provider][1])
    made: Provider = factory(base_url=base_url, api_key=api_key, timeout_s=timeout_s)
    return made
