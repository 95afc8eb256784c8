"""The Helm chart (deploy/helm/stellaops-attest): `helm lint`, `helm template` validated like the
kustomize output (Kubernetes and Gatekeeper schemas), its required values refused with their
message, and `helm install` into the loopback API server, whose objects serve a real provider.

helm v4 is built by `make tools`; without it (a bare `pytest` run) these tests skip, under CI they fail.
"""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fixtures.kube import KubeStack, free_port
from tests.fixtures.procs import require_tools
from tests.fixtures.tools import ROOT, TOOLS_BIN
from tests.kube.conftest import DEPLOY, ProviderPod, _run, vm

CHART = ROOT / "deploy" / "helm" / "stellaops-attest"
HELM = TOOLS_BIN / "helm"
NS = "stellaops-helm"


@pytest.fixture(autouse=True)
def _helm_built() -> None:
    require_tools("helm")  # built by `make tools`: fails under CI, skips elsewhere


@pytest.fixture(scope="module")
def values(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Values as a user writes them: certificates from make-certs.sh, a cosign public key."""
    d = tmp_path_factory.mktemp("helm")
    _run([str(DEPLOY / "scripts" / "make-certs.sh"), "--out", str(d / "site"), "--san", "IP:127.0.0.1"])
    certs = d / "site" / "certs"
    pub = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    doc = {
        "clientCA": (certs / "client-ca.crt").read_text(),
        "tls": {"cert": (certs / "tls.crt").read_text(), "key": (certs / "tls.key").read_text()},
        "trust": {"cosign.pub": pub},
        "gatekeeper": {"provider": {"name": "stellaops-helm",
                                    "caBundle": base64.b64encode((certs / "ca.crt").read_bytes()).decode()}},
    }
    (d / "values.yaml").write_text(yaml.safe_dump(doc))
    (d / "certs").symlink_to(certs)
    return d / "values.yaml"


def helm(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    home = Path(os.environ.get("TMPDIR", "/tmp")) / "stellaops-helm-home"
    base = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"), "HELM_DATA_HOME": str(home / "data")}
    proc = subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=180, check=False,
                          env={**base, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc


def rendered(values: Path, *extra: str) -> list[dict[str, Any]]:
    out = helm("template", "stellaops", str(CHART), "-n", NS, "-f", str(values), *extra).stdout
    return [o for o in yaml.safe_load_all(out) if o]


def test_chart_lints(values: Path) -> None:
    proc = helm("lint", str(CHART), "-f", str(values))
    assert "0 chart(s) failed" in proc.stdout, proc.stdout


@pytest.mark.parametrize(("drop", "message"), [
    ("clientCA", "clientCA is required"),
    ("gatekeeper", "gatekeeper.provider.caBundle is required"),
    ("tls", "tls.cert (PEM) is required"),
])
def test_required_values_are_refused_with_their_message(values: Path, tmp_path: Path, drop: str, message: str) -> None:
    doc = yaml.safe_load(values.read_text())
    del doc[drop]
    (tmp_path / "v.yaml").write_text(yaml.safe_dump(doc))
    proc = helm("template", "stellaops", str(CHART), "-f", str(tmp_path / "v.yaml"), check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_values_schema_refuses_a_bad_value(values: Path) -> None:
    proc = helm("template", "stellaops", str(CHART), "-f", str(values), "--set", "gatekeeper.provider.timeout=5",
                check=False)
    assert proc.returncode != 0 and "timeout" in proc.stderr, proc.stderr


@pytest.mark.parametrize("extra", [[], ["--set", "gatekeeper.mutation.enabled=true", "--set", "persistence.enabled=true"]])
def test_rendered_chart_validates_like_the_kustomize_output(values: Path, extra: list[str]) -> None:
    objs = rendered(values, *extra)
    problems = vm.validate_objects(objs, vm.CRDs(), target="helm template")
    assert not problems, "\n".join(map(str, problems))
    kinds = {o["kind"] for o in objs}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "NetworkPolicy", "Provider", "ServiceAccount"} <= kinds
    if extra:
        assert {"Assign", "PersistentVolumeClaim"} <= kinds


def test_pod_spec_matches_the_kustomize_base(values: Path) -> None:
    """Same hardening as deploy/kubernetes/base: security contexts, probes, mount paths."""
    chart = next(o for o in rendered(values) if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    base = yaml.safe_load((DEPLOY / "kubernetes" / "base" / "deployment.yaml").read_text())["spec"]["template"]["spec"]
    assert chart["securityContext"] == base["securityContext"]
    c, b = chart["containers"][0], base["containers"][0]
    for key in ("securityContext", "startupProbe", "livenessProbe", "readinessProbe", "ports", "env"):
        assert c[key] == b[key], key
    assert [m["mountPath"] for m in c["volumeMounts"]] == [m["mountPath"] for m in b["volumeMounts"]]


@pytest.fixture(scope="module")
def installed_chart(kube_stack: KubeStack, values: Path) -> Iterator[list[dict[str, Any]]]:
    env = {"KUBECONFIG": str(kube_stack.kubeconfig)}
    kube_stack.kubectl("create", "namespace", NS, check=False)
    port = free_port()
    helm("install", "stellaops", str(CHART), "-n", NS, "-f", str(values), "--set",
         f"gatekeeper.provider.url=https://127.0.0.1:{port}/gatekeeper/v1/verify", env=env)
    try:
        objs: list[dict[str, Any]] = []
        for kind in ("deployments", "configmaps", "secrets"):
            objs += kube_stack.get_json(kind, "-n", NS)["items"]
        yield objs
    finally:
        helm("uninstall", "stellaops", "-n", NS, env=env, check=False)


def test_chart_installs_and_its_objects_serve_a_provider(kube_stack: KubeStack, installed_chart: list[dict[str, Any]],
                                                          values: Path, tmp_path: Path) -> None:
    provider = kube_stack.get_json("providers.externaldata.gatekeeper.sh", "stellaops-helm")
    assert provider["spec"]["timeout"] == 2 and provider["spec"]["url"].startswith("https://127.0.0.1:")
    _, local = vm.materialize(installed_chart, tmp_path / "pod")
    certs = values.parent / "certs"
    pod = ProviderPod(root=tmp_path / "pod", port=int(provider["spec"]["url"].split(":")[2].split("/")[0]),
                      config=local, ca=certs / "ca.crt", client_cert=certs / "tls.crt", client_key=certs / "tls.key")
    pod.start()
    try:
        assert pod.healthy()
    finally:
        pod.stop()
