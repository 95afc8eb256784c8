#!/usr/bin/env python3
"""Write the verdicts the Rego tests are fed with: rego/testdata/verdicts/<case>/data.json.

Each file is one ProviderResponse item, ``{"key": IMAGE, "value": VERDICT, "error": ""}`` (or a
per-key ``error``), loaded by ``opa test`` as ``data.verdicts.<case>`` only because
scripts/rego-check.sh passes rego/testdata deliberately (one JSON per folder: no merge conflicts).

Two sources, both written through the provider's own code so the shape is exactly
``Verdict.to_json()`` (provider/stellaops/verdict.py) and summaries are ``predicates.summarize()``:

``--record`` (the default) runs the real parts on loopback: the ``ocireg`` registry, ``crane`` to
push images, ``cosign`` to attach attestations (key-signed, offline: no Rekor here, so tlog is
not verified), and the provider (``stella serve --plain-http --config F --port N``); it POSTs one
ProviderRequest to ``/gatekeeper/v1/verify`` and stores each item, with the loopback
``127.0.0.1:PORT`` host rewritten to ``registry.example.com`` so files are stable across runs.

``--synthetic`` builds the cases the offline registry cannot produce (tlog-verified and keyless
signers need a Rekor and a Fulcio) from the provider's dataclasses; SOURCE.md lists which case
comes from which source.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "rego" / "testdata" / "verdicts"
TOOLS = ROOT / ".tools" / "bin"
STABLE_HOST = "registry.example.com"

sys.path.insert(0, str(ROOT / "provider"))

from stellaops import predicates  # noqa: E402
from stellaops.verdict import AttestationResult, ErrorItem, Signer, TlogResult, Verdict  # noqa: E402

SCAN = predicates.SCAN_RESULT_V1
SBOM = predicates.SBOM_V1
VEX = predicates.VEX_V1
SLSA1 = predicates.SLSA_V1
SLSA02 = predicates.SLSA_V02

RELEASE_KEY = Signer("key", "release-key", key_id="sha256:" + "5e" * 32)
CI_KEYLESS = Signer(
    "keyless",
    "ci",
    issuer="https://token.actions.githubusercontent.com",
    subject="https://github.com/stellaops/app/.github/workflows/release.yml@refs/heads/main",
)
OTHER_KEY = Signer("key", "vendor-key", key_id="sha256:" + "0f" * 32)


def _digest(seed: str) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def scan_predicate(scanned_at: str, findings: list[tuple[str, str, str]]) -> dict[str, Any]:
    items = [
        {
            "id": vid,
            "severity": sev,
            "package": {"name": pkg, "version": "1.0.0", "purl": f"pkg:generic/{pkg}@1.0.0"},
            "fixedVersion": "1.0.1",
        }
        for vid, sev, pkg in findings
    ]
    summary = {s: sum(1 for f in items if f["severity"] == s) for s in predicates.SEVERITIES}
    return {
        "scanner": {"name": "stellaops-scanner", "version": "2.4.0"},
        "scanId": "scan-" + scanned_at[:10],
        "scannedAt": scanned_at,
        "findings": items,
        "summary": summary,
    }


def sbom_predicate(fmt: str = "cyclonedx-json", components: int = 42) -> dict[str, Any]:
    return {
        "format": fmt,
        "specVersion": "1.5" if fmt == "cyclonedx-json" else "2.3",
        "documentDigest": _digest("sbom-" + fmt),
        "uri": "oci://registry.example.com/app/sbom",
        "componentCount": components,
    }


def vex_predicate(timestamp: str, statements: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "author": "security@stellaops.io",
        "timestamp": timestamp,
        "statements": [
            {
                "vulnerability": vid,
                "products": ["pkg:oci/app"],
                "status": status,
                "justification": "vulnerable_code_not_in_execute_path" if status == "not_affected" else "",
            }
            for vid, status in statements
        ],
    }


def slsa1_predicate(builder: str, source: str) -> dict[str, Any]:
    return {
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {"workflow": {"repository": source, "ref": "refs/heads/main", "path": ".github/workflows/release.yml"}},
        },
        "runDetails": {"builder": {"id": builder}},
    }


def slsa02_predicate(builder: str, source: str) -> dict[str, Any]:
    return {
        "builder": {"id": builder},
        "buildType": "https://github.com/slsa-framework/slsa-github-generator/generic@v1",
        "invocation": {"configSource": {"uri": source, "entryPoint": ".github/workflows/release.yml"}},
    }


def attestation(
    predicate_type: str,
    predicate: Any,
    digest: str,
    *,
    signers: tuple[Signer, ...] = (RELEASE_KEY,),
    tlog: bool = True,
    created: str = "",
    source: str = "bundle",
    verified: bool = True,
    errors: tuple[ErrorItem, ...] = (),
    created_signed: bool = True,
) -> AttestationResult:
    log = TlogResult(True, 4242, 1795950000, "c0d23d6ad406973f") if tlog and verified else TlogResult()
    when = created or predicates.signed_time(predicate_type, predicate) or "2026-11-20T08:00:00Z"
    return AttestationResult(
        predicate_type=predicate_type,
        verified=verified,
        source=source,
        digest=digest,
        signers=signers if verified else (),
        tlog=log,
        created=when,
        created_signed=created_signed,
        annotations={"dev.stellaops/tenant": "acme"},
        predicate=predicates.inline_predicate(predicate) if verified else None,
        predicate_summary=predicates.summarize(predicate_type, predicate) if verified else {},
        errors=errors,
        envelope_digest=_digest(json.dumps(predicate, sort_keys=True) + predicate_type),
    )


def synthetic_cases() -> dict[str, dict[str, Any]]:
    """Cases built from the provider's models (see SOURCE.md)."""
    cases: dict[str, dict[str, Any]] = {}

    def put(case: str, verdict: Verdict) -> None:
        cases[case] = {"key": verdict.image, "value": verdict.to_json(), "error": ""}

    img = f"{STABLE_HOST}/app:v1.0.0"
    d = _digest(img)
    bad_sig = ErrorItem("SIGNATURE_INVALID", "no signature on the envelope verifies against authority release-key", "sign with a configured key")
    put(
        "release",
        Verdict(
            img,
            d,
            (
                # Unverified copy first and an older verified scan: the library must pick the newest verified one.
                attestation(SCAN, scan_predicate("2026-11-24T10:00:00Z", []), d, verified=False, errors=(bad_sig,), created="2026-11-25T00:00:00Z", created_signed=False),
                attestation(SCAN, scan_predicate("2026-11-01T10:00:00Z", [("CVE-2026-0001", "critical", "openssl")]), d, source="cosign-tag"),
                attestation(SCAN, scan_predicate("2026-11-24T10:00:00Z", [("CVE-2026-1000", "low", "zlib"), ("CVE-2026-1001", "medium", "curl")]), d),
                attestation(SBOM, sbom_predicate(), d, created="2026-11-24T09:00:00Z"),
                attestation(VEX, vex_predicate("2026-11-24T11:00:00Z", [("CVE-2026-1001", "not_affected")]), d),
                attestation(SLSA1, slsa1_predicate("https://github.com/actions/runner/github-hosted", "git+https://github.com/stellaops/app@refs/heads/main"), d, signers=(CI_KEYLESS,), created="2026-11-24T08:00:00Z"),
            ),
        ),
    )

    img = f"{STABLE_HOST}/app:vulnerable"
    d = _digest(img)
    put(
        "vulnerable",
        Verdict(
            img,
            d,
            (
                attestation(
                    SCAN,
                    scan_predicate(
                        "2026-11-24T10:00:00Z",
                        [
                            ("CVE-2026-2001", "critical", "openssl"),
                            ("CVE-2026-2002", "critical", "glibc"),
                            ("CVE-2026-2003", "high", "curl"),
                            ("CVE-2026-2004", "high", "zlib"),
                            ("CVE-2026-2005", "medium", "libxml2"),
                        ],
                    ),
                    d,
                ),
                # The newest VEX says 2001 is not_affected and 2003 fixed; the older one (ignored for
                # 2002: a newer statement exists) said 2002 not_affected, the newer one affected.
                attestation(VEX, vex_predicate("2026-11-24T12:00:00Z", [("CVE-2026-2001", "not_affected"), ("CVE-2026-2003", "fixed"), ("CVE-2026-2002", "affected")]), d),
                attestation(VEX, vex_predicate("2026-11-20T12:00:00Z", [("CVE-2026-2002", "not_affected")]), d),
                # A VEX from a signer the constraint may not accept, clearing 2004.
                attestation(VEX, vex_predicate("2026-11-24T13:00:00Z", [("CVE-2026-2004", "not_affected")]), d, signers=(OTHER_KEY,)),
                attestation(SLSA02, slsa02_predicate("https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v2.0.0", "git+https://github.com/evil/app@refs/heads/main"), d, signers=(CI_KEYLESS,), created="2026-11-24T08:00:00Z"),
            ),
        ),
    )

    img = f"{STABLE_HOST}/app:unsigned"
    put(
        "unsigned",
        Verdict(img, _digest(img), (), (ErrorItem("NO_ATTESTATION", f"no attestation is attached to {img}", "attach one with stella attest attach"),)),
    )

    img = f"{STABLE_HOST}/app:tampered"
    d = _digest(img)
    put(
        "tampered",
        Verdict(
            img,
            d,
            (
                attestation(SCAN, scan_predicate("2026-11-24T10:00:00Z", []), d, verified=False, errors=(bad_sig,)),
                attestation(SBOM, sbom_predicate(), d, verified=False, errors=(ErrorItem("SUBJECT_MISMATCH", f"the statement names sha256:{'ab' * 32}, not {d}", "attest the image digest"),)),
            ),
        ),
    )

    img = f"{STABLE_HOST}/app:stale"
    d = _digest(img)
    put(
        "stale",
        Verdict(
            img,
            d,
            (
                attestation(SCAN, scan_predicate("2026-09-01T10:00:00Z", []), d),
                # Newer by its annotation only: an unsigned time never counts as fresh.
                attestation(SCAN, scan_predicate("2026-11-24T10:00:00Z", [("CVE-2026-3001", "critical", "openssl")]), d, created="2026-11-24T10:00:00Z", created_signed=False),
                attestation(SBOM, sbom_predicate("spdx-json", 0), d, created="2026-09-01T10:00:00Z"),
            ),
        ),
    )

    img = f"{STABLE_HOST}/app@sha256:nothex"
    cases["invalid_reference"] = {
        "key": img,
        "error": f"INVALID_REFERENCE: {img} is not a valid image reference: the digest must be sha256:<64 hex>",
    }
    return cases


def write_cases(cases: dict[str, dict[str, Any]]) -> None:
    for case, item in sorted(cases.items()):
        folder = OUT / case
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "data.json").write_text(json.dumps(item, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        print(f"wrote {folder / 'data.json'}")


# ---------------------------------------------------------------------------------------------
# --record: the real provider
# ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_file(path: Path, timeout: float = 20.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {path}")


def _run(cmd: list[str], env: dict[str, str] | None = None, stdin: bytes | None = None) -> str:
    proc = subprocess.run(cmd, input=stdin, capture_output=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode()


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    import requests

    resp = requests.post(url, json=body, timeout=30)
    return resp.json()  # type: ignore[no-any-return]


def record() -> dict[str, dict[str, Any]]:
    """Push images, attach key-signed attestations with cosign, and ask the real provider."""
    work = Path(tempfile.mkdtemp(prefix="stellaops-record-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        port_file = work / "registry.port"
        procs.append(subprocess.Popen([str(TOOLS / "ocireg"), "-addr", "127.0.0.1:0", "-port-file", str(port_file)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        host = f"127.0.0.1:{_wait_file(port_file)}"
        env = dict(os.environ, COSIGN_PASSWORD="record", HOME=str(work))
        _run([str(TOOLS / "cosign"), "generate-key-pair", "--output-key-prefix", str(work / "cosign")], env=env)

        images: dict[str, str] = {}
        for name in ("release", "unsigned", "vulnerable"):
            ref = f"{host}/app:{name}"
            layer = work / f"{name}.txt"
            layer.write_text(name)
            _run([str(TOOLS / "crane"), "append", "--insecure", "-f", _tar(layer, work), "-t", ref], env=env)
            digest = _run([str(TOOLS / "crane"), "digest", "--insecure", ref], env=env).strip()
            images[name] = f"{ref}@{digest}" if False else ref
            if name == "unsigned":
                continue
            findings = [] if name == "release" else [("CVE-2026-2001", "critical", "openssl"), ("CVE-2026-2003", "high", "curl")]
            preds = {SCAN: scan_predicate(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), findings), SBOM: sbom_predicate()}
            for ptype, pred in preds.items():
                _cosign_attest(work, env, host, name, digest, ptype, pred)

        config = work / "stellaops.yaml"
        config.write_text(
            json.dumps(
                {
                    "attestation": {"authorities": [{"name": "release-key", "key": {"path": str(work / "cosign.pub")}}], "requireTlog": False},
                    "registries": {"allow": [host], "insecure": [host], "allowPrivate": True},
                    "store": {"dsn": f"sqlite:///{work / 'store.db'}"},
                }
            )
        )
        port = _free_port()
        procs.append(subprocess.Popen([str(ROOT / ".venv" / "bin" / "stella"), "serve", "--plain-http", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        base = f"http://127.0.0.1:{port}"
        _wait_http(base + "/healthz")
        keys = sorted(images.values()) + [f"{host}/app@sha256:nothex"]
        answer = _post(base + "/gatekeeper/v1/verify", {"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderRequest", "request": {"keys": keys}})
        if answer.get("response", {}).get("systemError"):
            raise SystemExit(f"the provider reported a system error: {answer['response']['systemError']}")
        cases: dict[str, dict[str, Any]] = {}
        for item in answer["response"]["items"]:
            stable = json.loads(json.dumps(item).replace(host, STABLE_HOST))
            name = "recorded_" + (stable["key"].rsplit(":", 1)[-1] if "@" not in stable["key"] else "invalid_reference")
            cases[name] = stable
        return cases
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def _tar(path: Path, work: Path) -> str:
    import tarfile

    out = work / (path.name + ".tar")
    with tarfile.open(out, "w") as tar:
        tar.add(path, arcname=path.name)
    return str(out)


def _cosign_attest(work: Path, env: dict[str, str], host: str, name: str, digest: str, ptype: str, pred: dict[str, Any]) -> None:
    """cosign attest refuses non-URI types, so sign the statement as a blob and attach it (DESIGN §4)."""
    statement = {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": ptype,
        "subject": [{"name": f"{host}/app", "digest": {"sha256": digest.split(":", 1)[1]}}],
        "predicate": pred,
    }
    st = work / f"{name}-{abs(hash(ptype))}.json"
    st.write_text(json.dumps(statement))
    env_out = work / (st.name + ".dsse")
    _run(
        [str(TOOLS / "cosign"), "attest-blob", "--yes", "--key", str(work / "cosign.key"), "--statement", str(st), "--new-bundle-format=false",
         "--tlog-upload=false", "--use-signing-config=false", "--output-signature", str(env_out), "--type", ptype],
        env=env,
    )
    envelope = env_out.read_text()
    if not envelope.lstrip().startswith("{"):
        envelope = base64.b64decode(envelope).decode()
        env_out.write_text(envelope)
    _run([str(TOOLS / "cosign"), "attach", "attestation", "--attestation", str(env_out), f"{host}/app@{digest}"], env=env)


def _wait_http(url: str, timeout: float = 30.0) -> None:
    import requests

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the provider did not come up at {url}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic", action="store_true", help="write the model-built cases (no tools needed)")
    parser.add_argument("--record", action="store_true", help="record the recorded_* cases from a real provider run")
    args = parser.parse_args()
    if not args.synthetic and not args.record:
        args.synthetic = args.record = True
    if args.synthetic:
        write_cases(synthetic_cases())
    if args.record:
        write_cases(record())
    return 0


if __name__ == "__main__":
    sys.exit(main())
