"""ImmichConfig: where the server is and how to authenticate, from the environment or a `.env` file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from attrs import field, frozen
from dotenv import dotenv_values

from ..errors import BadInput

URL_NAMES = ("IMMICH_INSTANCE_URL", "IMMICH_URL")  # the official CLI's name first, then the alias
KEY_NAME = "IMMICH_API_KEY"
TRUE_WORDS = {"1", "true", "yes", "on"}


@frozen
class ImmichConfig:
    url: str
    api_key: str = field(repr=False)  # never printed, logged or stored
    ca_bundle: str | None = None
    insecure_tls: bool = False

    @property
    def verify(self) -> bool | str:
        """What requests takes as `verify`: a CA bundle path, or False when explicitly opted out."""
        if self.insecure_tls:
            return False
        return self.ca_bundle or True

    @classmethod
    def from_env(
        cls, env_file: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> ImmichConfig:
        """Read the variables; the process environment wins over the file.

        `env_file` None means `./.env` if it exists; a named file must exist.
        """
        environ = os.environ if environ is None else environ
        if env_file is None:
            path = Path.cwd() / ".env"
            values = dotenv_values(path) if path.is_file() else {}
        else:
            path = Path(env_file)
            if not path.is_file():
                raise BadInput(f"the env file {path} does not exist")
            values = dotenv_values(path)
        merged = {**{k: v for k, v in values.items() if v is not None}, **environ}

        def get(name: str) -> str:
            return (merged.get(name) or "").strip()

        url = next((get(name) for name in URL_NAMES if get(name)), "")
        if not url:
            raise BadInput(
                f"IMMICH_INSTANCE_URL is not set (nor IMMICH_URL): set it in the environment or in {path.resolve()}"
            )
        if not url.lower().startswith(("http://", "https://")):
            raise BadInput(f"IMMICH_INSTANCE_URL must start with http:// or https:// (got {url!r})")
        key = get(KEY_NAME)
        if not key:
            raise BadInput(f"{KEY_NAME} is not set: set it in the environment or in {path.resolve()}")
        ca_bundle = get("IMMICH_CA_BUNDLE") or None
        if ca_bundle and not Path(ca_bundle).is_file():
            raise BadInput(f"IMMICH_CA_BUNDLE names {ca_bundle}, which is not a file")
        return cls(
            url=url, api_key=key, ca_bundle=ca_bundle, insecure_tls=get("IMMICH_INSECURE_TLS").lower() in TRUE_WORDS
        )
