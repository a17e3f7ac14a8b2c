"""How the proxy uses a secret whose value is not placed into requests as it is.

A `ProxyConfig` maps such a secret's name to one of these (`ProxyConfig.methods`):

- `HmacSign`: the value is a key; matching requests get a signature header
  (`hmac_signer.py` says exactly what is signed);
- `AwsSign`: the value is an AWS secret access key; requests the sandbox signed with
  placeholder keys are signed again with SigV4, only for `regions` and `services`
  (`aws_resigner.py`);
- `OAuthClient`: the value is a client secret; the proxy mints access tokens from `token_url`
  (client credentials grant) and the secret's replace/inject transforms place the *token*,
  never the value (`oauth_tokens.py`).

Secrets without an entry are plain: their transforms place the value itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

HmacAlgorithm = Literal["sha1", "sha256", "sha512"]
SignatureEncoding = Literal["hex", "base64"]


@dataclass(frozen=True)
class HmacSign:
    """Sign matching requests into `header`, rendered through `formatter` (`{signature}`)."""

    header: str
    algorithm: HmacAlgorithm = "sha256"
    encoding: SignatureEncoding = "hex"
    formatter: str = "{signature}"


@dataclass(frozen=True)
class AwsSign:
    """Re-sign SigV4 requests as `access_key_id` for these regions and services only."""

    access_key_id: str
    regions: tuple[str, ...]
    services: tuple[str, ...]


@dataclass(frozen=True)
class OAuthClient:
    """Client credentials grant at `token_url` as `client_id` (the value is the secret)."""

    token_url: str
    client_id: str
    scopes: tuple[str, ...] = ()


SecretMethod = HmacSign | AwsSign | OAuthClient
