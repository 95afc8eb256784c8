"""T-L24 evidence that was not read must never let a decision through (issue 16 items 7, 8; the
attacker review's F3 and F3b).

F3: the registry holds a genuine clean scan from 10 h ago; the security team imports a newer,
genuine scan with a critical finding; ``scanthresholds`` denies. A registry writer then pushes
junk DSSE referrers sized so the registry's layers take all of
``limits.attestationBytesPerImage`` but 64 bytes. Discovery read the store only after the
registry, within what was left of that one budget: the imported scan was reported as a
verdict-level ``LIMIT_EXCEEDED``, the old scan decided, and the Pod was admitted. F3b: the same
by a Pod author who copies the image (same digest) and its public old envelope into a
repository of their own.

The rule (docs/discovery.md "Evidence that was not read"):

1. any cut of the registry's candidates (over ``limits.attestationBytesPerImage``,
   ``limits.attestationsPerImage``, ``limits.envelopeBytes``, ``limits.blobBytes``) refuses the
   key with a definitive per-key ``LIMIT_EXCEEDED`` error, so every policy denies (a registry
   writer can always make their own image undeployable);
2. the imported store has its own byte budget, so registry bytes never starve imports; rows
   the store leaves out because one tenant went over its share are a verdict error that names
   the tenant and never denies (one tenant cannot make another's image undeployable).

Real parts: a loopback registry (ocireg), the provider (``stella serve``), its SQLite store
(rows written as the import API writes them), the shipped policies from the pipeline bundle
through the real ``opa``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from stellaops.registry import OCI_EMPTY, OCI_MANIFEST
from stellaops.store import open_store
from tests.fixtures.images import loopback_client, push_test_image
from tests.fixtures.provider import ProviderProcess, start_provider
from tests.hardening._support import (
    DSSE_MEDIA_TYPE,
    SCAN_TYPE,
    assert_provider_response,
    new_key,
    provider_config,
    provider_request,
    push_att,
    push_dsse_referrer,
    sign_envelope,
    statement,
    write_public_key,
)
from tests.hardening.test_index_policies import CASES, IndexWorld, violations

KiB = 1024
IMAGE_BUDGET = 1024 * KiB  # limits.attestationBytesPerImage in this test
ENVELOPE_BYTES = 256 * KiB
BLOB_BYTES = 512 * KiB
MANIFEST_BYTES = 64 * KiB
PER_IMAGE = 8  # limits.attestationsPerImage
LIMITS = (
    f"limits: {{attestationBytesPerImage: {IMAGE_BUDGET}, envelopeBytes: {ENVELOPE_BYTES}, "
    f"blobBytes: {BLOB_BYTES}, manifestBytes: {MANIFEST_BYTES}, attestationsPerImage: {PER_IMAGE}}}\n"
)
SCANTHRESHOLDS = ("stellaopsscanthresholds", {"requireTlog": False, "maxCounts": {"critical": 0}, "maxAgeHours": 48})


def _at(hours_ago: float) -> str:
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def scan(scan_id: str, hours_ago: float, criticals: int, pad: int = 0) -> dict[str, Any]:
    findings = [{"id": f"CVE-2026-{9000 + i}", "severity": "critical", "package": {"name": "openssl", "version": "3.0.1"}} for i in range(criticals)]
    pred: dict[str, Any] = {"scanner": {"name": "stellaops-scanner", "version": "2.4.0"}, "scanId": scan_id, "scannedAt": _at(hours_ago),
                            "findings": findings, "summary": {"critical": criticals, "high": 0, "medium": 0, "low": 0, "unknown": 0}}
    if pad:
        pred["notes"] = "n" * pad
    return pred


@dataclass
class CutWorld:
    provider: ProviderProcess
    registry: str
    images: dict[str, str] = field(default_factory=dict)
    public_key: Path | None = None

    def verdict(self, name: str) -> dict[str, Any]:
        """The provider's item for image ``name`` (value or error)."""
        key = self.images[name]
        req = urllib.request.Request(self.provider.url + "/gatekeeper/v1/verify", data=provider_request([key]),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            doc = json.load(resp)
        assert_provider_response(doc)
        assert doc["response"]["systemError"] == "", doc["response"]["systemError"]
        items = {i["key"]: i for i in doc["response"]["items"]}
        return items[key]

    def deny(self, name: str, tmp: Path, policy: tuple[str, dict[str, Any]] = SCANTHRESHOLDS) -> list[str]:
        w = IndexWorld(provider=self.provider, registry=self.registry)
        return violations(w, policy[0], self.images[name], policy[1], tmp)


@pytest.fixture(scope="module")
def world(ocireg: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CutWorld]:
    tmp = tmp_path_factory.mktemp("evidence-cut")
    release, stranger = new_key(), new_key()
    client = loopback_client()
    store = open_store(f"sqlite:///{tmp / 'store.db'}")  # the provider's store (provider_config's default DSN)
    images: dict[str, str] = {}

    def env(digest: str, pred: dict[str, Any], key: Any = release) -> bytes:
        return sign_envelope(statement(digest, predicate=pred, name=f"{ocireg}/app"), [key])

    def imported(tenant: str, digest: str, data: bytes) -> None:
        store.put(tenant, data, kind="dsse", subject_digests=[digest], predicate_type=SCAN_TYPE, image=None, annotations={})

    def manifest_size(repo: str, digest: str) -> int:
        return len(client.get_manifest(ocireg, repo, digest).raw)

    def junk_filling(repo: str, digest: str, used: int, *, over: bool = False, layer: int = 240 * KiB) -> None:
        """Junk DSSE referrers (each under limits.envelopeBytes) taking the image budget but 64
        bytes (or, ``over``, 64 bytes more than the budget)."""
        size = manifest_size(repo, digest)
        left = IMAGE_BUDGET - used + (64 if over else -64)
        i = 0
        while left > 0:
            n = min(layer, left)
            push_dsse_referrer(client, ocireg, repo, digest, size, (b"%d" % (i % 10)) * n)
            left -= n
            i += 1

    try:
        # control: a clean scan in the registry, nothing else
        digest = push_test_image(ocireg, "cut/control", "v1", client=client)
        push_att(client, ocireg, "cut/control", digest, [env(digest, scan("clean", 10, 0))])
        images["control"] = f"{ocireg}/cut/control@{digest}"

        # control: an imported critical scan denies (no junk)
        digest = push_test_image(ocireg, "cut/import-control", "v1", client=client)
        old = env(digest, scan("old-clean", 10, 0))
        push_att(client, ocireg, "cut/import-control", digest, [old])
        imported("team-a", digest, env(digest, scan("new-critical", 0, 1)))
        images["import-control"] = f"{ocireg}/cut/import-control@{digest}"

        # F3: junk referrers fill the registry budget but 64 bytes; the imported critical scan
        digest = push_test_image(ocireg, "cut/f3", "v1", client=client)
        old = env(digest, scan("old-clean", 10, 0))
        push_att(client, ocireg, "cut/f3", digest, [old])
        junk_filling("cut/f3", digest, len(old))
        imported("team-a", digest, env(digest, scan("new-critical", 0, 1)))
        images["f3"] = f"{ocireg}/cut/f3@{digest}"

        # F3b: a Pod author's own repository: the same digest, the public old envelope, junk
        victim = push_test_image(ocireg, "prod/victim", "v1", client=client)
        old = env(victim, scan("old-clean", 10, 0))
        push_att(client, ocireg, "prod/victim", victim, [old])
        imported("team-a", victim, env(victim, scan("new-critical", 0, 1)))
        images["victim"] = f"{ocireg}/prod/victim@{victim}"
        raw = client.get_manifest(ocireg, "prod/victim", victim)
        for layer in raw.layers + ([raw.config] if raw.config else []):
            client.put_blob(ocireg, "mallory/copy", client.get_blob(ocireg, "prod/victim", layer.digest))
        client.put_manifest(ocireg, "mallory/copy", "v1", raw.raw, raw.media_type)
        push_att(client, ocireg, "mallory/copy", victim, [old])
        junk_filling("mallory/copy", victim, len(old))
        images["f3b"] = f"{ocireg}/mallory/copy@{victim}"

        # registry junk over the budget: the registry's candidates are cut
        digest = push_test_image(ocireg, "cut/over-bytes", "v1", client=client)
        old = env(digest, scan("old-clean", 10, 0))
        push_att(client, ocireg, "cut/over-bytes", digest, [old])
        junk_filling("cut/over-bytes", digest, len(old), over=True)
        images["over-bytes"] = f"{ocireg}/cut/over-bytes@{digest}"

        # more registry attestations than limits.attestationsPerImage: the newest (critical,
        # in the .att tag, read after the referrers) would be cut
        digest = push_test_image(ocireg, "cut/over-count", "v1", client=client)
        size = manifest_size("cut/over-count", digest)
        push_dsse_referrer(client, ocireg, "cut/over-count", digest, size, env(digest, scan("old-clean", 10, 0)))
        for i in range(PER_IMAGE):
            push_dsse_referrer(client, ocireg, "cut/over-count", digest, size, b'{"junk":%d}' % i)
        push_att(client, ocireg, "cut/over-count", digest, [env(digest, scan("new-critical", 0, 1))])
        images["over-count"] = f"{ocireg}/cut/over-count@{digest}"

        # the newest (critical) registry scan over limits.envelopeBytes (under blobBytes; the
        # client reads at most the smaller of the two)
        digest = push_test_image(ocireg, "cut/over-envelope", "v1", client=client)
        push_att(client, ocireg, "cut/over-envelope", digest, [env(digest, scan("old-clean", 10, 0)), env(digest, scan("new-critical", 0, 1, pad=ENVELOPE_BYTES))])
        images["over-envelope"] = f"{ocireg}/cut/over-envelope@{digest}"

        # the newest (critical) registry scan in a referrer whose manifest is over limits.manifestBytes
        digest = push_test_image(ocireg, "cut/over-manifest", "v1", client=client)
        push_att(client, ocireg, "cut/over-manifest", digest, [env(digest, scan("old-clean", 10, 0))])
        crit = env(digest, scan("new-critical", 0, 1))
        empty, layer = client.put_blob(ocireg, "cut/over-manifest", b"{}"), client.put_blob(ocireg, "cut/over-manifest", crit)
        raw = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": DSSE_MEDIA_TYPE,
            "config": {"mediaType": OCI_EMPTY, "size": 2, "digest": empty},
            "layers": [{"mediaType": DSSE_MEDIA_TYPE, "size": len(crit), "digest": layer}],
            "subject": {"mediaType": OCI_MANIFEST, "size": manifest_size("cut/over-manifest", digest), "digest": digest},
            "annotations": {"note": "m" * MANIFEST_BYTES},
        }).encode()  # fmt: skip
        client.put_manifest(ocireg, "cut/over-manifest", "sha256:" + hashlib.sha256(raw).hexdigest(), raw, OCI_MANIFEST)
        images["over-manifest"] = f"{ocireg}/cut/over-manifest@{digest}"

        # an index [amd64, arm64], each platform with its own clean scan; junk on arm64 takes
        # the image's registry budget past its limit: the key (the index) is refused
        index = push_test_image(ocireg, "cut/index", "v1", platforms=["linux/amd64", "linux/arm64"], client=client)
        plats = [d.digest for d in client.get_manifest(ocireg, "cut/index", index).manifests]
        used = 0
        for p in plats:
            e = env(p, scan(f"clean-{p[7:15]}", 10, 0))
            push_att(client, ocireg, "cut/index", p, [e])
            used += len(e)
        junk_filling("cut/index", plats[1], used, over=True)
        images["index-over"] = f"{ocireg}/cut/index:v1"

        # a junk tenant over its share of the store's budget, beside another tenant's genuine
        # clean scan and the registry's clean scan: admitted, the junk tenant named
        digest = push_test_image(ocireg, "cut/junk-tenant", "v1", client=client)
        push_att(client, ocireg, "cut/junk-tenant", digest, [env(digest, scan("old-clean", 10, 0))])
        imported("team-a", digest, env(digest, scan("team-a-clean", 1, 0)))
        for i in range(12):
            imported("junk", digest, sign_envelope(statement(digest, predicate={"pad": "j" * (200 * KiB), "n": i}), [stranger]))
        images["junk-tenant"] = f"{ocireg}/cut/junk-tenant@{digest}"
    finally:
        client.close()
        store.close()
    pub = write_public_key(release, tmp / "release.pub")
    provider = start_provider(tmp / "provider", provider_config(tmp, {"release-key": pub}, extra=LIMITS, deadline=10))
    try:
        yield CutWorld(provider=provider, registry=ocireg, images=images, public_key=pub)
    finally:
        provider.stop()


def _verified(item: dict[str, Any]) -> list[tuple[str, str]]:
    return [(a["source"], a["predicateSummary"].get("scanId", "")) for a in item["value"]["attestations"] if a["verified"]]


def test_controls_an_image_under_the_limits_is_admitted_and_an_imported_critical_scan_denies(world: CutWorld, tmp_path: Path) -> None:
    item = world.verdict("control")
    assert item["error"] == "" and [s for s, _ in _verified(item)] == ["cosign-tag"], item
    assert world.deny("control", tmp_path) == []
    assert world.deny("import-control", tmp_path), "the imported critical scan must deny"


@pytest.mark.parametrize("name", ["f3", "f3b"])
def test_registry_bytes_cannot_starve_the_imported_store(world: CutWorld, name: str, tmp_path: Path) -> None:
    """The junk fits the registry's budget (64 bytes spare): the store has its own budget, so
    the imported critical scan is read, verified, and denies."""
    item = world.verdict(name)
    assert item["error"] == "", item
    assert ("imported", "") in [(s, "") for s, _ in _verified(item)], item["value"]
    assert not [e for e in item["value"]["errors"] if "store:" in e["message"] or "imported attestation" in e["message"]], item["value"]["errors"]
    msgs = world.deny(name, tmp_path)
    assert msgs and any("critical 1 (max 0)" in m for m in msgs), msgs


@pytest.mark.parametrize("name,limit", [
    ("over-bytes", "limits.attestationBytesPerImage"),
    ("over-count", "limits.attestationsPerImage"),
    ("over-envelope", "limits.envelopeBytes"),
    ("over-manifest", "limits.manifestBytes"),
    ("index-over", "limits.attestationBytesPerImage"),
])
def test_a_cut_of_the_registrys_attestations_refuses_the_key(world: CutWorld, name: str, limit: str, tmp_path: Path) -> None:
    item = world.verdict(name)
    assert item["value"] is None and item["error"], item
    assert "LIMIT_EXCEEDED" in item["error"] and limit in item["error"] and "not read" in item["error"], item["error"]
    assert "raise " + limit in item["error"], item["error"]  # the hint says how to raise it
    msgs = world.deny(name, tmp_path)
    assert msgs and all(world.images[name] in m for m in msgs), msgs


@pytest.mark.parametrize("policy", sorted(CASES))
def test_every_shipped_policy_denies_a_key_whose_registry_evidence_was_cut(world: CutWorld, policy: str, tmp_path: Path) -> None:
    package, parameters = CASES[policy]
    msgs = world.deny("over-bytes", tmp_path, (package, parameters))
    # the per-key error itself, not some other reason to deny
    assert msgs and all("refused image" in m and "LIMIT_EXCEEDED" in m and "attestationBytesPerImage" in m for m in msgs), msgs


def test_a_junk_tenant_over_its_share_does_not_deny_another_tenants_image(world: CutWorld, tmp_path: Path) -> None:
    item = world.verdict("junk-tenant")
    assert item["error"] == "", item
    verified = _verified(item)
    assert ("cosign-tag", "old-clean") in verified and ("imported", "team-a-clean") in verified, item["value"]["attestations"]
    named = [e for e in item["value"]["errors"] if e["reason"] == "LIMIT_EXCEEDED" and "'junk'" in e["message"]]
    assert named, item["value"]["errors"]
    assert not [e for e in item["value"]["errors"] if "'team-a'" in e["message"]], item["value"]["errors"]
    assert world.deny("junk-tenant", tmp_path) == []


@pytest.mark.parametrize("name,rc", [("over-envelope", "refused"), ("control", 0)])
def test_the_cli_gate_refuses_a_key_whose_registry_evidence_was_cut(world: CutWorld, name: str, rc: Any, tmp_path: Path) -> None:
    """``stella attest verify`` runs the same pipeline with the provider's limits: a cut fails it
    (before: exit 0 on the old clean scan, the newer critical one over envelopeBytes only a note)."""
    import os
    import subprocess
    import sys

    stella = str(Path(sys.executable).parent / "stella")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STELLAOPS_")}
    proc = subprocess.run([stella, "attest", "verify", world.images[name], "--key", str(world.public_key), "--insecure-ignore-tlog",
                           "--type", SCAN_TYPE, "--config", str(world.provider.config_path)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    if rc == 0:
        assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    else:
        assert proc.returncode != 0 and "LIMIT_EXCEEDED" in proc.stderr and "limits.envelopeBytes" in proc.stderr, (proc.returncode, proc.stderr[-2000:])


def test_a_junk_tenant_cannot_hide_another_tenants_second_newest_row(ocireg: str, tmp_path: Path) -> None:
    """team-a imported a critical scan, then something bigger (its newest row, 300 KiB); the
    junk tenant's newest row is just smaller than what is left of the store's budget after
    team-a's newest. Each tenant's share of the store's budget must hold that tenant's rows:
    team-a's critical scan must be read."""
    from stellaops.discovery import discover_all
    from stellaops.reference import parse_reference

    key, stranger = new_key(), new_key()
    client = loopback_client()
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        digest = push_test_image(ocireg, "cut/second-row", "v1", client=client)
        crit = sign_envelope(statement(digest, predicate=scan("new-critical", 0, 1)), [key])
        store.put("team-a", crit, kind="dsse", subject_digests=[digest], predicate_type=SCAN_TYPE, image=None, annotations={})
        big = sign_envelope(statement(digest, predicate={"pad": "s" * (225 * KiB)}), [key])
        store.put("team-a", big, kind="dsse", subject_digests=[digest], predicate_type=SCAN_TYPE, image=None, annotations={})
        junk = b'{"j":"' + b"j" * (IMAGE_BUDGET - len(big) - 100 - 8) + b'"}'
        store.put("junk", junk, kind="dsse", subject_digests=[digest], predicate_type=SCAN_TYPE, image=None, annotations={})
        found = discover_all(client, parse_reference(f"{ocireg}/cut/second-row@{digest}"), digest, store=store,
                             byte_budget=IMAGE_BUDGET, store_per_tenant=PER_IMAGE)
        assert len(big) < len(junk) and len(big) + len(junk) <= IMAGE_BUDGET < len(big) + len(junk) + len(crit)
        assert crit in [c.data for c in found.candidates], found.problems
    finally:
        store.close()
        client.close()
