"""The generated Gatekeeper templates, pipeline bundle and capabilities file are up to date
(scripts/generate.py --check), and each template embeds the library as Gatekeeper needs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((ROOT / "deploy" / "gatekeeper").glob("*/template.yaml"))


def test_generated_files_are_up_to_date() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), "--check"], capture_output=True, check=False, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_policy_has_a_template() -> None:
    policies = {p.parent.name for p in (ROOT / "rego" / "policies").glob("*/constraint.tmpl")}
    assert policies and policies == {t.parent.name for t in TEMPLATES}


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.parent.name)
def test_template_is_rego_v1_with_the_library_as_libs(template: Path) -> None:
    doc = yaml.safe_load(template.read_text())
    assert doc["apiVersion"] == "templates.gatekeeper.sh/v1" and doc["kind"] == "ConstraintTemplate"
    assert doc["metadata"]["name"] == doc["spec"]["crd"]["spec"]["names"]["kind"].lower()
    (target,) = doc["spec"]["targets"]
    assert target["target"] == "admission.k8s.gatekeeper.sh"
    assert "rego" not in target, "the legacy rego field is v0 only and would take precedence over code"
    (code,) = target["code"]
    assert code["engine"] == "Rego" and code["source"]["version"] == "v1"
    sources = [code["source"]["rego"], *code["source"]["libs"]]
    assert f"package {doc['metadata']['name']}\n" in code["source"]["rego"]
    imports = {line.strip() for s in sources for line in s.splitlines() if line.strip().startswith("import ")}
    assert imports == {"import data.lib.stellaops"} | ({"import data.lib.stellaops.transport"}), imports  # never rego.v1
    lib_packages = {line for s in code["source"]["libs"] for line in s.splitlines() if line.startswith("package ")}
    assert lib_packages == {"package lib.stellaops", "package lib.stellaops.transport"}
    assert any("external_data(" in s for s in code["source"]["libs"]) and not any("http.send" in s for s in sources)
    schema = doc["spec"]["crd"]["spec"]["validation"]["openAPIV3Schema"]
    assert schema["type"] == "object" and schema["properties"]
    assert "x-stellaops-include" not in template.read_text()
