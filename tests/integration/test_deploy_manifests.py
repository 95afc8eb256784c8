"""deploy/: every kustomization builds and every object validates offline, and the manifests
keep the promises docs/install.md makes (security context, probes, mTLS mounts, timeouts, the
Provider pointing at the Service, NetworkPolicy from gatekeeper-system only, overlay shapes).

Schemas: Kubernetes from the ``kubernetes-validate`` package, CRDs vendored in
tests/data/deploy/crds/ (tests/data/deploy/SOURCE.md). The validator is scripts/validate-manifests.py, the same
command docs/install.md tells operators to run; its negative tests are here too.
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DATA = ROOT / "tests" / "data" / "deploy"
OVERLAYS = ("default", "scale-out", "cert-manager")
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


def _load_validator() -> Any:
    spec = importlib.util.spec_from_file_location("validate_manifests", ROOT / "scripts" / "validate-manifests.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["validate_manifests"] = module
    spec.loader.exec_module(module)
    return module


vm = _load_validator()


@pytest.fixture(scope="module")
def crds() -> Any:
    """Vendored CRDs plus the Constraint kinds of the generated templates (any test order)."""
    schemas = vm.CRDs()
    for template in sorted(DEPLOY.glob("gatekeeper/*/template.yaml")):
        for obj in vm.load_objects(template):
            schemas.add_template(obj)
    return schemas


def _require_kubectl() -> None:
    if not Path(KUBECTL).exists():
        pytest.fail("kubectl is required for `kubectl kustomize` (install it; see docs/install.md)")


def build(path: Path) -> list[dict[str, Any]]:
    _require_kubectl()
    return vm.build_kustomization(path)


def one(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: build(DEPLOY / "kubernetes" / "overlays" / name) for name in OVERLAYS}


@pytest.fixture(scope="module")
def provider() -> dict[str, Any]:
    return one(build(DEPLOY / "gatekeeper" / "provider"), "Provider", "stellaops")


# ----------------------------------------------------------------------- build + schemas


def test_discovery_finds_every_overlay_and_the_provider() -> None:
    targets = {str(t.relative_to(ROOT)) for t in vm.discover(DEPLOY)}
    for name in OVERLAYS:
        assert f"deploy/kubernetes/overlays/{name}" in targets
    assert "deploy/gatekeeper/provider" in targets
    assert "deploy/kubernetes/components/cert-manager" not in targets  # built through overlays
    assert not any(t.endswith("gatekeeper-values.yaml") for t in targets)


@pytest.mark.parametrize("target", vm.discover(DEPLOY), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_target_builds_and_validates(target: Path, crds: Any) -> None:
    _require_kubectl()
    result = vm.validate_target(target, crds)
    assert result.objects, f"{target}: no objects"
    assert not result.problems, "\n".join(map(str, result.problems))


def test_validate_manifests_script_exits_zero_on_the_repository() -> None:
    """The command docs/install.md gives operators: `python scripts/validate-manifests.py`."""
    _require_kubectl()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "validate-manifests.py")], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok      deploy/kubernetes/overlays/scale-out" in proc.stdout


# ------------------------------------------------------------- the validator can say no


def _deployment(rendered: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return copy.deepcopy(one(rendered["default"], "Deployment", "stellaops"))


def test_rejects_unknown_field_in_a_container(rendered: dict[str, list[dict[str, Any]]], crds: Any) -> None:
    dep = _deployment(rendered)
    dep["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFS"] = True
    problems = vm.validate_objects([dep], crds)
    assert problems and any("readOnlyRootFS" in p.message for p in problems), problems


def test_rejects_wrong_type_in_a_builtin_kind(rendered: dict[str, list[dict[str, Any]]], crds: Any) -> None:
    dep = _deployment(rendered)
    dep["spec"]["replicas"] = "two"
    problems = vm.validate_objects([dep], crds)
    assert any("replicas" in p.message for p in problems), problems


def test_rejects_provider_with_unknown_field(provider: dict[str, Any], crds: Any) -> None:
    bad = copy.deepcopy(provider)
    bad["spec"]["timeoutSeconds"] = 2
    problems = vm.validate_objects([bad], crds)
    assert any("timeoutSeconds" in p.message for p in problems), problems


def test_rejects_provider_timeout_as_string(provider: dict[str, Any], crds: Any) -> None:
    bad = copy.deepcopy(provider)
    bad["spec"]["timeout"] = "2s"
    problems = vm.validate_objects([bad], crds)
    assert any("spec.timeout" in p.message for p in problems), problems


def test_rejects_bad_metadata_on_a_custom_resource(provider: dict[str, Any], crds: Any) -> None:
    bad = copy.deepcopy(provider)
    bad["metadata"]["labels"] = {"a": 1}
    problems = vm.validate_objects([bad], crds)
    assert any(p.message.startswith("metadata.labels") for p in problems), problems


def _template_and_constraint() -> tuple[dict[str, Any], dict[str, Any]]:
    templates = sorted(DEPLOY.glob("gatekeeper/*/template.yaml"))
    assert templates, "no generated ConstraintTemplates under deploy/gatekeeper/"
    for t in templates:
        for c in sorted(t.parent.glob("samples/*/constraint.yaml")):
            return vm.load_objects(t)[0], vm.load_objects(c)[0]
    pytest.fail("no sample constraint under deploy/gatekeeper/*/samples/")


def test_constraint_validates_against_its_template(crds: Any) -> None:
    template, constraint = _template_and_constraint()
    assert vm.validate_objects([template, constraint], crds) == []


def test_rejects_constraint_parameter_of_wrong_type(crds: Any) -> None:
    template, constraint = _template_and_constraint()
    bad = copy.deepcopy(constraint)
    params = bad["spec"].setdefault("parameters", {})
    props = template["spec"]["crd"]["spec"]["validation"]["openAPIV3Schema"]["properties"]
    name, schema = next((k, v) for k, v in props.items() if v.get("type") == "array")
    params[name] = "not-a-list"
    problems = vm.validate_objects([template, bad], crds)
    assert any(f"spec.parameters.{name}" in p.message for p in problems), problems


def test_rejects_constraint_with_misspelled_match_field(crds: Any) -> None:
    template, constraint = _template_and_constraint()
    bad = copy.deepcopy(constraint)
    bad["spec"]["match"]["excludeNamespaces"] = ["kube-system"]  # the field is excludedNamespaces
    problems = vm.validate_objects([template, bad], crds)
    assert any("excludeNamespaces" in p.message for p in problems), problems


def test_rejects_constraint_without_its_template() -> None:
    _, constraint = _template_and_constraint()
    problems = vm.validate_objects([constraint], vm.CRDs())
    assert any("no ConstraintTemplate defines" in p.message for p in problems), problems


def test_rejects_template_with_unknown_field(crds: Any) -> None:
    template, _ = _template_and_constraint()
    bad = copy.deepcopy(template)
    bad["spec"]["targets"][0]["regoo"] = "package x"
    problems = vm.validate_objects([bad], crds)
    assert any("regoo" in p.message for p in problems), problems


def test_rejects_template_named_unlike_its_kind(crds: Any) -> None:
    template, _ = _template_and_constraint()
    bad = copy.deepcopy(template)
    bad["metadata"]["name"] = "stellaops-" + bad["metadata"]["name"]
    problems = vm.validate_objects([bad], crds)
    assert any("the Constraint kind in lower case" in p.message for p in problems), problems


def test_kyverno_cluster_policy_validates_and_a_typo_does_not(crds: Any) -> None:
    policy = vm.load_objects(DATA / "kyverno-require-scan-attestation.yaml")[0]
    assert vm.validate_objects([policy], crds) == []
    bad = copy.deepcopy(policy)
    bad["spec"]["rules"][0]["verifyImage"] = bad["spec"]["rules"][0].pop("verifyImages")
    problems = vm.validate_objects([bad], crds)
    assert any("verifyImage" in p.message for p in problems), problems


def test_rejects_certificate_with_misspelled_field(rendered: dict[str, list[dict[str, Any]]], crds: Any) -> None:
    cert = copy.deepcopy(one(rendered["cert-manager"], "Certificate", "stellaops-tls"))
    cert["spec"]["dnsName"] = cert["spec"].pop("dnsNames")
    problems = vm.validate_objects([cert], crds)
    assert any("dnsName" in p.message for p in problems), problems


def test_rejects_custom_resource_without_a_vendored_crd(crds: Any) -> None:
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    problems = vm.validate_objects([obj], crds)
    assert any("no schema for example.com/v1 Widget" in p.message for p in problems), problems


def test_reports_a_kustomization_that_does_not_build(tmp_path: Path, crds: Any) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources:\n  - missing.yaml\n")
    result = vm.validate_target(tmp_path, crds)
    assert result.problems and "kubectl kustomize failed" in result.problems[0].message


# ------------------------------------------------------------------ what the manifests promise


def _pod(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objs, "Deployment", "stellaops")["spec"]["template"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pod_is_locked_down(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    pod = _pod(rendered[overlay])
    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert "add" not in sc["capabilities"]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    # Writable: the store and /tmp only; every other mount is read-only.
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/var/lib/stellaops", "/tmp"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_use_the_image_healthcheck(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    (container,) = _pod(rendered[overlay])["spec"]["containers"]
    probe_cmd = ["python", "/opt/stellaops/libexec/healthcheck.py"]
    assert container["livenessProbe"]["exec"]["command"] == probe_cmd + ["/healthz"]
    assert container["readinessProbe"]["exec"]["command"] == probe_cmd + ["/readyz"]
    assert container["startupProbe"]["exec"]["command"] == probe_cmd + ["/healthz"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY deploy/scripts/healthcheck.py /opt/stellaops/libexec/healthcheck.py" in dockerfile


def test_provider_calls_the_service_with_the_documented_timeouts(
    provider: dict[str, Any], rendered: dict[str, list[dict[str, Any]]]
) -> None:
    url = urlsplit(provider["spec"]["url"])
    assert url.scheme == "https"
    assert url.path == "/gatekeeper/v1/verify"
    service = one(rendered["default"], "Service", "stellaops")
    assert url.hostname == f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
    (port,) = service["spec"]["ports"]
    assert url.port == port["port"]
    (container,) = _pod(rendered["default"])["spec"]["containers"]
    assert port["targetPort"] in [p["name"] for p in container["ports"]]
    # timeout (no default in Gatekeeper!) < webhook timeout; provider deadline < timeout.
    values = yaml.safe_load((DEPLOY / "gatekeeper" / "provider" / "gatekeeper-values.yaml").read_text())
    config = yaml.safe_load((DEPLOY / "kubernetes" / "base" / "stellaops.yaml").read_text())
    timeout = provider["spec"]["timeout"]
    assert isinstance(timeout, int) and 1 <= timeout < values["validatingWebhookTimeoutSeconds"]
    assert config["server"]["deadlineSeconds"] < timeout
    assert config["server"]["port"] == container["ports"][0]["containerPort"]


def test_shipped_provider_placeholder_is_not_a_ca_bundle(provider: dict[str, Any]) -> None:
    """Applied unfilled, Gatekeeper must reject it (it base64-decodes caBundle) rather than
    trust something: the placeholder is deliberately not base64."""
    with pytest.raises(ValueError):
        base64.b64decode(provider["spec"]["caBundle"], validate=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_networkpolicy_admits_only_gatekeeper(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    objs = rendered[overlay]
    np = one(objs, "NetworkPolicy", "stellaops")
    pod_labels = _pod(objs)["metadata"]["labels"]
    assert np["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert set(np["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    (rule,) = np["spec"]["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gatekeeper-system"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8443}]
    egress_ports = {p["port"] for r in np["spec"]["egress"] for p in r.get("ports", [])}
    assert {53, 443} <= egress_ports
    for r in np["spec"]["egress"]:
        for peer in r.get("to", []):
            if peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0":
                assert "169.254.0.0/16" in peer["ipBlock"]["except"]  # no cloud metadata


def test_default_overlay_is_one_replica_on_a_volume(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objs = rendered["default"]
    dep = one(objs, "Deployment", "stellaops")
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    data = next(v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "data")
    assert set(data) == {"name", "persistentVolumeClaim"}
    one(objs, "PersistentVolumeClaim", data["persistentVolumeClaim"]["claimName"])
    assert not [o for o in objs if o["kind"] == "PodDisruptionBudget"]  # would block drains


def test_scale_out_overlay_shares_store_and_cache(rendered: dict[str, list[dict[str, Any]]]) -> None:
    from stellaops.config import parse_config

    objs = rendered["scale-out"]
    dep = one(objs, "Deployment", "stellaops")
    assert "replicas" not in dep["spec"]  # the HPA owns it; apply must not reset it
    hpa = one(objs, "HorizontalPodAutoscaler", "stellaops")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "stellaops"}
    assert hpa["spec"]["minReplicas"] >= 3
    pdb = one(objs, "PodDisruptionBudget", "stellaops")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["STELLAOPS_STORE__DSN"]["valueFrom"]["secretKeyRef"] == {"name": "stellaops-postgres", "key": "dsn"}
    assert env["STELLAOPS_CACHE__REDISURL"]["valueFrom"]["secretKeyRef"] == {"name": "stellaops-redis", "key": "url"}
    # Those names are overrides the provider's loader understands (no trust files needed here).
    cfg = parse_config(
        "{}",
        env={"STELLAOPS_STORE__DSN": "postgresql://u:p@db:5432/stellaops", "STELLAOPS_CACHE__REDISURL": "redis://cache:6379/0"},
    )
    assert cfg.store.dsn == "postgresql://u:p@db:5432/stellaops"
    assert cfg.cache.redis_url == "redis://cache:6379/0"
    np = one(objs, "NetworkPolicy", "stellaops")
    assert {5432, 6379} <= {p["port"] for r in np["spec"]["egress"] for p in r.get("ports", [])}


def test_cert_manager_certificate_matches_the_provider_url(
    rendered: dict[str, list[dict[str, Any]]], provider: dict[str, Any]
) -> None:
    objs = rendered["cert-manager"]
    cert = one(objs, "Certificate", "stellaops-tls")
    issuer = one(objs, "Issuer", cert["spec"]["issuerRef"]["name"])
    assert issuer["spec"]["ca"]["secretName"] == "stellaops-ca"
    assert urlsplit(provider["spec"]["url"]).hostname in cert["spec"]["dnsNames"]
    assert {"server auth", "client auth"} <= set(cert["spec"]["usages"])
    tls_volume = next(v for v in _pod(objs)["spec"]["volumes"] if v["name"] == "tls")
    assert tls_volume["secret"]["secretName"] == cert["spec"]["secretName"]
    assert cert["metadata"]["namespace"] == "stellaops-system"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_paths_are_all_mounted(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    objs = rendered[overlay]
    (container,) = _pod(objs)["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    config_path = env["STELLAOPS_CONFIG"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert str(Path(config_path).parent) in mounts
    configs = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("stellaops-config")]
    (config,) = configs
    doc = yaml.safe_load(config["data"][Path(config_path).name])
    paths = [
        doc["attestation"]["authorities"][0]["key"]["path"],
        doc["registries"]["auth"]["dockerConfig"],
        doc["server"]["tls"]["cert"],
        doc["server"]["tls"]["key"],
        doc["server"]["tls"]["clientCA"],
        *[t["tokenFile"] for t in doc["importApi"]["tokens"]],
        doc["store"]["dsn"][len("sqlite://") :],
    ]
    for p in paths:
        assert any(p.startswith(m + "/") for m in mounts), f"{p} is not under a volume mount"


def test_namespace_is_exempted_consistently_with_the_gatekeeper_values(rendered: dict[str, list[dict[str, Any]]]) -> None:
    ns = one(rendered["default"], "Namespace", "stellaops-system")
    assert "admission.gatekeeper.sh/ignore" in ns["metadata"]["labels"]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    values = yaml.safe_load((DEPLOY / "gatekeeper" / "provider" / "gatekeeper-values.yaml").read_text())
    assert "stellaops-system" in values["controllerManager"]["exemptNamespaces"]
    assert values["enableExternalData"] is True
    assert values["disabledBuiltins"] == ["http.send"]


def _key_paths(doc: Any, prefix: str = "") -> list[str]:
    if not isinstance(doc, dict):
        return [prefix]
    out: list[str] = []
    for k, v in doc.items():
        out.extend(_key_paths(v, f"{prefix}.{k}" if prefix else k))
    return out


def test_gatekeeper_values_are_keys_of_the_gatekeeper_chart() -> None:
    """A misspelt Helm value is silently ignored by Helm: check ours against the chart's own
    values.yaml (gatekeeper v3.23.1, vendored; tests/data/deploy/SOURCE.md)."""
    ours = yaml.safe_load((DEPLOY / "gatekeeper" / "provider" / "gatekeeper-values.yaml").read_text())
    chart = yaml.safe_load((DATA / "gatekeeper-chart-values.yaml").read_text())
    for path in _key_paths(ours):
        node: Any = chart
        for part in path.split("."):
            assert isinstance(node, dict) and part in node, f"{path}: not a value of the Gatekeeper chart"
            node = node[part]
    assert chart["externaldataProviderResponseCacheTTL"] == "3m"  # the default we document
    assert chart["validatingWebhookTimeoutSeconds"] == 3
