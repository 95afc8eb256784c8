"""Threat "the CLI gate" (issue 16 item 4, issue 21 item 2; row and id proposed to the lead):
``stella attest verify`` and the provider run one per-image pipeline
(``imagecheck.verify_image``) and give the same verdict on the same image, with the same
``stellaops.yaml``: imported attestations (issue 21 item 2; ``--no-store`` leaves them out), every
platform of an index, the same limits. The CLI's exit code applies the every-platform rule of
CONTRACTS.md: an index passes on its own attestation of ``--type``, or when each platform has
one of its own; an unattested platform fails it (issue 16 item 4).

Real loopback registry (ocireg), real SQLite store, the provider's Engine as the app builds it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from stellaops.cli import cli
from stellaops.config import load_config
from stellaops.engine import Engine
from stellaops.registry import OCI_INDEX, OCI_MANIFEST
from stellaops.store import open_store
from tests.fixtures.images import _push_single, loopback_client
from tests.hardening._support import SCAN_TYPE, new_key, provider_config, push_att, sign_envelope, statement, write_public_key


class World:
    def __init__(self, registry: str, tmp: Path) -> None:
        self.registry, self.tmp = registry, tmp
        self.client = loopback_client()
        self.key = new_key()
        self.config = tmp / "stellaops.yaml"
        self.config.write_text(provider_config(tmp, {"release": write_public_key(self.key, tmp / "release.pub")}))
        self.n = 0

    def repo(self) -> str:
        self.n += 1
        return f"onepipe/img{self.n}"

    def image(self, repo: str, platform: str = "linux/amd64", *, attested: bool = False) -> tuple[str, int]:
        os_, _, arch = platform.partition("/")
        digest, size = _push_single(self.client, self.registry, repo, os_, arch)
        if attested:
            self.attest(repo, digest)
        return digest, size

    def attest(self, repo: str, digest: str) -> None:
        push_att(self.client, self.registry, repo, digest, [sign_envelope(statement(digest), [self.key])])

    def index(self, repo: str, entries: list[dict[str, Any]]) -> str:
        raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, separators=(",", ":")).encode()
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        self.client.put_manifest(self.registry, repo, digest, raw, OCI_INDEX)
        return digest

    def cli(self, image: str, *extra: str) -> tuple[int, dict[str, Any]]:
        res = CliRunner().invoke(
            cli, ["attest", "verify", image, "--config", str(self.config), "--type", SCAN_TYPE, "-o", "json", *extra],
            env={"STELLA_PROGRESS": None, "STELLAOPS_CONFIG": None},
        )  # fmt: skip
        return res.exit_code, json.loads(res.stdout)

    def provider(self, image: str) -> dict[str, Any]:
        config = load_config(str(self.config))
        store = open_store(config.store.dsn)
        engine = Engine(config, store=store)  # as create_app builds it: the configured client and store
        try:
            return engine.verify_batch([image]).verdicts[image].to_json()
        finally:
            engine.close()
            store.close()


def entry(digest: str, size: int, platform: str = "linux/amd64", **annotations: str) -> dict[str, Any]:
    os_, _, arch = platform.partition("/")
    e: dict[str, Any] = {"mediaType": OCI_MANIFEST, "size": size, "digest": digest, "platform": {"os": os_, "architecture": arch}}
    if annotations:
        e["annotations"] = dict(annotations)
    return e


@pytest.fixture(scope="module")
def world(ocireg: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(ocireg, tmp_path_factory.mktemp("onepipe"))
    try:
        yield w
    finally:
        w.client.close()


def _essence(doc: dict[str, Any]) -> dict[str, Any]:
    """What a decision reads: the digest, every platform, each attestation's outcome per digest."""
    atts = sorted(
        (a["digest"], a["verified"], a["predicateType"], a["source"], tuple(e["reason"] for e in a["errors"])) for a in doc["attestations"]
    )
    return {"digest": doc["digest"], "platforms": doc["platforms"], "platformDetails": doc["platformDetails"], "attestations": atts}


def _same(world: World, image: str, *extra: str) -> tuple[int, dict[str, Any]]:
    rc, out = world.cli(image, *extra)
    assert _essence(out) == _essence(world.provider(image))
    return rc, out


def test_index_with_an_unattested_platform_fails_the_cli_as_the_provider_sees_it(world: World) -> None:
    repo = world.repo()
    g, e = world.image(repo, "linux/arm64", attested=True), world.image(repo)
    idx = world.index(repo, [entry(*g, "linux/arm64"), entry(*e)])
    rc, out = _same(world, f"{world.registry}/{repo}@{idx}")
    assert rc == 1 and out["verified"] is False and out["missingPlatforms"] == [e[0]]
    assert set(out["platforms"]) == {g[0], e[0]}


@pytest.mark.parametrize("how", ["annotated", "nested"])
def test_platform_hidden_from_the_old_discovery_fails_the_cli(world: World, how: str) -> None:
    repo = world.repo()
    g, e = world.image(repo, "linux/arm64", attested=True), world.image(repo)
    if how == "annotated":
        hidden = entry(*e, **{"vnd.docker.reference.type": "attestation-manifest"})
    else:
        inner = world.index(repo, [entry(*e)])
        hidden = {"mediaType": OCI_INDEX, "size": len(world.client.get_manifest(world.registry, repo, inner).raw), "digest": inner}
    idx = world.index(repo, [entry(*g, "linux/arm64"), hidden])
    rc, out = _same(world, f"{world.registry}/{repo}@{idx}")
    assert rc == 1 and e[0] in out["missingPlatforms"]


def test_index_over_the_platform_limit_is_refused_by_the_cli(world: World, tmp_path: Path) -> None:
    repo = world.repo()
    idx = world.index(repo, [entry(*world.image(repo, attested=True)) for _ in range(3)])
    cfg = tmp_path / "narrow.yaml"
    cfg.write_text(world.config.read_text() + "limits: {platformManifests: 2}\n")
    res = CliRunner().invoke(cli, ["attest", "verify", f"{world.registry}/{repo}@{idx}", "--config", str(cfg), "--type", SCAN_TYPE])
    assert res.exit_code != 0 and "limits.platformManifests" in res.output + res.stderr + str(res.exception)


def test_index_with_every_platform_attested_passes(world: World) -> None:
    repo = world.repo()
    a, b = world.image(repo, "linux/arm64", attested=True), world.image(repo, attested=True)
    idx = world.index(repo, [entry(*a, "linux/arm64"), entry(*b)])
    rc, out = _same(world, f"{world.registry}/{repo}@{idx}")
    assert rc == 0 and out["verified"] is True and out["missingPlatforms"] == []


def test_index_attested_itself_passes(world: World) -> None:
    repo = world.repo()
    a, b = world.image(repo, "linux/arm64"), world.image(repo)
    idx = world.index(repo, [entry(*a, "linux/arm64"), entry(*b)])
    world.attest(repo, idx)
    rc, out = _same(world, f"{world.registry}/{repo}@{idx}")
    assert rc == 0 and out["verified"] is True


def test_imported_attestation_verifies_in_the_cli_as_in_the_provider(world: World) -> None:
    repo = world.repo()
    digest, _ = world.image(repo)
    image = f"{world.registry}/{repo}@{digest}"
    rc, _ = world.cli(image)
    assert rc == 1  # nothing attached, nothing imported yet
    envelope = world.tmp / f"{repo.replace('/', '-')}.json"
    envelope.write_bytes(sign_envelope(statement(digest), [world.key]) + b"\n")
    res = CliRunner().invoke(cli, ["attest", "import", "--envelope", str(envelope), image, "--tenant", "acme", "--config", str(world.config)])
    assert res.exit_code == 0, res.output
    rc, out = _same(world, image)
    assert rc == 0 and [(a["source"], a["verified"]) for a in out["attestations"]] == [("imported", True)]
    # --no-store: the CLI leaves the store out (the provider always reads it)
    rc, out = world.cli(image, "--no-store")
    assert rc == 1 and out["attestations"] == []


def test_cli_does_not_create_a_default_store(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = world.repo()
    digest, _ = world.image(repo, attested=True)
    cfg = tmp_path / "nostore.yaml"
    cfg.write_text("\n".join(line for line in world.config.read_text().splitlines() if not line.startswith("store:")) + "\n")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    res = CliRunner().invoke(cli, ["attest", "verify", f"{world.registry}/{repo}@{digest}", "--config", str(cfg), "--type", SCAN_TYPE])
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "xdg").exists()


@pytest.mark.parametrize("command", ["verify", "verify-blob-attestation"])
def test_github_trust_flags_are_wired_into_both_verify_commands(world: World, command: str) -> None:
    # the flags reach apply_trust_flags: with only a key authority there is nothing to pin
    repo = world.repo()
    digest, _ = world.image(repo, attested=True)
    target = [f"{world.registry}/{repo}@{digest}"] if command == "verify" else ["--digest", digest, "--signature", str(world.config)]
    res = CliRunner().invoke(
        cli, ["attest", command, *target, "--key", str(world.tmp / "release.pub"), "--insecure-ignore-tlog",
              "--certificate-github-workflow-ref", "refs/heads/main"],
    )  # fmt: skip
    text = res.output + res.stderr + str(res.exception)
    assert res.exit_code != 0 and "--certificate-github-workflow-ref" in text and "no keyless authority" in text, text
