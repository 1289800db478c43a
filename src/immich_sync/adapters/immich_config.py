"""ImmichConfig: where the server is and how to authenticate.

Each value is taken from the first place that has it (README "Configuration"):
- the URL: `--url`, the environment, the `.env` file, the official CLI's login file;
- the key: the environment (`IMMICH_API_KEY`, then a file named by `IMMICH_API_KEY_FILE`), the
  `.env` file (the same two), the login file. Never a command-line option: other users of the
  machine can read a process's arguments.

The login file is the one `immich login` writes: `auth.yml` in `$IMMICH_CONFIG_DIR`, else
`$XDG_CONFIG_HOME/immich`, else `~/.config/immich` (`url:` and `key:`; older CLIs wrote
`instanceUrl:` and `apiKey:`). Its key is used only with its own URL."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from attrs import field, frozen
from dotenv import dotenv_values

from ..errors import BadInput

URL_NAMES = ("IMMICH_INSTANCE_URL", "IMMICH_URL")  # the official CLI's name first, then the alias
KEY_NAME = "IMMICH_API_KEY"
KEY_FILE_NAME = "IMMICH_API_KEY_FILE"
TRUE_WORDS = {"1", "true", "yes", "on"}


@frozen
class ImmichConfig:
    url: str
    api_key: str = field(repr=False)  # never printed, logged or stored
    ca_bundle: str | None = None
    insecure_tls: bool = False
    url_source: str = ""  # where each came from, for -v: "--url", "the environment", a file's path
    key_source: str = ""

    @property
    def verify(self) -> bool | str:
        """What requests takes as `verify`: a CA bundle path, or False when explicitly opted out."""
        if self.insecure_tls:
            return False
        return self.ca_bundle or True

    @classmethod
    def from_env(
        cls,
        env_file: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        url: str | None = None,
        insecure: bool = False,
    ) -> ImmichConfig:
        """Read the settings (see the module's text for the order).

        `env_file` None means `./.env` if it exists; a named file must exist. `url` is `--url`;
        `insecure` is `--insecure` (the same as IMMICH_INSECURE_TLS=1)."""
        environ = os.environ if environ is None else environ
        if env_file is None:
            path = Path.cwd() / ".env"
            values = dotenv_values(path) if path.is_file() else {}
        else:
            path = Path(env_file)
            if not path.is_file():
                raise BadInput(f"the env file {path} does not exist")
            values = dotenv_values(path)
        levels = [
            ("the environment", {k: v.strip() for k, v in environ.items() if v and v.strip()}),
            (str(path.resolve()), {k: v.strip() for k, v in values.items() if v and v.strip()}),
        ]

        def first(name: str) -> tuple[str, str] | None:
            for where, found in levels:
                if name in found:
                    return found[name], where
            return None

        login_path = login_file(environ)
        login = read_login_file(login_path) if login_path.is_file() else None

        chosen = (url.strip(), "--url") if url and url.strip() else None
        for name in URL_NAMES:
            if chosen is None and (hit := first(name)):
                chosen = (hit[0], f"{name} in {hit[1]}")
        if chosen is None and login is not None:
            chosen = (login[0], str(login_path))
        if chosen is None:
            raise BadInput(
                f"IMMICH_INSTANCE_URL is not set (nor IMMICH_URL): give --url, set it in the environment or in "
                f"{path.resolve()}, or log in with the official CLI (immich login), which writes {login_path}"
            )
        server, url_source = chosen
        if not server.lower().startswith(("http://", "https://")):
            raise BadInput(f"IMMICH_INSTANCE_URL must start with http:// or https:// (got {server!r})")

        key_hit: tuple[str, str] | None = None
        for where, found in levels:
            if KEY_NAME in found:
                key_hit = (found[KEY_NAME], f"{KEY_NAME} in {where}")
            elif KEY_FILE_NAME in found:
                key_hit = (_read_key_file(found[KEY_FILE_NAME], where), found[KEY_FILE_NAME])
            if key_hit:
                break
        if key_hit is None and login is not None:
            if same_server(login[0], server):
                key_hit = (login[1], str(login_path))
            else:
                raise BadInput(
                    f"{KEY_NAME} is not set, and the login file {login_path} holds a key for another server "
                    f"({login[0]}, not {server}): set {KEY_NAME} or {KEY_FILE_NAME}"
                )
        if key_hit is None:
            raise BadInput(
                f"{KEY_NAME} is not set: set it (or {KEY_FILE_NAME}, a file that holds it) in the environment or in "
                f"{path.resolve()}, or log in with the official CLI (immich login)"
            )
        key, key_source = key_hit
        bundle_hit = first("IMMICH_CA_BUNDLE")
        ca_bundle = bundle_hit[0] if bundle_hit else None
        if ca_bundle and not Path(ca_bundle).is_file():
            raise BadInput(f"IMMICH_CA_BUNDLE names {ca_bundle}, which is not a file")
        insecure_hit = first("IMMICH_INSECURE_TLS")
        return cls(
            url=server,
            api_key=key,
            ca_bundle=ca_bundle,
            insecure_tls=insecure or bool(insecure_hit and insecure_hit[0].lower() in TRUE_WORDS),
            url_source=url_source,
            key_source=key_source,
        )


def login_file(environ: Mapping[str, str]) -> Path:
    """Where the official CLI keeps its login: `$IMMICH_CONFIG_DIR/auth.yml`, else under
    `$XDG_CONFIG_HOME/immich`, else `~/.config/immich`."""
    if environ.get("IMMICH_CONFIG_DIR"):
        return Path(environ["IMMICH_CONFIG_DIR"]).expanduser() / "auth.yml"
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".config")
    return Path(base) / "immich" / "auth.yml"


def read_login_file(path: Path) -> tuple[str, str] | None:
    """The URL and key of a login file, or None when it holds neither (a logged-out CLI). A file
    that is not YAML of that shape is refused, naming it."""
    try:
        doc: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BadInput(f"cannot read the Immich CLI's login file {path}: {type(exc).__name__}") from None
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise BadInput(f"the Immich CLI's login file {path} does not hold url: and key:")
    url, key = doc.get("url") or doc.get("instanceUrl"), doc.get("key") or doc.get("apiKey")
    if not url and not key:
        return None
    if not isinstance(url, str) or not isinstance(key, str) or not url.strip() or not key.strip():
        raise BadInput(f"the Immich CLI's login file {path} does not hold both url: and key:")
    return url.strip(), key.strip()


def _read_key_file(name: str, where: str) -> str:
    try:
        key = Path(name).expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise BadInput(f"{KEY_FILE_NAME} (in {where}) names {name}, which cannot be read: {reason}") from None
    if not key:
        raise BadInput(f"{KEY_FILE_NAME} (in {where}) names {name}, which is empty")
    return key


def same_server(a: str, b: str) -> bool:
    """The same server however its URL is spelled: case of scheme and host, a trailing / or /api."""

    def norm(url: str) -> str:
        url = url.strip().rstrip("/")
        if url.lower().endswith("/api"):
            url = url[:-4]
        scheme, _, rest = url.partition("://")
        host, slash, tail = rest.partition("/")
        return f"{scheme.lower()}://{host.lower()}{slash}{tail}"

    return norm(a) == norm(b)
