"""The cosign interop matrix of issue 6, through the command lines users type.

Every cell runs the installed ``stella`` entry point and the real cosign binaries (v3.1.3 in
``.tools/bin/cosign``; v2.6.4 in ``.tools/bin/cosign2`` when ``scripts/tools.sh cosign2`` built it)
against real loopback registries, with and without the OCI 1.1 referrers API.

What other files already cover (not repeated here):
- the library ``attach()`` against cosign, exact manifest shapes, ``.att`` append/dedup:
  ``test_attach.py``; ``oci-list`` = ``cosign tree`` and ``download`` = ``cosign download``:
  ``test_oci_cli.py``;
- ``cosign download attestation`` → ``stella attest import`` → provider verdict ``source:
  imported``: ``test_import_cosign.py::test_provider_verifies_imported_attestations_as_source_imported``
  (and, through the real gunicorn provider and the seed's ``curl``, ``test_seed_commands.py``);
- key files at blob level (``stella key generate`` keys in ``cosign sign-blob``/``attest-blob``,
  every key type through ``cosign import-key-pair``): ``test_verify_cosign_keys.py``.

All traffic stays on loopback: each process gets ``HTTPS_PROXY``/``HTTP_PROXY`` pointing at a
loopback trap that records and refuses any attempt to go elsewhere (Go and requests never proxy
loopback, so the registries are reached directly), and tests assert the trap saw nothing.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.images import loopback_client, push_test_image
from tests.fixtures.tools import TOOLS_BIN, tool

pytestmark = pytest.mark.cosign

STELLA = str(Path(sys.executable).parent / "stella")
PASSWORD = "interop-pw"

SCAN = "stellaops.io/predicates/scan-result@v1"
SBOM = "stellaops.io/predicates/sbom@v1"
VEX = "stellaops.io/predicates/vex@v1"
SLSA1 = "https://slsa.dev/provenance/v1"
SLSA02 = "https://slsa.dev/provenance/v0.2"
BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"

PREDICATES: dict[str, dict[str, Any]] = {
    "scan": {
        "scanner": {"name": "stellaops-scanner", "version": "1.0"},
        "scanId": "scan-1",
        "scannedAt": "2026-11-25T10:00:00Z",
        "findings": [{"id": "CVE-2026-0001", "severity": "high", "package": {"name": "openssl", "version": "3.0.1"}}],
        "summary": {"critical": 0, "high": 1, "medium": 0, "low": 0, "unknown": 0},
    },
    "sbom": {
        "format": "cyclonedx-json",
        "specVersion": "1.5",
        "componentCount": 1,
        "document": {"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [{"name": "openssl"}]},
    },
    "vex": {
        "author": "security@example.com",
        "timestamp": "2026-11-25T10:00:00Z",
        "statements": [{"vulnerability": "CVE-2026-0001", "products": ["pkg:oci/app"], "status": "not_affected",
                        "justification": "vulnerable_code_not_in_execute_path"}],
    },
    "slsa1": {"buildDefinition": {"buildType": "https://example.com/build@v1", "externalParameters": {}},
              "runDetails": {"builder": {"id": "https://example.com/builder"}}},
    "slsa02": {"builder": {"id": "https://example.com/builder"}, "buildType": "https://example.com/build@v0.2"},
}

# (predicate file, `stella attest sign --type`, the predicate type cosign finds, `cosign verify-attestation --type`)
SEED_TYPES = [
    ("scan", SCAN, SCAN, SCAN),
    ("sbom", SBOM, SBOM, SBOM),
    ("vex", VEX, VEX, VEX),
    ("slsa1", SLSA1, SLSA1, SLSA1),
    ("slsa02", "slsaprovenance", SLSA02, "slsaprovenance"),  # cosign's alias is SLSA v0.2 (DESIGN §4)
]
TYPE_IDS = [t[3].rsplit("/", 1)[-1] for t in SEED_TYPES]


# -- the egress trap -----------------------------------------------------------------------------
@dataclass
class EgressTrap:
    """A loopback listener used as HTTP(S) proxy: records what a process tried to reach, refuses it."""

    port: int = 0
    seen: list[str] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        proxy = f"http://127.0.0.1:{self.port}"
        return {"HTTPS_PROXY": proxy, "HTTP_PROXY": proxy, "https_proxy": proxy, "http_proxy": proxy,
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


@pytest.fixture(scope="module")
def egress_trap() -> Iterator[EgressTrap]:
    trap = EgressTrap()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    trap.port = server.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    trap.seen.append(conn.recv(512).split(b"\r\n", 1)[0].decode(errors="replace"))
                except OSError:
                    trap.seen.append("<no request line>")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield trap
    stop.set()
    thread.join(timeout=5)
    server.close()


# -- running the tools ---------------------------------------------------------------------------
@dataclass
class Workspace:
    dir: Path
    trap: EgressTrap

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.dir),
            "COSIGN_PASSWORD": PASSWORD,
            "TUF_ROOT": str(self.dir / "tuf"),
            "DOCKER_CONFIG": str(self.dir / "docker"),
            **self.trap.env(),
        }

    def run(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(list(args), check=False, cwd=self.dir, env=self.env(), capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def stella(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(STELLA, *args, check=check)

    def cosign(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(tool("cosign"), *args, check=check)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, egress_trap: EgressTrap) -> Workspace:
    """Keys made by both tools, and the predicate files."""
    w = Workspace(tmp_path_factory.mktemp("interop"), egress_trap)
    w.stella("key", "generate", "--output-key-prefix", "stella")  # stella.key / stella.pub
    w.cosign("generate-key-pair")  # cosign.key / cosign.pub
    for name, predicate in PREDICATES.items():
        (w.dir / f"{name}.pred.json").write_text(json.dumps(predicate))
    return w


@pytest.fixture(autouse=True)
def _nothing_left_loopback(egress_trap: EgressTrap) -> Iterator[None]:
    before = len(egress_trap.seen)
    yield
    assert egress_trap.seen[before:] == [], "a tool tried to leave loopback"


def _statement(line: str) -> dict[str, Any]:
    return dict(json.loads(base64.b64decode(json.loads(line)["payload"])))


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _sign_and_attach(w: Workspace, image: str, name: str, sign_type: str, *attach_args: str,
                     key: str = "stella.key") -> list[dict[str, Any]]:
    envelope = w.dir / f"{name}-{abs(hash((image, attach_args)))}.dsse.json"
    w.stella("attest", "sign", "--predicate", f"{name}.pred.json", "--type", sign_type, "--image", image, "--key", key,
             "--output-file", str(envelope))
    out = w.stella("attest", "attach", "--image", image, "--attestation", str(envelope), "--output", "json",
                   *attach_args).stdout
    return list(json.loads(out))


def _tree(w: Workspace, image: str, cosign: str | None = None) -> tuple[list[str], list[str]]:
    """(.att layer digests, referrer labels) from `cosign tree IMAGE`."""
    out = w.run(cosign or tool("cosign"), "tree", image).stdout
    att: list[str] = []
    labels: list[str] = []
    section = ""
    for line in out.splitlines():
        if "💾 Attestations for an image tag:" in line:
            section = "att"
        elif " artifacts via OCI referrer: " in line:
            section = "referrer"
            labels.append(line.split("🔗 ", 1)[1].split(" artifacts via OCI referrer: ", 1)[0])
        elif "🍒 " in line and section == "att":
            att.append(line.split("🍒 ", 1)[1].strip())
    return att, labels


# -- 1. stella attest attach (default bundle,legacy) → cosign verify-attestation, cosign tree ----------
@dataclass
class Attached:
    registry: str
    image: str
    digest: str
    results: dict[str, list[dict[str, Any]]]  # predicate file name → attach results
    fixture: str  # which registry fixture


@pytest.fixture(scope="module", params=["ocireg", "ggcr_registry", "distribution_registry"])
def attached_default(request: pytest.FixtureRequest, ws: Workspace) -> Attached:
    registry = str(request.getfixturevalue(request.param))
    digest = push_test_image(registry, "matrix/app", "v1.0.0")
    image = f"{registry}/matrix/app:v1.0.0"
    results = {name: _sign_and_attach(ws, image, name, sign_type) for name, sign_type, _, _ in SEED_TYPES}
    return Attached(registry, image, digest, results, request.param)


def test_attach_writes_bundle_and_legacy_for_every_seed_type(attached_default: Attached) -> None:
    a = attached_default
    with loopback_client() as client:
        assert client.referrers_api_supported(a.registry, "matrix/app", a.digest) == (a.fixture == "ocireg")
    for res in a.results.values():
        assert [r["format"] for r in res] == ["bundle", "legacy"]
        # without the referrers API the bundle referrer is listed in the sha256-<hex> fallback index
        want_tag = "" if a.fixture == "ocireg" else "sha256-" + a.digest[7:]
        assert res[0]["fallbackTag"] == want_tag


VERIFIERS = {
    "cosign3-bundle": ["--new-bundle-format=true"],  # v3's default: reads the bundle referrers
    "cosign3-legacy": ["--new-bundle-format=false"],  # the .att tag, as cosign v2 and Kyverno read it
    "cosign2": [],  # v2.6.4 as is (switches to bundle mode when it sees a bundle referrer)
}


@pytest.mark.parametrize("verifier", list(VERIFIERS))
@pytest.mark.parametrize(("name", "sign_type", "want_type", "cosign_type"), SEED_TYPES, ids=TYPE_IDS)
def test_cosign_verify_attestation_of_stella_attach(attached_default: Attached, ws: Workspace, name: str,
                                                    sign_type: str, want_type: str, cosign_type: str,
                                                    verifier: str) -> None:
    a = attached_default
    exe = tool("cosign")
    extra = VERIFIERS[verifier]
    if verifier == "cosign2":
        exe = _cosign2()
        extra = ["--trusted-root", str(_empty_trusted_root(ws))]  # offline bundle mode needs one (docs/discovery.md)
    base = ["verify-attestation", "--insecure-ignore-tlog", "--type", cosign_type, *extra]
    proc = ws.run(exe, *base, "--key", "stella.pub", a.image, check=False)
    assert proc.returncode == 0, proc.stderr
    [line] = _lines(proc.stdout)  # exactly the one attestation of that type among the five
    st = _statement(line)
    assert st["predicateType"] == want_type
    assert st["subject"][0]["digest"]["sha256"] == a.digest[7:]
    assert st["predicate"] == PREDICATES[name]
    # the same image, a key that did not sign: cosign refuses (the cell can fail)
    other = ws.run(exe, *base, "--key", "cosign.pub", a.image, check=False)
    assert other.returncode != 0 and "signature" in other.stderr


def test_cosign_type_default_custom_matches_none_of_them(attached_default: Attached, ws: Workspace) -> None:
    proc = ws.cosign("verify-attestation", "--key", "stella.pub", "--insecure-ignore-tlog", attached_default.image,
                     check=False)
    assert proc.returncode != 0
    assert "none of the attestations matched the predicate type: custom" in proc.stderr


def test_cosign_tree_lists_stella_attach(attached_default: Attached, ws: Workspace) -> None:
    att, labels = _tree(ws, attached_default.image)
    assert sorted(labels) == sorted(want for _, _, want, _ in SEED_TYPES)  # one bundle referrer per type
    assert sorted(att) == sorted(res[1]["layerDigest"] for res in attached_default.results.values())
    assert sorted(res[0]["manifestDigest"] for res in attached_default.results.values()) == sorted(
        line.rsplit("@", 1)[1] for line in ws.cosign("tree", attached_default.image).stdout.splitlines()
        if " artifacts via OCI referrer: " in line)


def test_cosign_attest_refuses_the_seed_types_that_stella_sign_makes(ws: Workspace, ocireg: str) -> None:
    """cosign cannot make a stellaops.io/predicates/… attestation (not an absolute URI): the gap
    `stella attest sign` closes (the verify cells above are that gap closed)."""
    push_test_image(ocireg, "matrix/refused", "v1")
    proc = ws.cosign("attest", "--yes", "--key", "cosign.key", "--type", SCAN, "--predicate", "scan.pred.json",
                     "--use-signing-config=false", "--tlog-upload=false", f"{ocireg}/matrix/refused:v1", check=False)
    assert proc.returncode != 0 and "invalid predicate type" in proc.stderr
    assert ws.cosign("tree", f"{ocireg}/matrix/refused:v1").stdout.count("🍒") == 0


# -- 2. --format legacy alone → cosign v2.6.4 and cosign v3 -------------------------------------------
@pytest.fixture(scope="module", params=["ocireg", "distribution_registry"])
def attached_legacy(request: pytest.FixtureRequest, ws: Workspace) -> Attached:
    registry = str(request.getfixturevalue(request.param))
    digest = push_test_image(registry, "matrix/legacy", "v1.0.0")
    image = f"{registry}/matrix/legacy:v1.0.0"
    results = {name: _sign_and_attach(ws, image, name, sign_type, "--format", "legacy")
               for name, sign_type, _, _ in SEED_TYPES}
    return Attached(registry, image, digest, results, request.param)


def _cosign2() -> str:
    path = TOOLS_BIN / "cosign2"
    if not os.access(path, os.X_OK):
        pytest.skip("cosign v2.6.4 is not built (optional): scripts/tools.sh cosign2")
    return str(path)


@pytest.mark.parametrize(
    "verifier",
    ["cosign2", "cosign3-new-bundle-format=false", "cosign3-default"],
)
@pytest.mark.parametrize(("name", "sign_type", "want_type", "cosign_type"), SEED_TYPES, ids=TYPE_IDS)
def test_legacy_only_verifies_with_cosign_v2_and_v3(attached_legacy: Attached, ws: Workspace, verifier: str,
                                                    name: str, sign_type: str, want_type: str,
                                                    cosign_type: str) -> None:
    a = attached_legacy
    assert all([r["format"] for r in res] == ["legacy"] for res in a.results.values())
    exe = _cosign2() if verifier == "cosign2" else tool("cosign")
    extra = ["--new-bundle-format=false"] if verifier == "cosign3-new-bundle-format=false" else []
    if verifier == "cosign2":
        # without a trusted root cosign v2 reaches for the public-good TUF root first (see below)
        extra = ["--trusted-root", str(_empty_trusted_root(ws))]
    proc = ws.run(exe, "verify-attestation", "--key", "stella.pub", "--insecure-ignore-tlog", "--type", cosign_type,
                  *extra, a.image, check=False)
    assert proc.returncode == 0, proc.stderr
    [line] = _lines(proc.stdout)
    st = _statement(line)
    assert (st["predicateType"], st["subject"][0]["digest"]["sha256"]) == (want_type, a.digest[7:])


def _empty_trusted_root(w: Workspace) -> Path:
    """A trusted root with nothing in it: enough for cosign v2 with --key --insecure-ignore-tlog."""
    path = w.dir / "empty_trusted_root.json"
    path.write_text(json.dumps({"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}))
    return path


def test_cosign2_without_trusted_root_reaches_for_tuf(attached_legacy: Attached, ws: Workspace) -> None:
    """Measured: cosign v2.6.4 `verify-attestation --key --insecure-ignore-tlog` (even with
    --offline) first tries to fetch the public-good TUF root; refused, it still verifies the
    .att layer. Give it --trusted-root to keep it off the network (the cells above do)."""
    before = len(ws.trap.seen)
    proc = ws.run(_cosign2(), "verify-attestation", "--key", "stella.pub", "--insecure-ignore-tlog", "--offline",
                  "--type", SCAN, attached_legacy.image, check=False)
    assert proc.returncode == 0, proc.stderr
    tried = ws.trap.seen[before:]
    assert tried and all(t.startswith("CONNECT tuf-repo-cdn.sigstore.dev:443 ") for t in tried)
    del ws.trap.seen[before:]  # expected here, and refused by the trap


def test_legacy_only_is_one_att_tag_in_cosign_tree(attached_legacy: Attached, ws: Workspace) -> None:
    att, labels = _tree(ws, attached_legacy.image)
    assert labels == []  # no referrer at all
    assert sorted(att) == sorted(res[0]["layerDigest"] for res in attached_legacy.results.values())
    att2, labels2 = _tree(ws, attached_legacy.image, _cosign2())
    assert (sorted(att2), labels2) == (sorted(att), [])


# -- 3. cosign attest (legacy .att and v3 bundle) → stella attest verify and the provider -----------------
@dataclass
class CosignAttested:
    registry: str
    images: dict[str, tuple[str, str]]  # form → (reference, digest)


@pytest.fixture(scope="module", params=["ocireg", "ggcr_registry"])
def cosign_attested(request: pytest.FixtureRequest, ws: Workspace) -> CosignAttested:
    registry = str(request.getfixturevalue(request.param))
    images = {}
    for form, extra in (("legacy", ["--new-bundle-format=false"]), ("bundle", [])):
        digest = push_test_image(registry, f"matrix/cosign-{form}", "v1")
        ref = f"{registry}/matrix/cosign-{form}:v1"
        ws.cosign("attest", "--yes", "--key", "cosign.key", "--type", "slsaprovenance1", "--predicate",
                  "slsa1.pred.json", "--use-signing-config=false", "--tlog-upload=false", *extra, ref)
        images[form] = (ref, digest)
    return CosignAttested(registry, images)


SOURCE = {"legacy": "cosign-tag", "bundle": "bundle"}


@pytest.mark.parametrize("form", ["legacy", "bundle"])
def test_stella_attest_verify_cosign_attest(cosign_attested: CosignAttested, ws: Workspace, form: str) -> None:
    ref, _ = cosign_attested.images[form]
    proc = ws.stella("attest", "verify", ref, "--key", "cosign.pub", "--insecure-ignore-tlog", "--type",
                     "slsaprovenance1", "--output", "json")
    doc = json.loads(proc.stdout)
    assert doc["verified"] is True and doc["predicateType"] == SLSA1
    [att] = [a for a in doc["attestations"] if a["verified"]]
    assert att["source"] == SOURCE[form] and att["predicateType"] == SLSA1
    assert att["signers"][0]["kind"] == "key"
    # another key, or another type: refused
    wrong = ws.stella("attest", "verify", ref, "--key", "stella.pub", "--insecure-ignore-tlog", "--type",
                      "slsaprovenance1", check=False)
    assert wrong.returncode == 1 and "SIGNATURE_INVALID" in wrong.stderr
    other_type = ws.stella("attest", "verify", ref, "--key", "cosign.pub", "--insecure-ignore-tlog", "--type",
                           "slsaprovenance", check=False)
    assert other_type.returncode == 1 and SLSA02 in other_type.stderr


def test_provider_verifies_cosign_attest(cosign_attested: CosignAttested, ws: Workspace,
                                         provider_factory: Any) -> None:
    cfg = (
        "attestation:\n  authorities:\n    - name: cosign-key\n"
        f"      key: {{path: {ws.dir / 'cosign.pub'}}}\n  requireTlog: false\n"
        "registries:\n  allowPrivate: true\n"
        f"store: {{dsn: 'sqlite:///{ws.dir / 'provider-store.db'}'}}\n"
    )
    provider = provider_factory(cfg, env=ws.trap.env())
    refs = [cosign_attested.images[f][0] for f in ("legacy", "bundle")]
    resp = provider.verify(*refs)
    assert resp["_status"] == 200 and resp["response"]["systemError"] == ""
    items = {i["key"]: i for i in resp["response"]["items"]}
    for form in ("legacy", "bundle"):
        ref, digest = cosign_attested.images[form]
        assert items[ref]["error"] == ""
        value = items[ref]["value"]
        assert value["digest"] == digest
        [att] = value["attestations"]
        assert (att["verified"], att["source"], att["predicateType"]) == (True, SOURCE[form], SLSA1)
        assert att["signers"][0]["authority"] == "cosign-key" and att["errors"] == []
        assert att["predicateSummary"]["builderId"] == "https://example.com/builder"


# -- 4. key files both ways, on images --------------------------------------------------------------------
def test_stella_key_used_by_cosign_attest(ws: Workspace, ocireg: str) -> None:
    push_test_image(ocireg, "matrix/stella-key", "v1")
    ref = f"{ocireg}/matrix/stella-key:v1"
    ws.cosign("attest", "--yes", "--key", "stella.key", "--type", "slsaprovenance1", "--predicate", "slsa1.pred.json",
              "--use-signing-config=false", "--tlog-upload=false", ref)
    ws.cosign("verify-attestation", "--key", "stella.pub", "--insecure-ignore-tlog", "--type", "slsaprovenance1", ref)
    out = ws.stella("attest", "verify", ref, "--key", "stella.pub", "--insecure-ignore-tlog", "--type",
                    "slsaprovenance1").stdout
    assert f"OK  {SLSA1}  source=bundle" in out


def test_cosign_key_used_by_stella_attest_sign(ws: Workspace, ocireg: str) -> None:
    digest = push_test_image(ocireg, "matrix/cosign-key", "v1")
    ref = f"{ocireg}/matrix/cosign-key:v1"
    _sign_and_attach(ws, ref, "scan", SCAN, key="cosign.key")
    for mode in ("true", "false"):
        proc = ws.cosign("verify-attestation", "--key", "cosign.pub", "--insecure-ignore-tlog", "--type", SCAN,
                         f"--new-bundle-format={mode}", ref)
        assert _statement(_lines(proc.stdout)[0])["subject"][0]["digest"]["sha256"] == digest[7:]
    assert "OK  " + SCAN in ws.stella("attest", "verify", ref, "--key", "cosign.pub", "--insecure-ignore-tlog",
                                       "--type", SCAN).stdout


# -- 5. key types where cosign needs help, or cannot ---------------------------------------------------
def _pkcs8(w: Workspace, kind: str) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    key: Any = ec.generate_private_key(ec.SECP384R1()) if kind == "p384" else ed25519.Ed25519PrivateKey.generate()
    (w.dir / f"{kind}.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    (w.dir / f"{kind}.pub").write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                                      serialization.PublicFormat.SubjectPublicKeyInfo))


def test_p384_needs_signature_digest_algorithm_sha384_in_cosign(ws: Workspace, ocireg: str) -> None:
    push_test_image(ocireg, "matrix/p384", "v1")
    ref = f"{ocireg}/matrix/p384:v1"
    _pkcs8(ws, "p384")
    _sign_and_attach(ws, ref, "scan", SCAN, key="p384.pem")
    base = ["verify-attestation", "--key", "p384.pub", "--insecure-ignore-tlog", "--type", SCAN]
    default = ws.cosign(*base, ref, check=False)
    assert default.returncode != 0 and "accepted signatures do not match threshold" in default.stderr
    for mode in ("true", "false"):
        ws.cosign(*base, "--signature-digest-algorithm", "sha384", f"--new-bundle-format={mode}", ref)
    assert "OK  " + SCAN in ws.stella("attest", "verify", ref, "--key", "p384.pub", "--insecure-ignore-tlog",
                                       "--type", SCAN).stdout


def test_cosign_cannot_verify_its_own_ed25519_but_stella_does(ws: Workspace, ocireg: str) -> None:
    push_test_image(ocireg, "matrix/ed25519", "v1")
    ref = f"{ocireg}/matrix/ed25519:v1"
    _pkcs8(ws, "ed25519")
    ws.cosign("import-key-pair", "--key", "ed25519.pem", "--output-key-prefix", "ed25519-cosign")
    ws.cosign("attest", "--yes", "--key", "ed25519-cosign.key", "--type", "slsaprovenance1", "--predicate",
              "slsa1.pred.json", "--use-signing-config=false", "--tlog-upload=false", ref)
    for algorithm in ("sha256", "sha512"):
        proc = ws.cosign("verify-attestation", "--key", "ed25519-cosign.pub", "--insecure-ignore-tlog", "--type",
                         "slsaprovenance1", "--signature-digest-algorithm", algorithm, ref, check=False)
        assert proc.returncode != 0 and "accepted signatures do not match threshold" in proc.stderr
    out = ws.stella("attest", "verify", ref, "--key", "ed25519-cosign.pub", "--insecure-ignore-tlog", "--type",
                    "slsaprovenance1").stdout
    assert f"OK  {SLSA1}  source=bundle" in out
