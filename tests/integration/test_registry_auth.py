"""Auth against the real CNCF Distribution (Debian's docker-registry): htpasswd basic auth, and
token auth whose JWTs the registry itself checks against ``rootcertbundle``."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from stellaops.errors import RegistryError
from stellaops.reference import parse_reference
from stellaops.registry import RegistryClient, RegistryPolicy
from stellaops.registry_auth import Credentials, DockerConfig, StaticCredentials

from tests.fixtures.images import push_test_image
from tests.fixtures.registries import HTPASSWD_PASSWORD, HTPASSWD_USER, TokenRegistry


def _client(auth: object = None) -> RegistryClient:
    return RegistryClient(policy=RegistryPolicy(allow_private=True), auth=auth)  # type: ignore[arg-type]


def _docker_config(tmp_path: Path, registry: str, entry: dict[str, str]) -> DockerConfig:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {registry: entry}}))
    return DockerConfig(str(path))


def test_htpasswd_without_credentials_is_unauthorized(htpasswd_registry: str) -> None:
    with pytest.raises(RegistryError) as info:
        _client().get_manifest(htpasswd_registry, "app", "v1")
    assert info.value.reason == "UNAUTHORIZED"
    assert htpasswd_registry in info.value.detail
    assert "no username/password is configured" in info.value.detail


def test_htpasswd_with_wrong_password_is_unauthorized(htpasswd_registry: str) -> None:
    auth = StaticCredentials({htpasswd_registry: Credentials(HTPASSWD_USER, "not-the-password")})
    with pytest.raises(RegistryError) as info:
        _client(auth).get_manifest(htpasswd_registry, "app", "v1")
    assert info.value.reason == "UNAUTHORIZED"
    assert "the configured credentials were refused" in info.value.detail


def test_htpasswd_push_and_pull_with_docker_config(htpasswd_registry: str, tmp_path: Path) -> None:
    auth = _docker_config(
        tmp_path, htpasswd_registry, {"auth": base64.b64encode(f"{HTPASSWD_USER}:{HTPASSWD_PASSWORD}".encode()).decode()}
    )
    client = _client(auth)
    digest = push_test_image(htpasswd_registry, "team/app", "v1", client=client)
    desc = client.resolve(parse_reference(f"{htpasswd_registry}/team/app:v1"))
    assert desc.digest == digest
    # Missing tag on an authorised client: a precise 404, not an auth error.
    with pytest.raises(RegistryError) as info:
        client.get_manifest(htpasswd_registry, "team/app", "nope")
    assert info.value.reason == "MANIFEST_NOT_FOUND"


def test_token_auth_credentialed_push_and_pull(token_registry: TokenRegistry) -> None:
    auth = StaticCredentials({token_registry.address: Credentials(HTPASSWD_USER, HTPASSWD_PASSWORD)})
    client = _client(auth)
    digest = push_test_image(token_registry.address, "private/app", "v1", client=client)
    assert client.resolve(parse_reference(f"{token_registry.address}/private/app:v1")).digest == digest
    pushes = [r for r in token_registry.issuer.requests if "push" in r.get("scope", "")]
    assert pushes and all(r["user"] == HTPASSWD_USER for r in pushes)


def test_token_auth_anonymous_pull_of_public_repository(token_registry: TokenRegistry) -> None:
    writer = _client(StaticCredentials({token_registry.address: Credentials(HTPASSWD_USER, HTPASSWD_PASSWORD)}))
    digest = push_test_image(token_registry.address, "public/app", "v1", client=writer)
    anonymous = _client()
    assert anonymous.resolve(parse_reference(f"{token_registry.address}/public/app:v1")).digest == digest
    assert anonymous.get_manifest(token_registry.address, "public/app", digest).digest == digest


def test_token_auth_anonymous_pull_of_private_repository_is_unauthorized(token_registry: TokenRegistry) -> None:
    writer = _client(StaticCredentials({token_registry.address: Credentials(HTPASSWD_USER, HTPASSWD_PASSWORD)}))
    push_test_image(token_registry.address, "private/other", "v1", client=writer)
    with pytest.raises(RegistryError) as info:
        _client().get_manifest(token_registry.address, "private/other", "v1")
    assert info.value.reason == "UNAUTHORIZED"
    assert "private/other" in info.value.detail


def test_token_auth_wrong_password_is_refused_by_the_token_service(token_registry: TokenRegistry) -> None:
    client = _client(StaticCredentials({token_registry.address: Credentials(HTPASSWD_USER, "wrong")}))
    with pytest.raises(RegistryError) as info:
        client.get_manifest(token_registry.address, "private/app", "v1")
    assert info.value.reason == "UNAUTHORIZED"
    assert "token service" in info.value.detail


def test_token_auth_identity_token_uses_refresh_grant(token_registry: TokenRegistry, tmp_path: Path) -> None:
    refresh = next(iter(token_registry.issuer.refresh_tokens))
    auth = _docker_config(tmp_path, token_registry.address, {"identitytoken": refresh})
    client = _client(auth)
    digest = push_test_image(token_registry.address, "private/idtoken", "v1", client=client)
    assert client.resolve(parse_reference(f"{token_registry.address}/private/idtoken:v1")).digest == digest
    assert any(r.get("grant") == "refresh_token" for r in token_registry.issuer.requests)


def test_token_auth_bad_identity_token_is_unauthorized(token_registry: TokenRegistry) -> None:
    client = _client(StaticCredentials({token_registry.address: Credentials(identity_token="forged")}))
    with pytest.raises(RegistryError) as info:
        client.get_manifest(token_registry.address, "private/app", "v1")
    assert info.value.reason == "UNAUTHORIZED"


def test_token_is_cached_per_scope(token_registry: TokenRegistry) -> None:
    client = _client(StaticCredentials({token_registry.address: Credentials(HTPASSWD_USER, HTPASSWD_PASSWORD)}))
    push_test_image(token_registry.address, "private/cached", "v1", client=client)
    before = len(token_registry.issuer.requests)
    for _ in range(5):
        client.get_manifest(token_registry.address, "private/cached", "v1")
    pulls = token_registry.issuer.requests[before:]
    assert len(pulls) <= 1  # one token for repository:private/cached:pull, reused
