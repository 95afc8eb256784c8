"""Every policy's samples, evaluated as gator would if it could call external_data.

gator has no external_data, so this runs the real `opa` on the code of the *generated*
ConstraintTemplate (deploy/gatekeeper/<policy>/template.yaml: its rego and libs, as Gatekeeper
compiles them, Rego v1), with Gatekeeper's capabilities file, external_data replaced by the
provider stub fed with recorded verdicts (rego/testdata), and the time fixed. Each suite.yaml
case asserts `violations: yes|no`, as gatekeeper-library's suites do.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.tools import tool

ROOT = Path(__file__).resolve().parents[2]
CAPS = ROOT / "rego" / "build" / "capabilities.json"
TESTDATA = ROOT / "rego" / "testdata"
NOW_NS = 1795608000000000000  # 2026-11-25T12:00:00Z, the samples' "now"


def _cases() -> list[Any]:
    out = []
    for suite_path in sorted((ROOT / "rego" / "policies").glob("*/suite.yaml")):
        suite = yaml.safe_load(suite_path.read_text())
        for test in suite["tests"]:
            for case in test["cases"]:
                out.append(
                    pytest.param(
                        suite_path.parent,
                        (suite_path.parent / test["template"]).resolve(),
                        suite_path.parent / test["constraint"],
                        suite_path.parent / case["object"],
                        case["assertions"],
                        id=f"{suite_path.parent.name}/{test['name']}/{case['name']}",
                    )
                )
    return out


def evaluate(template: Path, constraint: Path, obj: Path, workdir: Path, *, mock: str = "data.stub.external_data") -> list[str]:
    """The violation messages of one object under one constraint, via the template's own code."""
    doc = yaml.safe_load(template.read_text())
    source = doc["spec"]["targets"][0]["code"][0]["source"]
    assert source["version"] == "v1"
    code = workdir / "template"
    code.mkdir()
    (code / "src.rego").write_text(source["rego"])
    for i, lib in enumerate(source["libs"]):
        (code / f"lib{i}.rego").write_text(lib)
    resource = yaml.safe_load(obj.read_text())
    parameters = yaml.safe_load(constraint.read_text())["spec"].get("parameters", {})
    (workdir / "input.json").write_text(json.dumps({"review": {"kind": {"kind": resource["kind"]}, "object": resource}, "parameters": parameters}))
    package = doc["metadata"]["name"]
    query = f"msgs := {{v.msg | some v in data.{package}.violation}} with external_data as {mock} with time.now_ns as {NOW_NS}"
    proc = subprocess.run(
        [tool("opa"), "eval", "--format", "json", "--capabilities", str(CAPS), "--v1-compatible",
         "-d", str(code), "-d", str(TESTDATA), "--input", str(workdir / "input.json"), query],
        capture_output=True, check=False, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    result = json.loads(proc.stdout)["result"]
    return sorted(result[0]["bindings"]["msgs"])


@pytest.mark.parametrize(("policy", "template", "constraint", "obj", "assertions"), _cases())
def test_sample(policy: Path, template: Path, constraint: Path, obj: Path, assertions: list[dict[str, Any]], tmp_path: Path) -> None:
    msgs = evaluate(template, constraint, obj, tmp_path)
    for assertion in assertions:
        want = assertion["violations"]
        if want is True or want == "yes":
            assert msgs, f"{obj.name} should be denied by {constraint.parent.name}"
            # Messages name the container and image, and say what would pass.
            assert all("image <registry.example.com/" in m for m in msgs), msgs
        elif want is False or want == "no":
            assert msgs == [], f"{obj.name} should be allowed, got {msgs}"
        else:
            assert len(msgs) == int(want), msgs


def test_every_policy_has_allowed_and_disallowed_samples() -> None:
    for policy in sorted((ROOT / "rego" / "policies").glob("*/constraint.tmpl")):
        samples = list((policy.parent / "samples").glob("*/*.yaml"))
        names = {s.name for s in samples}
        assert "constraint.yaml" in names, policy.parent
        assert any(n.startswith("example_allowed") for n in names), policy.parent
        assert any(n.startswith("example_disallowed") for n in names), policy.parent
        assert (policy.parent / "suite.yaml").is_file(), policy.parent


@pytest.mark.parametrize("mock", ["data.stub.send_failure", "data.stub.empty", "data.stub.absent"])
def test_allowed_samples_are_denied_when_the_provider_fails(mock: str, tmp_path: Path) -> None:
    """Fail closed: what is allowed with a working provider is denied with a broken one."""
    for i, (policy, template, constraint, obj, assertions) in enumerate(p.values for p in _cases()):
        if assertions != [{"violations": "no"}] and assertions != [{"violations": False}]:
            continue
        work = tmp_path / str(i)
        work.mkdir()
        msgs = evaluate(template, constraint, obj, work, mock=mock)
        assert msgs and all("StellaOps provider" in m for m in msgs), (policy.name, msgs)
