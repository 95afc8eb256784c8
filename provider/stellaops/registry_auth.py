"""Registry credentials: Docker ``config.json`` (and Kubernetes' mounted form), credential
helpers, and the parsing of ``WWW-Authenticate`` challenges.

Where credentials come from, in order (the way Docker and cosign look them up):

1. an explicit :class:`StaticCredentials` map given by the caller;
2. ``credHelpers[<registry>]`` → ``docker-credential-<name> get`` (when the helper exists);
3. ``auths[<registry>]``: ``auth`` (base64 ``user:password``), ``username``/``password``,
   ``identitytoken`` (an OAuth2 refresh token), ``registrytoken`` (a bearer token);
4. ``credsStore`` → ``docker-credential-<name> get``.

The Docker config may be ``~/.docker/config.json`` (or ``$DOCKER_CONFIG/config.json``), a
Kubernetes ``kubernetes.io/dockerconfigjson`` Secret mounted as a file (``.dockerconfigjson``,
same shape) or a directory holding one, or the old ``.dockercfg`` shape (the ``auths`` map at
the top level). Docker Hub is stored under ``https://index.docker.io/v1/``; keys may carry a
scheme or path, which are ignored when matching.

Hand-written: no maintained Python library reads Docker's credential store format and
helpers (docker-py does, but pulls in the whole Docker client).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .errors import ConfigError, RegistryError

DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")
_HELPER_TIMEOUT = 10.0


@dataclass(frozen=True)
class Credentials:
    """What to authenticate with. ``identity_token`` is an OAuth2 refresh token;
    ``registry_token`` a ready bearer token."""

    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""

    def __repr__(self) -> str:  # never print secrets
        return f"Credentials(username={self.username!r}, password={'***' if self.password else ''!r})"

    @property
    def has_basic(self) -> bool:
        return bool(self.username) and bool(self.password)


class CredentialSource(Protocol):
    def get(self, registry: str) -> Credentials | None:  # pragma: no cover - protocol
        ...


class Anonymous:
    """No credentials for any registry."""

    def get(self, registry: str) -> Credentials | None:
        return None


class StaticCredentials:
    """Credentials given directly, keyed by ``host[:port]``."""

    def __init__(self, creds: dict[str, Credentials]) -> None:
        self._creds = {_normalise_key(k): v for k, v in creds.items()}

    def get(self, registry: str) -> Credentials | None:
        for key in _candidate_keys(registry):
            if key in self._creds:
                return self._creds[key]
        return None


class ChainedCredentials:
    """The first source that knows the registry wins."""

    def __init__(self, *sources: CredentialSource) -> None:
        self._sources = sources

    def get(self, registry: str) -> Credentials | None:
        for source in self._sources:
            creds = source.get(registry)
            if creds is not None:
                return creds
        return None


def _normalise_key(key: str) -> str:
    """``https://host:port/v1/`` → ``host:port`` (lower-case)."""
    k = key.strip()
    if "://" in k:
        k = k.split("://", 1)[1]
    k = k.split("/", 1)[0]
    return k.lower()


def _candidate_keys(registry: str) -> list[str]:
    reg = registry.lower()
    if reg in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        return [_normalise_key(k) for k in DOCKER_HUB_KEYS]
    return [reg]


def default_docker_config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


class DockerConfig:
    """Credentials from a Docker ``config.json`` (or a mounted Kubernetes docker config).

    ``path`` may be a file or a directory holding ``config.json``, ``.dockerconfigjson`` or
    ``.dockercfg``. A missing default file means anonymous; a missing *named* file, or one
    that is not valid JSON, is a :class:`ConfigError` naming the file.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, helper_dir: str | None = None) -> None:
        explicit = path is not None
        p = Path(path) if path is not None else default_docker_config_path()
        if p.is_dir():
            for name in ("config.json", ".dockerconfigjson", ".dockercfg"):
                if (p / name).is_file():
                    p = p / name
                    break
            else:
                raise ConfigError(
                    f"docker config directory {str(p)!r} holds none of config.json, .dockerconfigjson, .dockercfg",
                    hint="mount the pull Secret's .dockerconfigjson there, or name the file itself",
                )
        self.path = p
        self._helper_dir = helper_dir
        self._auths: dict[str, dict[str, str]] = {}
        self._cred_helpers: dict[str, str] = {}
        self._creds_store = ""
        if not p.exists():
            if explicit:
                raise ConfigError(f"docker config {str(p)!r} does not exist", hint="check registries.auth.dockerConfig")
            return
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"docker config {str(p)!r} cannot be read as JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise ConfigError(f"docker config {str(p)!r} must be a JSON object")
        auths = doc.get("auths") if "auths" in doc else (doc if p.name == ".dockercfg" else {})
        if not isinstance(auths, dict):
            raise ConfigError(f"docker config {str(p)!r}: 'auths' must be an object")
        for key, entry in auths.items():
            if isinstance(entry, dict):
                self._auths[_normalise_key(key)] = {k: v for k, v in entry.items() if isinstance(v, str)}
        helpers = doc.get("credHelpers", {})
        if isinstance(helpers, dict):
            self._cred_helpers = {_normalise_key(k): v for k, v in helpers.items() if isinstance(v, str) and v}
        store = doc.get("credsStore", "")
        self._creds_store = store if isinstance(store, str) else ""

    def get(self, registry: str) -> Credentials | None:
        keys = _candidate_keys(registry)
        for key in keys:
            if key in self._cred_helpers:
                creds = self._from_helper(self._cred_helpers[key], registry)
                if creds is not None:
                    return creds
        for key in keys:
            if key in self._auths:
                creds = self._from_entry(self._auths[key], key)
                if creds is not None:
                    return creds
        if self._creds_store:
            return self._from_helper(self._creds_store, registry)
        return None

    def _from_entry(self, entry: dict[str, str], key: str) -> Credentials | None:
        username, password = entry.get("username", ""), entry.get("password", "")
        if entry.get("auth"):
            try:
                decoded = base64.b64decode(entry["auth"], validate=True).decode("utf-8")
            except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
                raise ConfigError(f"docker config {str(self.path)!r}: auths[{key!r}].auth is not base64 of user:password") from exc
            if ":" not in decoded:
                raise ConfigError(f"docker config {str(self.path)!r}: auths[{key!r}].auth has no ':' between user and password")
            username, password = decoded.split(":", 1)
        creds = Credentials(
            username=username,
            password=password,
            identity_token=entry.get("identitytoken", ""),
            registry_token=entry.get("registrytoken", ""),
        )
        if not (creds.has_basic or creds.identity_token or creds.registry_token):
            return None
        return creds

    def _from_helper(self, name: str, registry: str) -> Credentials | None:
        exe = shutil.which(f"docker-credential-{name}", path=self._helper_dir)
        if exe is None:
            return None  # Docker also just skips a configured helper that is not installed
        server = "https://index.docker.io/v1/" if registry in ("docker.io", "index.docker.io") else registry
        try:
            proc = subprocess.run(  # noqa: S603 - fixed argv, helper name from the config
                [exe, "get"], input=server.encode(), capture_output=True, timeout=_HELPER_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RegistryError(
                f"credential helper docker-credential-{name} failed for {registry}: {exc}", reason="UNAUTHORIZED"
            ) from exc
        if proc.returncode != 0:
            out = (proc.stdout or proc.stderr).decode(errors="replace").strip()
            if "credentials not found" in out.lower():
                return None
            raise RegistryError(
                f"credential helper docker-credential-{name} exited {proc.returncode} for {registry}: {out[:200]}",
                reason="UNAUTHORIZED",
                hint=f"run `echo {server} | docker-credential-{name} get` to see why",
            )
        try:
            doc = json.loads(proc.stdout)
            username, secret = doc["Username"], doc["Secret"]
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryError(
                f"credential helper docker-credential-{name} printed no {{Username, Secret}} JSON for {registry}",
                reason="UNAUTHORIZED",
            ) from exc
        if username == "<token>":
            return Credentials(identity_token=secret)
        return Credentials(username=username, password=secret)


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: scheme (lower-case) and its parameters."""

    scheme: str
    params: dict[str, str]


def parse_www_authenticate(header: str) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` (RFC 7235): ``Bearer realm="…",service="…",scope="…"``.

    Hand-written: requests and urllib3 have no parser for it. Quoted strings may contain
    commas and escaped quotes; several challenges may share one header.
    """
    challenges: list[Challenge] = []
    i, n = 0, len(header)
    current: Challenge | None = None
    while i < n:
        while i < n and header[i] in " ,\t":
            i += 1
        if i >= n:
            break
        start = i
        while i < n and header[i] not in " =,\t":
            i += 1
        token = header[start:i]
        if not token:  # a stray '=' with nothing before it: skip it
            i += 1
            continue
        j = i
        while j < n and header[j] in " \t":
            j += 1
        if j < n and header[j] == "=" and current is not None:
            i = j + 1
            while i < n and header[i] in " \t":
                i += 1
            if i < n and header[i] == '"':
                i += 1
                buf = []
                while i < n and header[i] != '"':
                    if header[i] == "\\" and i + 1 < n:
                        i += 1
                    buf.append(header[i])
                    i += 1
                i += 1
                value = "".join(buf)
            else:
                vstart = i
                while i < n and header[i] not in ",":
                    i += 1
                value = header[vstart:i].strip()
            current.params[token.lower()] = value
        else:
            current = Challenge(scheme=token.lower(), params={})
            challenges.append(current)
            i = j
    return challenges
