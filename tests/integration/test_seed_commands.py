"""The seed guide's command lines (cosign interoperability guide), run as written.

Each block below is copied from the seed exactly (comments and line continuations included) and
run by ``bash`` in a working directory holding ``./stellaops.yaml``, with only the host
``registry.example.com`` replaced by a fresh local registry (ocireg, with the referrers API)
(DESIGN §8). Where a block also names a placeholder that cannot exist here, the test says which
one it replaces (the provider's URL for ``https://stellaops.example.com``, a real key file for
``/path/to/public-key.pem``, real files for the ``/etc/stellaops/…`` paths of the yaml snippets).

Not run here, and why (docs/cosign-interop.md says the same):
- the keyless and ``--rekor-url`` cosign blocks need the public-good Fulcio/Rekor (internet);
  keyless verification against an offline test Sigstore is in ``test_verify_cosign_keyless.py``
  and ``test_verify_cli_registry.py``;
- the Rego and Kyverno snippets: ``tests/integration/test_rego_seed.py`` and
  ``test_rego_kyverno.py``.

Every process gets a loopback egress trap as its HTTP(S) proxy (see test_interop_matrix.py).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from stellaops.reference import cosign_attestation_tag
from stellaops.store import open_store

from tests.fixtures.images import loopback_client, push_test_image
from tests.fixtures.registries import _stop, start_ocireg
from tests.fixtures.sigstore import TestSigstore, pem
from tests.fixtures.tools import TOOLS_BIN, tool
from tests.integration.test_interop_matrix import EgressTrap, egress_trap  # noqa: F401 - the fixture

pytestmark = pytest.mark.cosign

PASSWORD = "seed-pw"
TOKEN = "acme-seed-import-token-7d1e0c55a9b24f36"
SCAN = "stellaops.io/predicates/scan-result@v1"
SLSA02 = "https://slsa.dev/provenance/v0.2"
SLSA1 = "https://slsa.dev/provenance/v1"

SCAN_PREDICATE = {
    "scanner": {"name": "stellaops-scanner", "version": "1.0"},
    "scanId": "scan-1",
    "scannedAt": "2026-11-25T10:00:00Z",
    "findings": [{"id": "CVE-2026-0001", "severity": "high", "package": {"name": "openssl", "version": "3.0.1"}}],
    "summary": {"critical": 0, "high": 1, "medium": 0, "low": 0, "unknown": 0},
}

# -- the seed's blocks, verbatim ---------------------------------------------------------------------
SEED_CLI_IMPORT = """\
# Fetch cosign attestation and import to StellaOps
cosign download attestation registry.example.com/app:v1.0.0 > attestation.json
# Import into StellaOps
stella attest import \\
  --envelope attestation.json \\
  --image registry.example.com/app:v1.0.0
"""

SEED_API_IMPORT = """\
curl -X POST https://stellaops.example.com/api/v1/attestations/import \\
  -H "Content-Type: application/json" \\
  -d @attestation.json
"""

SEED_ATTACH = """\
# Stella CLI with custom annotations
stella attest attach \\
  --image registry.example.com/app:v1.0.0 \\
  --attestation scan.json \\
  --annotation "org.example/team=security" \\
  --annotation "org.example/policy-version=2.0"
"""

SEED_NO_ATTESTATIONS = """\
# List all attestations attached to an image
cosign tree registry.example.com/app:v1.0.0
# Or use stella CLI
stella attest oci-list --image registry.example.com/app:v1.0.0
"""

SEED_KEY_BASED = """\
# Verify attestation signed with a specific key
cosign verify-attestation \\
  --type stellaops.io/predicates/scan-result@v1 \\
  --key /path/to/public-key.pem \\
  registry.example.com/app:v1.0.0
"""

SEED_SKIP_REKOR = """\
# Skip Rekor verification (offline environments)
cosign verify-attestation \\
  --type stellaops.io/predicates/scan-result@v1 \\
  --key /path/to/public-key.pem \\
  --insecure-ignore-tlog \\
  registry.example.com/app:v1.0.0
"""

SEED_REKOR_ENTRY_NOT_FOUND = """\
cosign verify-attestation \\
  --insecure-ignore-tlog \\
  --key /path/to/public-key.pem \\
  registry.example.com/app:v1.0.0
"""

SEED_ALIASES = """\
# These are equivalent for SLSA provenance
cosign verify-attestation --type slsaprovenance ...
cosign verify-attestation --type https://slsa.dev/provenance/v1 ...
"""

SEED_YAML_PUBLIC_GOOD = """\
# stellaops.yaml
attestation:
  trustRoots:
    sigstore:
      enabled: true
      fulcioUrl: https://fulcio.sigstore.dev
      rekorUrl: https://rekor.sigstore.dev
      ctlogUrl: https://ctfe.sigstore.dev
"""

SEED_YAML_PRIVATE = """\
# stellaops.yaml
attestation:
  trustRoots:
    sigstore:
      enabled: true
      fulcioUrl: https://fulcio.internal.example.com
      rekorUrl: https://rekor.internal.example.com
      trustedRootPem: /etc/stellaops/sigstore-root.pem
"""

SEED_YAML_AIR_GAPPED = """\
# stellaops.yaml
attestation:
  trustRoots:
    offline: true
    bundlePath: /etc/stellaops/trust-bundle.json
"""


# -- the user's machine --------------------------------------------------------------------------------
@dataclass
class Shell:
    """A working directory with ./stellaops.yaml and keys; runs seed blocks with bash."""

    dir: Path
    registry: str
    trap: EgressTrap
    public_key: Path  # stands in for /path/to/public-key.pem

    def env(self) -> dict[str, str]:
        path = os.pathsep.join([str(TOOLS_BIN), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        env = {"PATH": path, "HOME": str(self.dir), "COSIGN_PASSWORD": PASSWORD, "TUF_ROOT": str(self.dir / "tuf"),
               "DOCKER_CONFIG": str(self.dir / "docker"), "LANG": "C.UTF-8", **self.trap.env()}
        return env

    def block(self, text: str, **placeholders: str) -> subprocess.CompletedProcess[str]:
        """Run a seed block: ``registry.example.com`` → the local registry, plus named placeholders."""
        script = text.replace("registry.example.com", self.registry)
        for old, new in placeholders.items():
            assert old in script, old
            script = script.replace(old, new)
        return subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=self.dir, env=self.env(),
                              capture_output=True, text=True, timeout=180, check=False)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(list(args), cwd=self.dir, env=self.env(), capture_output=True, text=True, timeout=180,
                              check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    @property
    def image(self) -> str:
        return f"{self.registry}/app:v1.0.0"


@pytest.fixture()
def shell(tmp_path: Path, egress_trap: EgressTrap) -> Iterator[Shell]:  # noqa: F811 - the imported fixture
    """A fresh registry standing in for registry.example.com, holding app:v1.0.0; keys of both tools."""
    registry, proc, tmp = start_ocireg(True)
    try:
        sh = Shell(tmp_path, registry, egress_trap, tmp_path / "keys" / "public-key.pem")
        (tmp_path / "keys").mkdir()
        sh.run(tool("cosign"), "generate-key-pair", "--output-key-prefix", "keys/cosign")
        sh.run(str(Path(sys.executable).parent / "stella"), "key", "generate", "--output-key-prefix", "keys/scanner")
        (tmp_path / "keys" / "scanner.pub").rename(sh.public_key)
        (tmp_path / "stellaops.yaml").write_text(f"store:\n  dsn: sqlite:///{tmp_path}/store.db\n")
        push_test_image(registry, "app", "v1.0.0")
        before = len(egress_trap.seen)
        yield sh
        assert egress_trap.seen[before:] == [], "a tool tried to leave loopback"
    finally:
        _stop(proc)
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def _cosign_attests(sh: Shell) -> None:
    """What a cosign user has on the image: an attestation in each of cosign's forms."""
    (sh.dir / "provenance.json").write_text(json.dumps({"buildType": "https://example.com/build@v1",
                                                        "builder": {"id": "https://example.com/ci"}}))
    for extra in ([], ["--new-bundle-format=false"]):
        sh.run(tool("cosign"), "attest", "--yes", "--key", "keys/cosign.key", "--type", "slsaprovenance", "--predicate",
               "provenance.json", "--use-signing-config=false", "--tlog-upload=false", *extra, sh.image)


def _scan_json(sh: Shell) -> None:
    """scan.json: a DSSE envelope signed by `stella attest sign` (the scanner's key)."""
    (sh.dir / "scan-predicate.json").write_text(json.dumps(SCAN_PREDICATE))
    proc = sh.run("bash", "-c", f"stella attest sign --predicate scan-predicate.json --type {SCAN} "
                                f"--image {sh.image} --key keys/scanner.key > scan.json")
    assert proc.returncode == 0


def _attach_scan(sh: Shell) -> None:
    _scan_json(sh)
    proc = sh.block(SEED_ATTACH)
    assert proc.returncode == 0, proc.stderr


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _predicate_type(line: str) -> str:
    return str(json.loads(base64.b64decode(json.loads(line)["payload"]))["predicateType"])


# -- CLI Import ------------------------------------------------------------------------------------------------
def test_seed_cli_import(shell: Shell) -> None:
    _cosign_attests(shell)
    proc = shell.block(SEED_CLI_IMPORT)
    assert proc.returncode == 0, proc.stderr
    assert "2 imported, 0 already present, 0 refused" in proc.stderr
    downloaded = _lines((shell.dir / "attestation.json").read_text())
    assert len(downloaded) == 2  # the bundle referrer, then the .att envelope
    store = open_store(f"sqlite:///{shell.dir}/store.db")
    try:
        with loopback_client() as client:
            digest = client.get_manifest(shell.registry, "app", "v1.0.0").digest
        stored = store.find_by_digest(digest)
        assert {c.data.decode() for c in stored} == set(downloaded)  # exactly what cosign printed
        assert {c.source for c in stored} == {"imported"}
    finally:
        store.close()
    again = shell.block(SEED_CLI_IMPORT)  # the same block twice: nothing duplicated
    assert again.returncode == 0 and "0 imported, 2 already present, 0 refused" in again.stderr


# -- API Import --------------------------------------------------------------------------------------------------
def test_seed_api_import_then_provider_verdict_is_imported(shell: Shell, provider_factory: Any) -> None:
    _cosign_attests(shell)
    assert shell.block(SEED_CLI_IMPORT.split("# Import into StellaOps")[0]).returncode == 0  # the download line
    (shell.dir / "acme.token").write_text(TOKEN + "\n")
    provider = provider_factory(
        "attestation:\n  authorities:\n    - name: release-key\n"
        f"      key: {{path: {shell.dir / 'keys' / 'cosign.pub'}}}\n  requireTlog: false\n"
        "registries:\n  allowPrivate: true\n"
        f"store:\n  dsn: sqlite:///{shell.dir}/provider-store.db\n"
        f"importApi:\n  tokens:\n    - tenant: acme\n      tokenFile: {shell.dir / 'acme.token'}\n",
        env=shell.trap.env(),
    )
    # as written: no token → 401 saying how to pass one
    bare = shell.block(SEED_API_IMPORT, **{"https://stellaops.example.com": provider.url})
    assert bare.returncode == 0, bare.stderr
    error = json.loads(bare.stdout)["error"]
    assert error["reason"] == "UNAUTHORIZED"
    assert "Authorization: Bearer <token>" in error["hint"]
    # the same line with the tenant's token: imported (curl -d @ strips the newlines; both documents count)
    with_token = shell.block(SEED_API_IMPORT, **{"https://stellaops.example.com": provider.url,
                                                 "-d @attestation.json": f'-H "Authorization: Bearer {TOKEN}" '
                                                                         "-d @attestation.json"})
    assert with_token.returncode == 0, with_token.stderr
    doc = json.loads(with_token.stdout)
    assert (doc["imported"], doc["duplicates"], doc["errors"], doc["tenant"]) == (2, 0, 0, "acme")
    assert {r["predicateType"] for r in doc["results"]} == {SLSA02}
    # the provider now verifies them from its store: a copy of the image in a repository with no
    # attestations (referrers are per repository) is verified only through the imports
    mirror = f"{shell.registry}/mirror:v1.0.0"
    shell.run(tool("crane"), "copy", shell.image, mirror)
    resp = provider.verify(mirror)
    assert resp["response"]["systemError"] == ""
    [item] = resp["response"]["items"]
    atts = item["value"]["attestations"]
    assert len(atts) == 2
    for att in atts:
        assert (att["source"], att["verified"], att["predicateType"]) == ("imported", True, SLSA02)
        assert att["signers"][0]["authority"] == "release-key"
        assert att["annotations"]["dev.stellaops/tenant"] == "acme"


# -- Custom Annotations -------------------------------------------------------------------------------------------
def test_seed_attach_puts_both_annotations_on_the_referrer_and_the_att_layer(shell: Shell) -> None:
    _attach_scan(shell)
    with loopback_client() as client:
        digest = client.get_manifest(shell.registry, "app", "v1.0.0").digest
        [referrer] = client.list_referrers(shell.registry, "app", digest)
        manifest = client.get_manifest(shell.registry, "app", referrer.digest)
        att = client.get_manifest(shell.registry, "app", cosign_attestation_tag(digest))
    want = {"org.example/team": "security", "org.example/policy-version": "2.0"}
    assert manifest.subject is not None and manifest.subject.digest == digest
    assert manifest.annotations.items() >= want.items()
    assert manifest.annotations["dev.stellaops/predicate-type"] == SCAN
    assert manifest.annotations["dev.sigstore.bundle.predicateType"] == SCAN
    assert manifest.annotations["org.opencontainers.image.created"]
    [layer] = att.layers
    assert layer.annotations.items() >= {**want, "dev.cosignproject.cosign/signature": "", "predicateType": SCAN}.items()


# -- Troubleshooting: No Attestations Found -----------------------------------------------------------------------
def test_seed_tree_and_oci_list(shell: Shell) -> None:
    _attach_scan(shell)
    proc = shell.block(SEED_NO_ATTESTATIONS)
    assert proc.returncode == 0, proc.stderr
    with loopback_client() as client:
        digest = client.get_manifest(shell.registry, "app", "v1.0.0").digest
        [referrer] = client.list_referrers(shell.registry, "app", digest)
        [layer] = client.get_manifest(shell.registry, "app", cosign_attestation_tag(digest)).layers
    header = f"📦 Supply Chain Security Related artifacts for an image: {shell.image}"
    # both printed the same tree: cosign's first, then ours
    assert proc.stdout.count(header) == 2
    cosign_out, ours = proc.stdout.split(header)[1:]
    for out in (cosign_out, ours):
        assert f"💾 Attestations for an image tag: {shell.registry}/app:{cosign_attestation_tag(digest)}" in out
        assert f"🍒 {layer.digest}" in out
        assert f"🔗 {SCAN} artifacts via OCI referrer: {shell.registry}/app@{referrer.digest}" in out


# -- cosign's key-based commands against what stella attached --------------------------------------------------------
def test_seed_skip_rekor_verifies_our_attestation(shell: Shell) -> None:
    _attach_scan(shell)
    proc = shell.block(SEED_SKIP_REKOR, **{"/path/to/public-key.pem": str(shell.public_key)})
    assert proc.returncode == 0, proc.stderr
    [line] = _lines(proc.stdout)
    assert _predicate_type(line) == SCAN


def test_seed_key_based_needs_a_log_entry(shell: Shell, test_sigstore: TestSigstore) -> None:
    """As written (no --insecure-ignore-tlog), cosign wants the attestation in Rekor: it first
    fetches the public-good trusted root over TUF (refused here by the trap), and given a
    trusted root it fails for want of a log entry. Our offline attestations need the Skip
    Rekor form."""
    _attach_scan(shell)
    before = len(shell.trap.seen)
    proc = shell.block(SEED_KEY_BASED, **{"/path/to/public-key.pem": str(shell.public_key)})
    assert proc.returncode != 0
    tried = shell.trap.seen[before:]
    assert tried and all(t.startswith("CONNECT tuf-repo-cdn.sigstore.dev:443 ") for t in tried)
    del shell.trap.seen[before:]  # expected, and refused
    (shell.dir / "trusted_root.json").write_bytes(test_sigstore.trusted_root_json())
    proc = shell.block(SEED_KEY_BASED, **{"/path/to/public-key.pem": f"{shell.public_key} --trusted-root trusted_root.json"})
    assert proc.returncode != 0
    assert "not enough verified log entries from transparency log: 0 < 1" in proc.stderr


def test_seed_rekor_entry_not_found_without_type_is_custom(shell: Shell) -> None:
    """No --type means cosign's default `custom`: our scan-result attestation does not match."""
    _attach_scan(shell)
    proc = shell.block(SEED_REKOR_ENTRY_NOT_FOUND, **{"/path/to/public-key.pem": str(shell.public_key)})
    assert proc.returncode != 0
    assert f"none of the attestations matched the predicate type: custom, found: {SCAN}" in proc.stderr


def test_seed_aliases_slsaprovenance_is_v02_in_cosign(shell: Shell) -> None:
    """The seed calls `slsaprovenance` and the v1 URI equivalent; in cosign the alias is SLSA v0.2."""
    (shell.dir / "slsa1.json").write_text(json.dumps({"buildDefinition": {"buildType": "https://example.com/b@v1"},
                                                      "runDetails": {"builder": {"id": "https://example.com/ci"}}}))
    shell.run("bash", "-c", f"stella attest sign --predicate slsa1.json --type {SLSA1} --image {shell.image} "
                            "--key keys/scanner.key > slsa1.dsse.json && "
                            f"stella attest attach --image {shell.image} --attestation slsa1.dsse.json")
    rest = f"--key {shell.public_key} --insecure-ignore-tlog registry.example.com/app:v1.0.0"
    first, second = [line for line in _lines(SEED_ALIASES) if not line.startswith("#")]
    v1 = shell.block(second.replace("...", rest))
    assert v1.returncode == 0, v1.stderr
    assert _predicate_type(_lines(v1.stdout)[0]) == SLSA1
    alias = shell.block(first.replace("...", rest))
    assert alias.returncode != 0
    assert f"none of the attestations matched the predicate type: slsaprovenance, found: {SLSA1}" in alias.stderr
    # and the alias does find a v0.2 statement (what `stella attest sign --type slsaprovenance` writes)
    shell.run("bash", "-c", f"stella attest sign --predicate slsa1.json --type slsaprovenance --image {shell.image} "
                            "--key keys/scanner.key > slsa02.dsse.json && "
                            f"stella attest attach --image {shell.image} --attestation slsa02.dsse.json")
    alias = shell.block(first.replace("...", rest))
    assert alias.returncode == 0, alias.stderr
    assert [_predicate_type(line) for line in _lines(alias.stdout)] == [SLSA02]


# -- Trust Root Configuration -------------------------------------------------------------------------------------
def _config_check(sh: Shell, text: str, **paths: str) -> subprocess.CompletedProcess[str]:
    for old, new in paths.items():
        assert old in text
        text = text.replace(old, new)
    (sh.dir / "stellaops.yaml").write_text(text)
    return sh.run(str(Path(sys.executable).parent / "stella"), "config", "check", "--output", "json", check=False)


def test_seed_yaml_public_good_loads_without_network(shell: Shell) -> None:
    proc = _config_check(shell, SEED_YAML_PUBLIC_GOOD)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["source"] == "stellaops.yaml"
    assert doc["sigstore"] == {"publicGood": True, "offline": False, "trustedRoot": None, "privateFulcioRoot": False,
                               "rekorUrl": "https://rekor.sigstore.dev", "tlogLookup": False}
    # (the shell fixture asserts the egress trap saw nothing)


def test_seed_yaml_private_sigstore(shell: Shell, test_sigstore: TestSigstore) -> None:
    as_written = _config_check(shell, SEED_YAML_PRIVATE)
    assert as_written.returncode == 2
    assert ("stellaops.yaml: attestation.trustRoots.sigstore.trustedRootPem: trustedRootPem file "
            "'/etc/stellaops/sigstore-root.pem' does not exist") in as_written.stderr
    root = shell.dir / "sigstore-root.pem"
    root.write_text(pem(test_sigstore.ca.root))
    proc = _config_check(shell, SEED_YAML_PRIVATE, **{"/etc/stellaops/sigstore-root.pem": str(root)})
    assert proc.returncode == 0, proc.stderr
    sigstore = json.loads(proc.stdout)["sigstore"]
    assert sigstore["privateFulcioRoot"] is True and sigstore["publicGood"] is False
    assert sigstore["rekorUrl"] == "https://rekor.internal.example.com"


def test_seed_yaml_air_gapped(shell: Shell, test_sigstore: TestSigstore) -> None:
    as_written = _config_check(shell, SEED_YAML_AIR_GAPPED)
    assert as_written.returncode == 2
    assert ("stellaops.yaml: attestation.trustRoots.bundlePath: trust bundle file "
            "'/etc/stellaops/trust-bundle.json' does not exist") in as_written.stderr
    bundle = shell.dir / "trust-bundle.json"
    bundle.write_bytes(test_sigstore.trusted_root_json())
    proc = _config_check(shell, SEED_YAML_AIR_GAPPED, **{"/etc/stellaops/trust-bundle.json": str(bundle)})
    assert proc.returncode == 0, proc.stderr
    sigstore = json.loads(proc.stdout)["sigstore"]
    assert sigstore["offline"] is True and sigstore["publicGood"] is False
    assert sigstore["trustedRoot"] == str(bundle)
    # a file that is not a trusted root is refused, naming it
    bundle.write_text('{"mediaType": "something else"}')
    bad = _config_check(shell, SEED_YAML_AIR_GAPPED, **{"/etc/stellaops/trust-bundle.json": str(bundle)})
    assert bad.returncode == 2 and str(bundle) in bad.stderr
