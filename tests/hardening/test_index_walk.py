"""Threat "index entries that discovery skips" (issue 16 item 2; its row and id are proposed to
the lead, who assigns the number): index entries that discovery used to skip. An unattested linux/amd64 image E next to
an attested image G must never be admitted because discovery did not look at E:

(a) E annotated ``vnd.docker.reference.type: attestation-manifest`` but with a real platform,
(b) E behind a nested index, (c) E as entry 65 after 64 others (the old silent truncation).

go-containerregistry and containerd select E for linux/amd64 in all three. The rule
(CONTRACTS.md, docs/discovery.md): every entry a runtime could select is listed in the
verdict's ``platforms``; only ``unknown/unknown`` entries are skipped; nested indexes are
followed up to ``limits.indexDepth``; an index over ``limits.platformManifests`` entries or too
deep is refused for the key (definitive ``LIMIT_EXCEEDED``), never truncated.

Real registry (ocireg), real signing, the engine as the provider runs it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stellaops.config import parse_config
from stellaops.engine import Engine
from stellaops.errors import StellaError
from stellaops.registry import OCI_INDEX, OCI_MANIFEST, RegistryClient
from tests.fixtures.images import _push_single, loopback_client
from tests.hardening._support import new_key, provider_config, push_att, sign_envelope, statement, write_public_key

ATTESTATION_MANIFEST = {"vnd.docker.reference.type": "attestation-manifest"}


class World:
    def __init__(self, registry: str, client: RegistryClient, key: Any, tmp: Path) -> None:
        self.registry, self.client, self.key, self.tmp = registry, client, key, tmp
        self.n = 0

    def repo(self) -> str:
        self.n += 1
        return f"walk/img{self.n}"

    def image(self, repo: str, platform: str = "linux/amd64", *, attested: bool = False) -> tuple[str, int]:
        os_, _, arch = platform.partition("/")
        digest, size = _push_single(self.client, self.registry, repo, os_, arch)
        if attested:
            push_att(self.client, self.registry, repo, digest, [sign_envelope(statement(digest), [self.key])])
        return digest, size

    def index(self, repo: str, entries: list[dict[str, Any]], tag: str | None = None) -> tuple[str, int]:
        raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, separators=(",", ":")).encode()
        import hashlib

        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        self.client.put_manifest(self.registry, repo, tag or digest, raw, OCI_INDEX)
        return digest, len(raw)

    def engine(self, extra: str = "") -> Engine:
        cfg = provider_config(self.tmp, {"release": write_public_key(self.key, self.tmp / "k.pub")}, extra=extra, store_dsn="sqlite:///:memory:")
        return Engine(parse_config(cfg, source="test"), client=loopback_client())


def entry(digest: str, size: int, platform: str | None = "linux/amd64", *, media_type: str = OCI_MANIFEST,
          annotations: dict[str, str] | None = None) -> dict[str, Any]:
    e: dict[str, Any] = {"mediaType": media_type, "size": size, "digest": digest}
    if platform is not None:
        os_, _, rest = platform.partition("/")
        arch, _, variant = rest.partition("/")
        e["platform"] = {"os": os_, "architecture": arch, **({"variant": variant} if variant else {})}
    if annotations:
        e["annotations"] = annotations
    return e


@pytest.fixture(scope="module")
def world(ocireg: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    client = loopback_client()
    try:
        yield World(ocireg, client, new_key(), tmp_path_factory.mktemp("walk"))
    finally:
        client.close()


def _verdict(world: World, repo: str, digest: str, extra: str = "") -> Any:
    engine = world.engine(extra)
    try:
        return engine.verify_key(f"{world.registry}/{repo}@{digest}")
    finally:
        engine.close()


def test_annotated_attestation_manifest_with_a_real_platform_is_a_platform(world: World) -> None:
    repo = world.repo()
    g = world.image(repo, attested=True)
    e = world.image(repo)
    idx, _ = world.index(repo, [entry(*g), entry(*e, annotations=ATTESTATION_MANIFEST)])
    v = _verdict(world, repo, idx)
    assert e[0] in v.platforms and g[0] in v.platforms
    assert {d["digest"]: d["platform"] for d in v.to_json()["platformDetails"]} == {g[0]: "linux/amd64", e[0]: "linux/amd64"}
    # E has no attestation of its own: nothing verified covers it
    assert not any(a.verified and a.digest == e[0] for a in v.attestations)


def test_unknown_unknown_entries_are_skipped(world: World) -> None:
    repo = world.repo()
    g = world.image(repo, attested=True)
    att = world.image(repo, "unknown/unknown")
    idx, _ = world.index(repo, [entry(*g), entry(*att, "unknown/unknown", annotations=ATTESTATION_MANIFEST)])
    v = _verdict(world, repo, idx)
    assert v.platforms == (g[0],)


def test_unknown_os_with_a_real_architecture_is_a_platform(world: World) -> None:
    repo = world.repo()
    g = world.image(repo, attested=True)
    odd = world.image(repo, "unknown/amd64")
    idx, _ = world.index(repo, [entry(*g), entry(*odd, "unknown/amd64")])
    assert odd[0] in _verdict(world, repo, idx).platforms


def test_entry_without_platform_is_a_platform(world: World) -> None:
    # containerd matches an entry that names no platform
    repo = world.repo()
    g = world.image(repo, attested=True)
    e = world.image(repo)
    idx, _ = world.index(repo, [entry(*g), entry(*e, None)])
    v = _verdict(world, repo, idx)
    assert e[0] in v.platforms
    assert {d["digest"]: d["platform"] for d in v.to_json()["platformDetails"]}[e[0]] == ""


def test_nested_index_leaves_are_platforms(world: World) -> None:
    repo = world.repo()
    g = world.image(repo, "linux/arm64", attested=True)
    e = world.image(repo, "linux/amd64")
    inner, inner_size = world.index(repo, [entry(*e)])
    idx, _ = world.index(repo, [entry(*g, "linux/arm64"), entry(inner, inner_size, None, media_type=OCI_INDEX)])
    v = _verdict(world, repo, idx)
    assert set(v.platforms) == {g[0], e[0]}
    details = {d["digest"]: d for d in v.to_json()["platformDetails"]}
    assert details[e[0]]["index"] == inner and details[g[0]]["index"] == idx
    assert inner not in v.platforms  # an index is not a platform: its leaves are


def test_nesting_within_index_depth_is_followed(world: World) -> None:
    repo = world.repo()
    e = world.image(repo)
    d1 = world.index(repo, [entry(*e)])
    d2 = world.index(repo, [entry(*d1, None, media_type=OCI_INDEX)])
    top, _ = world.index(repo, [entry(*d2, None, media_type=OCI_INDEX)])
    assert _verdict(world, repo, top, "limits: {indexDepth: 2}\n").platforms == (e[0],)


def test_nesting_deeper_than_index_depth_is_refused(world: World) -> None:
    repo = world.repo()
    e = world.image(repo)
    d1 = world.index(repo, [entry(*e)])
    d2 = world.index(repo, [entry(*d1, None, media_type=OCI_INDEX)])
    top, _ = world.index(repo, [entry(*d2, None, media_type=OCI_INDEX)])
    with pytest.raises(StellaError) as info:
        _verdict(world, repo, top, "limits: {indexDepth: 1}\n")
    assert info.value.reason == "LIMIT_EXCEEDED" and not info.value.transient
    assert "limits.indexDepth" in info.value.detail


def test_entry_65_after_64_others_is_not_dropped(world: World) -> None:
    repo = world.repo()
    e = world.image(repo)
    idx, _ = world.index(repo, [entry(*world.image(repo, attested=True)) for _ in range(64)] + [entry(*e)])
    # within the default limit (128) every entry, the 65th included, is a platform
    v = _verdict(world, repo, idx)
    assert len(v.platforms) == 65 and v.platforms[-1] == e[0]


def test_index_over_platform_manifests_is_refused_not_truncated(world: World) -> None:
    repo = world.repo()
    entries = [entry(*world.image(repo, attested=True)) for _ in range(5)]
    idx, _ = world.index(repo, entries)
    assert len(_verdict(world, repo, idx, "limits: {platformManifests: 5}\n").platforms) == 5
    e = world.image(repo)
    idx2, _ = world.index(repo, [*entries, entry(*e)])
    with pytest.raises(StellaError) as info:
        _verdict(world, repo, idx2, "limits: {platformManifests: 5}\n")
    assert info.value.reason == "LIMIT_EXCEEDED" and not info.value.transient
    assert "limits.platformManifests" in info.value.detail


def test_nested_leaves_count_against_platform_manifests(world: World) -> None:
    repo = world.repo()
    leaves = [entry(*world.image(repo)) for _ in range(3)]
    a = world.index(repo, leaves[:2])
    b = world.index(repo, leaves[2:])
    top, _ = world.index(repo, [entry(*a, None, media_type=OCI_INDEX), entry(*b, None, media_type=OCI_INDEX)])
    with pytest.raises(StellaError) as info:
        _verdict(world, repo, top, "limits: {platformManifests: 3}\n")
    assert info.value.reason == "LIMIT_EXCEEDED"


def test_entry_of_an_unknown_media_type_is_refused(world: World) -> None:
    repo = world.repo()
    g = world.image(repo, attested=True)
    e = world.image(repo)
    idx, _ = world.index(repo, [entry(*g), entry(*e, media_type="application/vnd.example.thing+json")])
    with pytest.raises(StellaError) as info:
        _verdict(world, repo, idx)
    assert not info.value.transient and "application/vnd.example.thing+json" in info.value.detail


def test_entry_claiming_index_but_holding_a_manifest_is_refused(world: World) -> None:
    repo = world.repo()
    g = world.image(repo, attested=True)
    e = world.image(repo)
    idx, _ = world.index(repo, [entry(*g), entry(*e, None, media_type=OCI_INDEX)])
    with pytest.raises(StellaError) as info:
        _verdict(world, repo, idx)
    assert not info.value.transient


def test_missing_nested_index_refuses_the_key(world: World) -> None:
    repo = world.repo()
    g = world.image(repo, attested=True)
    inner = world.index(repo, [entry(*world.image(repo))])
    idx, _ = world.index(repo, [entry(*g), entry(*inner, None, media_type=OCI_INDEX)])
    # the nested index disappears after the top index was pushed (registries validate children on push)
    resp = world.client.request("DELETE", world.registry, f"/v2/{repo}/manifests/{inner[0]}", repository=repo, push=True)
    assert resp.status_code in (200, 202), resp.status_code
    with pytest.raises(StellaError) as info:
        _verdict(world, repo, idx)
    assert info.value.reason == "MANIFEST_NOT_FOUND" and not info.value.transient


def test_platform_strings_from_the_registry_are_bounded(world: World) -> None:
    repo = world.repo()
    e = world.image(repo)
    weird = entry(*e)
    weird["platform"] = {"os": "linux" + "x" * 5000, "architecture": "amd64\n<script>", "variant": "v8"}
    idx, _ = world.index(repo, [weird])
    details = _verdict(world, repo, idx).to_json()["platformDetails"]
    assert len(details[0]["platform"]) <= 100 and "\n" not in details[0]["platform"]


def test_single_platform_image_has_no_platforms(world: World) -> None:
    repo = world.repo()
    g = world.image(repo, attested=True)
    v = _verdict(world, repo, g[0])
    assert v.platforms == () and v.to_json()["platformDetails"] == [] and v.attestations[0].verified
