"""Certificate rotation of the provider while Gatekeeper keeps calling it: the serving
certificate renewed as docs/install.md says (`make-certs.sh --site --ca-cert … --ca-key … --force`),
its files swapped under the running provider as the kubelet updates a mounted Secret; every
admission during and after the swap is answered, and the provider presents the new certificate."""

from __future__ import annotations

import os
import threading
import time
import uuid

import yaml

from tests.kube.conftest import OFFLINE, DEPLOY, Installed, _run, pod


def _renewed_tls(w: Installed) -> dict[str, bytes]:
    _run([str(DEPLOY / "scripts" / "make-certs.sh"), "--site", "--out", str(w.site),
          "--gatekeeper-ca", str(w.work / "gatekeeper-ca.crt"), "--config", str(w.work / "stellaops.yaml"),
          "--ca-cert", str(w.site / "certs" / "ca.crt"), "--ca-key", str(w.site / "certs" / "ca.key"), "--force",
          "--san", "IP:127.0.0.1"])  # fmt: skip
    import base64

    docs = list(yaml.safe_load_all(w.kube.kubectl("kustomize", str(w.overlay)).stdout))
    secret = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"].startswith("stellaops-tls"))
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}


def test_rotation_while_gatekeeper_calls(installed: Installed) -> None:
    w = installed
    ns = w.namespace("rotation")
    w.sample_constraint("requireattestations", ns, parameters=OFFLINE)
    before = w.provider.serving_serial()
    results: list[tuple[str, int, str]] = []
    stop = threading.Event()

    def call() -> None:
        while not stop.is_set():
            ref = w.push_tag("cosign-bundle", f"r-{uuid.uuid4().hex[:10]}")  # never cached
            got = w.create(pod(f"p-{uuid.uuid4().hex[:8]}", ref), ns)
            results.append((ref, got.status, got.error))

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    try:
        time.sleep(3)
        files = _renewed_tls(w)
        tls = w.provider.root / "etc" / "stellaops" / "tls"
        for name in ("tls.key", "tls.crt"):  # each file replaced atomically, as the kubelet swaps ..data
            tmp = tls / f".{name}.new"
            tmp.write_bytes(files[name])
            os.replace(tmp, tls / name)
        end = time.monotonic() + 60
        while time.monotonic() < end and w.provider.serving_serial() == before:
            time.sleep(0.5)
        after = len(results)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(results) < after + 3:
            time.sleep(0.5)
    finally:
        stop.set()
        caller.join(timeout=90)
    assert w.provider.serving_serial() != before, "the provider still presents the old certificate"
    assert len(results) >= after + 3, results
    failed = [r for r in results if r[1] != 201]
    assert not failed, f"{len(failed)} of {len(results)} admissions failed during rotation: {failed[:3]}"
