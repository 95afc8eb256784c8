#!/usr/bin/env python3
"""`make demo`: the main job end to end, on loopback, with the real parts.

registry (ocireg, referrers API on) → crane pushes two generated images → `stella key generate`
→ `stella attest sign` → `stella attest attach` → `stella serve` (gunicorn) → a Gatekeeper
ProviderRequest → the seed's OPA policy with `opa eval` through `http.send` → allow and deny.
Everything started here is stopped at the end, whatever happens.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".tools" / "bin"
VENV_BIN = Path(sys.executable).parent
STELLA = str(VENV_BIN / "stella")
SCAN_TYPE = "stellaops.io/predicates/scan-result@v1"
PASSWORD = "demo-password"


def say(msg: str) -> None:
    print(f"\033[1m==> {msg}\033[0m", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(cmd: list[str], *, env: dict[str, str] | None = None, capture: bool = True, check: bool = True) -> subprocess.CompletedProcess[str]:
    shown = " ".join(c if " " not in c else repr(c) for c in cmd)
    print(f"    $ {shown.replace(str(ROOT) + '/', '')}", flush=True)
    proc = subprocess.run(cmd, env={**os.environ, **(env or {})}, text=True, capture_output=capture, timeout=300)
    if check and proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"demo: command failed with exit code {proc.returncode}: {shown}")
    return proc


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)  # noqa: S310 - loopback only
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"demo: {url} did not come up within {timeout:.0f}s")


def layer_tar(text: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = text.encode()
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="stellaops-demo-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        return _demo(work, procs)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(work, ignore_errors=True)
        print("==> stopped everything the demo started", flush=True)


def _demo(work: Path, procs: list[subprocess.Popen[bytes]]) -> int:
    say("1. local OCI registry on loopback (referrers API on)")
    port_file = work / "registry.port"
    procs.append(subprocess.Popen([str(BIN / "ocireg"), "-addr", "127.0.0.1:0", "-port-file", str(port_file)], stdout=subprocess.DEVNULL))
    for _ in range(200):
        if port_file.exists() and port_file.read_text().strip():
            break
        time.sleep(0.05)
    registry = f"127.0.0.1:{port_file.read_text().strip()}"
    wait_http(f"http://{registry}/v2/")
    print(f"    registry at {registry}")

    say("2. push two small generated images with crane (no network)")
    images = {}
    for name in ("app", "unsigned"):
        tar = work / f"{name}.tar"
        tar.write_bytes(layer_tar(f"hello from demo/{name} {time.time()}\n"))
        ref = f"{registry}/demo/{name}:v1.0.0"
        run([str(BIN / "crane"), "append", "-f", str(tar), "-t", ref])
        digest = run([str(BIN / "crane"), "digest", ref]).stdout.strip()
        images[name] = ref
        print(f"    {ref} = {digest}")
    signed, unsigned = images["app"], images["unsigned"]

    say("3. generate a cosign-format key pair")
    env = {"COSIGN_PASSWORD": PASSWORD}
    run([STELLA, "key", "generate", "--output-key-prefix", str(work / "cosign")], env=env)

    say("4. sign an in-toto Statement v1 (scan-result@v1) for the image digest")
    predicate = {
        "scanner": {"name": "stellaops-scanner", "version": "1.4.2"},
        "scanId": "scan-0001",
        "scannedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "findings": [
            {"id": "CVE-2026-0001", "severity": "low", "package": {"name": "zlib", "version": "1.3", "purl": "pkg:deb/debian/zlib@1.3"}, "fixedVersion": "1.3.1"}
        ],
        "summary": {"critical": 0, "high": 0, "medium": 0, "low": 1, "unknown": 0},
    }
    (work / "scan.json").write_text(json.dumps(predicate, indent=2))
    envelope = run(
        [STELLA, "attest", "sign", "--predicate", str(work / "scan.json"), "--type", SCAN_TYPE, "--image", signed, "--key", str(work / "cosign.key")],
        env=env,
    ).stdout
    (work / "scan.dsse.json").write_text(envelope)
    print(f"    envelope: {len(envelope)} bytes, payloadType {json.loads(envelope)['payloadType']}")

    say("5. attach it to the image (sigstore bundle referrer + cosign .att layer)")
    out = run(
        [STELLA, "attest", "attach", "--image", signed, "--attestation", str(work / "scan.dsse.json"), "--annotation", "org.example/team=security", "--scan-id", "scan-0001"]
    ).stdout
    print("    " + out.strip().replace("\n", "\n    "))
    print("    " + run([STELLA, "attest", "oci-list", "--image", signed]).stdout.strip().replace("\n", "\n    "))

    say("6. start the provider under gunicorn (stella serve)")
    config = work / "stellaops.yaml"
    config.write_text(
        "attestation:\n"
        "  authorities:\n"
        "    - name: release-key\n"
        f"      key: {{path: {work / 'cosign.pub'}}}\n"
        "  requireTlog: false   # offline demo key: no Rekor (cosign --insecure-ignore-tlog)\n"
        "registries:\n"
        f"  allow: ['{registry}']\n"
        "  allowPrivate: true   # the demo registry is on loopback\n"
        f"store: {{dsn: 'sqlite:///{work / 'store.db'}'}}\n"
        "logging: {level: WARNING}\n"
    )
    run([STELLA, "config", "check", str(config)])
    port = free_port()
    procs.append(subprocess.Popen([STELLA, "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--plain-http"]))
    provider = f"http://127.0.0.1:{port}"
    wait_http(f"{provider}/healthz")

    say("7. Gatekeeper's ProviderRequest for both images")
    body = json.dumps({"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderRequest", "request": {"keys": [signed, unsigned]}}).encode()
    req = urllib.request.Request(f"{provider}/gatekeeper/v1/verify", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback only
        answer = json.load(resp)
    for item in answer["response"]["items"]:
        v = item["value"] or {}
        atts = v.get("attestations", [])
        ok = [a for a in atts if a["verified"]]
        signer = ok[0]["signers"][0]["authority"] if ok else "-"
        reasons = [e["reason"] for e in v.get("errors", [])] + [e["reason"] for a in atts for e in a["errors"]]
        print(f"    {item['key']}: verified={len(ok)} of {len(atts)} attestation(s), signer={signer} {reasons or ''}")
    print(f"    systemError: {answer['response']['systemError']!r}")

    say("8. the seed's OPA policy with opa eval (http.send to the provider)")
    seed, pipeline = ROOT / "rego" / "bundles" / "seed", ROOT / "rego" / "bundles" / "pipeline"
    verdicts = {}
    for name, image in (("signed", signed), ("unsigned", unsigned)):
        pod = {"kind": "Pod", "metadata": {"name": f"{name}-pod"}, "spec": {"containers": [{"name": "app", "image": image}]}}
        (work / f"{name}-pod.json").write_text(json.dumps(pod))
        res = run(
            [
                str(BIN / "opa"), "eval", "--format", "json", "--bundle", str(seed), "--bundle", str(pipeline),
                "--input", str(work / f"{name}-pod.json"), "data.stellaops.attestation.deny",
            ],
            env={"STELLAOPS_PROVIDER_URL": provider},
        )
        result = json.loads(res.stdout)["result"][0]["expressions"][0]["value"]
        verdicts[name] = result
        if result:
            for msg in result:
                print(f"    DENY  {name}-pod: {msg}")
        else:
            print(f"    ALLOW {name}-pod: {image}")
    if verdicts["signed"] or not verdicts["unsigned"]:
        print("demo: unexpected decision (the signed Pod must be allowed and the unsigned one denied)", file=sys.stderr)
        return 1
    say("done: the signed image is allowed, the unsigned image is denied")
    return 0


if __name__ == "__main__":
    sys.exit(main())
