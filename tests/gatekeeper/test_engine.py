"""Gatekeeper v3.23.1's engine accepts what we ship and refuses what Gatekeeper refuses.

The harness loads templates the way Gatekeeper's controller does (conversion with Gatekeeper's
scheme, CreateCRD as the admission webhook checks it, AddTemplate), so an error here is the
error a cluster would put in the template's status. The negative cases prove the harness really
enforces Gatekeeper's rules (a harness that accepted everything would make the positive cases
worthless).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.gatekeeper import (
    DEPLOY_DIR,
    TESTDATA,
    HarnessRun,
    library_sources,
    provider_yaml,
    render_template,
)

TEST_POLICY = TESTDATA / "k8sstellaopsattested"
SHIPPED = sorted(DEPLOY_DIR.glob("*/template.yaml"))


def test_policy_template() -> str:
    return render_template(
        "K8sStellaopsAttested",
        (TEST_POLICY / "src.rego").read_text(),
        parameters=yaml.safe_load((TEST_POLICY / "parameters.yaml").read_text()),
    )


test_policy_template.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def _load(harness_factory: Any, **kw: Any) -> HarnessRun:
    return harness_factory(**kw)


@pytest.mark.skipif(not SHIPPED, reason="no deploy/gatekeeper/*/template.yaml generated yet (make generate)")
@pytest.mark.parametrize("template", SHIPPED, ids=[p.parent.name for p in SHIPPED])
def test_success_shipped_template_accepted_by_gatekeeper(harness_factory: Any, template: Path) -> None:
    run = _load(harness_factory, templates=[template])
    assert run.setup_error is None, f"Gatekeeper v3.23.1 rejects {template}: {run.setup_error}"
    name = yaml.safe_load(template.read_text())["metadata"]["name"]
    assert run.loaded == {"templates": [name], "constraints": [], "providers": []}


@pytest.mark.skipif(not SHIPPED, reason="no deploy/gatekeeper/*/template.yaml generated yet (make generate)")
def test_success_all_shipped_templates_load_together(harness_factory: Any) -> None:
    run = _load(harness_factory, templates=list(SHIPPED))
    assert run.setup_error is None, run.setup_error
    assert len(run.loaded["templates"]) == len(SHIPPED)  # type: ignore[index]


@pytest.mark.skipif(not SHIPPED, reason="no deploy/gatekeeper/*/template.yaml generated yet (make generate)")
@pytest.mark.parametrize("template", SHIPPED, ids=[p.parent.name for p in SHIPPED])
def test_success_shipped_template_is_rego_v1_with_the_library(template: Path) -> None:
    doc = yaml.safe_load(template.read_text())
    code = [c for t in doc["spec"]["targets"] for c in t.get("code", []) if c.get("engine") == "Rego"]
    assert code, f"{template}: no code[engine: Rego]"
    source = code[0]["source"]
    assert source.get("version") == "v1", f"{template}: without source.version v1 Gatekeeper parses Rego v0"
    assert any("package lib.stellaops\n" in lib for lib in source["libs"]), f"{template}: the core library is not inlined"
    for target in doc["spec"]["targets"]:
        assert "rego" not in target, f"{template}: the legacy targets[].rego field (v0 only) takes precedence over code"


def test_success_test_policy_template_and_constraint_load(harness_factory: Any, gk_tls: Any) -> None:
    run = _load(
        harness_factory,
        templates=[test_policy_template()],
        constraints=[(TEST_POLICY / "constraint.yaml").read_text()],
        providers=[provider_yaml("https://127.0.0.1:9/verify", gk_tls.ca_pem)],
    )
    assert run.setup_error is None, run.setup_error
    assert run.loaded == {
        "templates": ["k8sstellaopsattested"],
        "constraints": ["K8sStellaopsAttested/must-be-attested"],
        "providers": ["stellaops"],
    }


_VIOLATION = 'violation contains {"msg": "x"} if input.review.object.kind == "Pod"\n'


@pytest.mark.parametrize(
    ("name", "rego", "libs", "version", "expected"),
    [
        ("import-rego-v1", "package t\n\nimport rego.v1\n\n" + _VIOLATION, None, "v1", 'bad import: "rego.v1"'),
        ("import-rego-v1-in-lib", "package t\n\n" + _VIOLATION,
         ["package lib.helper\n\nimport rego.v1\n\nx := 1\n"], "v1", 'bad import: "rego.v1"'),
        ("lib-outside-lib", "package t\n\n" + _VIOLATION, ["package stellaops\n\nx := 1\n"], "v1", "path data.stellaops not found in lib prefixes"),
        ("lib-is-lib-itself", "package t\n\n" + _VIOLATION, ["package lib\n\nx := 1\n"], "v1", "path data.lib not found in lib prefixes"),
        ("import-data-outside-lib", "package t\n\nimport data.stellaops\n\n" + _VIOLATION, [], "v1", 'bad import: "data.stellaops"'),
        ("v1-syntax-parsed-as-v0", "package t\n\n" + _VIOLATION, [], None, "rego_parse_error"),
        ("no-violation-rule", "package t\n\ndeny contains 1 if true\n", [], "v1", "missing required rules: [violation]"),
    ],
    ids=lambda v: v if isinstance(v, str) and "\n" not in v and len(v) < 40 else "",
)
def test_fail_template_refused_as_gatekeeper_refuses_it(
    harness_factory: Any, name: str, rego: str, libs: list[str] | None, version: str | None, expected: str
) -> None:
    run = _load(harness_factory, templates=[render_template("K8sT" + name.replace("-", ""), rego, libs=libs, version=version)])
    assert run.loaded is None, f"{name}: Gatekeeper's engine accepted a template it must refuse"
    assert run.setup_error is not None and run.setup_error["stage"] == "template"
    assert expected in run.setup_error["message"], run.setup_error
    assert run.close() == 2


def test_success_library_is_accepted_without_a_policy_using_it(harness_factory: Any) -> None:
    """The library alone (core + gatekeeper transport) compiles in Gatekeeper: no import rego.v1, libs under lib."""
    run = _load(harness_factory, templates=[render_template("K8sLibOnly", "package t\n\n" + _VIOLATION, libs=library_sources())])
    assert run.setup_error is None, run.setup_error


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"url": "http://127.0.0.1:9/verify", "timeout": 2, "caBundle": "eA=="}, "only HTTPS scheme is supported"),
        ({"url": "https://127.0.0.1:9/verify", "timeout": 2}, "caBundle should be set"),
        ({"url": "https://127.0.0.1:9/verify", "timeout": 2, "caBundle": "bm90IGEgcGVt"}, "caBundle"),
    ],
    ids=["plain-http", "no-cabundle", "cabundle-not-pem"],
)
def test_fail_provider_resource_refused(harness_factory: Any, spec: dict[str, Any], expected: str) -> None:
    doc = {"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "Provider", "metadata": {"name": "stellaops"}, "spec": spec}
    run = _load(harness_factory, providers=[yaml.safe_dump(doc)])
    assert run.loaded is None
    assert run.setup_error is not None and run.setup_error["stage"] == "provider"
    assert expected in run.setup_error["message"], run.setup_error


def test_fail_negative_cache_ttl_refused(harness_factory: Any) -> None:
    run = _load(harness_factory, cache_ttl="-1s")
    assert run.setup_error is not None and run.setup_error["stage"] == "flags"
    assert "external-data-provider-response-cache-ttl" in run.setup_error["message"]


def test_fail_constraint_with_unknown_parameter_refused(harness_factory: Any) -> None:
    constraint = yaml.safe_load((TEST_POLICY / "constraint.yaml").read_text())
    constraint["spec"]["parameters"]["predicateTypo"] = "x"
    run = _load(harness_factory, templates=[test_policy_template()], constraints=[yaml.safe_dump(constraint)])
    assert run.setup_error is not None and run.setup_error["stage"] == "constraint"
    assert "predicateTypo" in run.setup_error["message"], run.setup_error


_LABEL_POLICY = """package k8sneedslabel

violation contains {"msg": msg} if {
	not input.review.object.metadata.labels.team
	msg := sprintf("%s <%s> has no team label", [input.review.kind.kind, input.review.object.metadata.name])
}
"""


def _label_constraint(action: str | None, name: str = "needs-team") -> str:
    spec: dict[str, Any] = {"match": {"kinds": [{"apiGroups": ["", "apps"], "kinds": ["Pod", "Deployment"]}]}}
    if action is not None:
        spec["enforcementAction"] = action
    return yaml.safe_dump({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sNeedsLabel",
                           "metadata": {"name": name}, "spec": spec})


@pytest.mark.parametrize(
    ("action", "allowed", "denials", "warnings"),
    [(None, False, 1, 0), ("deny", False, 1, 0), ("warn", True, 0, 1), ("dryrun", True, 0, 0)],
    ids=["default", "deny", "warn", "dryrun"],
)
def test_success_enforcement_actions_as_the_webhook_applies_them(
    harness_factory: Any, action: str | None, allowed: bool, denials: int, warnings: int
) -> None:
    run = _load(harness_factory, templates=[render_template("K8sNeedsLabel", _LABEL_POLICY, libs=[])],
                constraints=[_label_constraint(action)])
    assert run.setup_error is None, run.setup_error
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}}
    result = run.review(bad)
    assert result["allowed"] is allowed and len(result["denials"]) == denials and len(result["warnings"]) == warnings, result
    assert len(result["violations"]) == 1
    assert result["violations"][0]["message"] == "Pod <p> has no team label"
    good = {**bad, "metadata": {"name": "q", "labels": {"team": "a"}}}
    assert run.review(good)["violations"] == []


def test_fail_unknown_enforcement_action_refused(harness_factory: Any) -> None:
    run = _load(harness_factory, templates=[render_template("K8sNeedsLabel", _LABEL_POLICY, libs=[])],
                constraints=[_label_constraint("block")])
    assert run.setup_error is not None and run.setup_error["stage"] == "constraint", run.setup_error


def test_success_object_files_reviewed_without_stdin(gkharness: str, tmp_path: Path) -> None:
    """`-object FILE` mode: each YAML document is one review; Deployments are matched by apps/v1 kind."""
    import json
    import subprocess

    (tmp_path / "t.yaml").write_text(render_template("K8sNeedsLabel", _LABEL_POLICY, libs=[]))
    (tmp_path / "c.yaml").write_text(_label_constraint(None))
    (tmp_path / "objs.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: prod}\n"
        "spec: {selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}, spec: {containers: []}}}\n"
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: ok, labels: {team: x}}\nspec: {containers: []}\n"
    )
    proc = subprocess.run([gkharness, "-template", str(tmp_path / "t.yaml"), "-constraint", str(tmp_path / "c.yaml"),
                           "-object", str(tmp_path / "objs.yaml")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    docs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert docs[0]["loaded"]["constraints"] == ["K8sNeedsLabel/needs-team"]
    assert docs[1]["object"] == "Deployment/prod/web" and docs[1]["allowed"] is False
    assert docs[1]["message"] == "[needs-team] Deployment <web> has no team label"
    assert docs[2]["object"] == "Pod/default/ok" and docs[2]["allowed"] is True
