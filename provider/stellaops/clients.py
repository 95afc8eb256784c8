"""Builds the registry client for a configuration (provider and CLI share this one place).

Kept free of the provider's heavier imports (Flask, prometheus-client) so that CLI commands
that only talk to a registry start quickly.
"""

from __future__ import annotations

from typing import Any

from .config import Config


def make_registry_client(config: Config, *, for_cli: bool = False) -> Any:
    """The registry client for this configuration.

    The provider honours ``registries.allowPrivate`` and uses only the configured docker
    config. The CLI (``for_cli``), like docker and cosign on a workstation, may reach loopback
    and private registries (plain HTTP for localhost/127.0.0.0/8) and falls back to
    ``~/.docker/config.json`` for credentials.
    """
    from .registry import RegistryClient, RegistryLimits, RegistryPolicy
    from .registry_auth import DockerConfig

    reg = config.registries
    lim = config.limits
    policy = RegistryPolicy(
        allow=reg.allow, insecure=reg.insecure, allow_private=True if for_cli else reg.allow_private, plain_http_loopback=True
    )
    limits = RegistryLimits(
        manifest_bytes=lim.manifest_bytes,
        blob_bytes=min(lim.blob_bytes, lim.envelope_bytes),  # the only blobs read are attestations
        referrers=lim.referrers,
        platform_manifests=lim.platform_manifests,
        connect_timeout=lim.connect_timeout_seconds,
        read_timeout=lim.read_timeout_seconds,
        retries=lim.retries,
    )
    if reg.docker_config or for_cli:
        auth: Any = DockerConfig(reg.docker_config or None)
    else:
        auth = None
    observer = None
    if not for_cli:
        from .metrics import observe_registry_call as observer

    return RegistryClient(policy=policy, limits=limits, auth=auth, observer=observer)
