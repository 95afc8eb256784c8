"""Threat T-F43 (docs/threat-model.md 4.1): the `opa eval` pipeline gate passed manifests it never
looked at. `opa eval --input file.yaml` reads only the FIRST YAML document of the file, and the
library gave no images for kinds it does not read (`kind: List`, `PodList`, ...), so a file
"ConfigMap --- Deployment", a `List` holding the Deployment, or a `PodList` passed a gate that
denies the same Deployment on its own; `kubectl apply -f` deploys all of them.

The fix, tested here through the recipe docs/policies.md gives ("Pipelines: opa eval"), with the
real `stella`, the real `opa` and the real provider (`stella serve`) over a real registry:

- `stella rego input FILE...` turns every document of every file into one `kind: List`, and
  refuses input it cannot convert without loss (exit 2);
- the library reads `List` and every `*List` kind (items, recursively, bounded depth);
- the pipeline bundle denies every object whose kind the library cannot read images from,
  naming it (Gatekeeper templates do not: a constraint there matches kinds, and may match
  broadly).

World: the one of test_index_policies.py: image A attested by the release key (every policy
admits it), image E with no attestation at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.tools import tool
from tests.hardening.test_index_policies import CASES, IndexWorld, world  # noqa: F401  (world: the fixture)

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "rego" / "bundles" / "pipeline"
SEED = ROOT / "rego" / "bundles" / "seed"
STELLA = str(Path(sys.executable).parent / "stella")
TESTDATA = ROOT / "rego" / "testdata"
CAPS = ROOT / "rego" / "build" / "capabilities.json"


def deployment(image: str, name: str = "app") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": image}]}}}}


def pod(image: str, name: str = "p") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": image}]}}


CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "harmless"}, "data": {"a": "b"}}
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}}


def multi(*docs: dict[str, Any]) -> str:
    return "---\n".join(yaml.safe_dump(d) for d in docs)


# The attacker's files (F2), by name: what each holds, with the image in it.
def attack_files(image: str) -> dict[str, str]:
    return {
        "multi.yaml": multi(CONFIGMAP, deployment(image, "evil")),
        "list.yaml": yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [deployment(image, "evil")]}),
        "podlist.yaml": yaml.safe_dump({"apiVersion": "v1", "kind": "PodList", "items": [pod(image)]}),
        # kubectl decodes ANY object with a top-level `items` as a list and applies its items
        "items.yaml": yaml.safe_dump(dict(CONFIGMAP, items=[deployment(image, "evil")])),
    }


def stella_input(tmp: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STELLA, "rego", "input", *args], capture_output=True, text=True, timeout=60, input=stdin, cwd=tmp)


def _env(world: IndexWorld) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STELLAOPS_")}
    env["STELLAOPS_PROVIDER_URL"] = world.provider.url
    env["STELLAOPS_PROVIDER_TIMEOUT"] = "20s"
    return env


def recipe(world: IndexWorld, package: str, parameters: dict[str, Any], files: list[Path], tmp: Path) -> tuple[int, list[str]]:
    """docs/policies.md, "Pipelines: opa eval", exactly:
    `stella rego input FILES > input.json && opa eval --fail-defined --format raw --bundle pipeline
    --data constraint.yaml --input input.json 'data.<policy>.violation[_].msg with input as …'`."""
    conv = stella_input(tmp, *map(str, files))
    assert conv.returncode == 0, conv.stderr
    (tmp / "input.json").write_text(conv.stdout)
    return opa_recipe(world, package, parameters, tmp / "input.json", tmp)


def opa_recipe(world: IndexWorld, package: str, parameters: dict[str, Any], input_file: Path, tmp: Path) -> tuple[int, list[str]]:
    (tmp / "constraint.yaml").write_text(yaml.safe_dump({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "X",
                                                         "metadata": {"name": "x"}, "spec": {"parameters": parameters}}))
    proc = subprocess.run([tool("opa"), "eval", "--fail-defined", "--format", "raw", "--bundle", str(PIPELINE),
                           "--data", str(tmp / "constraint.yaml"), "--input", str(input_file),
                           f'data.{package}.violation[_].msg with input as {{"review": {{"object": input}}, "parameters": data.spec.parameters}}'],
                          capture_output=True, text=True, timeout=120, env=_env(world))
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, sorted(line for line in proc.stdout.splitlines() if line.strip())


def seed_recipe(world: IndexWorld, files: list[Path], tmp: Path) -> tuple[int, list[str]]:
    """docs/policies.md, the seed snippet in a pipeline: converted input, the seed's deny on every
    Pod and a denial for every object the seed cannot judge."""
    conv = stella_input(tmp, *map(str, files))
    assert conv.returncode == 0, conv.stderr
    (tmp / "input.json").write_text(conv.stdout)
    proc = subprocess.run([tool("opa"), "eval", "--fail-defined", "--format", "raw", "--bundle", str(SEED), "--bundle", str(PIPELINE),
                           "--input", str(tmp / "input.json"), "data.lib.stellaops.pipeline.seed_deny[_]"],
                          capture_output=True, text=True, timeout=120, env=_env(world))
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, sorted(line for line in proc.stdout.splitlines() if line.strip())


# --- the attack, through the documented recipe: denied by every shipped policy ---------------------

@pytest.mark.parametrize("variant", ["multi.yaml", "list.yaml", "podlist.yaml", "items.yaml"])
@pytest.mark.parametrize("policy", sorted(CASES))
def test_t_f43_every_document_and_list_item_is_judged(world: IndexWorld, policy: str, variant: str, tmp_path: Path) -> None:  # noqa: F811
    package, parameters = CASES[policy]
    bad = world.images["E"]
    f = tmp_path / variant
    f.write_text(attack_files(bad)[variant])
    rc, msgs = recipe(world, package, parameters, [f], tmp_path)
    assert rc == 1, f"{policy} admitted {variant} holding the unattested image {bad}"
    assert msgs and all(bad in m for m in msgs), msgs


@pytest.mark.parametrize("variant", ["list.yaml", "podlist.yaml", "items.yaml"])
def test_t_f43_a_list_given_to_opa_directly_is_judged_too(world: IndexWorld, variant: str, tmp_path: Path) -> None:  # noqa: F811
    """Without the converter (`opa eval --input list.yaml`): the library reads the List's items."""
    package, parameters = CASES["requireattestations"]
    bad = world.images["E"]
    f = tmp_path / variant
    f.write_text(attack_files(bad)[variant])
    rc, msgs = opa_recipe(world, package, parameters, f, tmp_path)
    assert rc == 1 and msgs and all(bad in m for m in msgs), msgs


def test_t_f43_seed_in_the_pipeline_judges_every_document(world: IndexWorld, tmp_path: Path) -> None:  # noqa: F811
    """The seed bundle on the attacker's multi-document file: its Deployment is a kind the seed
    cannot judge (it reads Pods only), so the pipeline gate denies it, naming it; an unattested
    Pod in the second document is denied by the seed itself."""
    bad = world.images["E"]
    f = tmp_path / "multi.yaml"
    f.write_text(attack_files(bad)["multi.yaml"])
    rc, msgs = seed_recipe(world, [f], tmp_path)
    assert rc == 1 and len(msgs) == 1, msgs
    assert "Deployment" in msgs[0] and "evil" in msgs[0] and bad in msgs[0], msgs
    g = tmp_path / "pods.yaml"
    g.write_text(multi(CONFIGMAP, pod(world.images["A"], "good"), pod(bad, "bad")))
    rc, msgs = seed_recipe(world, [g], tmp_path)
    assert (rc, msgs) == (1, [f"Image {bad} missing valid scan attestation"])


@pytest.mark.parametrize("policy", sorted(CASES))
def test_t_f43_a_kind_the_library_cannot_read_is_denied_in_the_pipeline(world: IndexWorld, policy: str, tmp_path: Path) -> None:  # noqa: F811
    """An object whose images the library cannot find (an Argo Rollout, a custom resource that
    calls itself Deployment in another API group, an item without a kind) is denied, named."""
    package, parameters = CASES[policy]
    rollout = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "ro"},
               "spec": {"template": {"spec": {"containers": [{"name": "c", "image": world.images["E"]}]}}}}
    fake = dict(deployment(world.images["A"], "fake"), apiVersion="evil.example/v1")
    f = tmp_path / "odd.yaml"
    f.write_text(multi(rollout, fake, CONFIGMAP))
    rc, msgs = recipe(world, package, parameters, [f], tmp_path)
    assert rc == 1 and len(msgs) == 2, msgs
    assert any("kind <Rollout>" in m and "argoproj.io/v1alpha1" in m and "<ro>" in m for m in msgs), msgs
    assert any("kind <Deployment>" in m and "evil.example/v1" in m and "<fake>" in m for m in msgs), msgs


def test_t_f43_lists_nested_too_deep_are_denied(world: IndexWorld, tmp_path: Path) -> None:  # noqa: F811
    package, parameters = CASES["requireattestations"]
    doc: dict[str, Any] = deployment(world.images["A"])
    for _ in range(6):
        doc = {"apiVersion": "v1", "kind": "List", "items": [doc]}
    f = tmp_path / "deep.yaml"
    f.write_text(yaml.safe_dump(doc))
    rc, msgs = recipe(world, package, parameters, [f], tmp_path)
    assert rc == 1 and len(msgs) == 1 and "nested" in msgs[0], msgs


# --- controls: attested objects in a List or a multi-document file are admitted -------------------

@pytest.mark.parametrize("policy", sorted(CASES))
def test_t_f43_control_attested_objects_in_lists_and_documents_are_admitted(world: IndexWorld, policy: str, tmp_path: Path) -> None:  # noqa: F811
    package, parameters = CASES[policy]
    good = world.images["A"]
    a = tmp_path / "app.yaml"
    a.write_text(multi(CONFIGMAP, deployment(good), SERVICE, {"apiVersion": "v1", "kind": "List", "items": [pod(good)]}))
    b = tmp_path / "list.json"
    b.write_text(json.dumps({"apiVersion": "apps/v1", "kind": "DeploymentList", "items": [deployment(good, "d2")]}))
    assert recipe(world, package, parameters, [a, b], tmp_path) == (0, [])
    # ... and the same files with the unattested image in the last document are denied
    b.write_text(json.dumps({"apiVersion": "apps/v1", "kind": "DeploymentList", "items": [deployment(world.images["E"], "d2")]}))
    rc, msgs = recipe(world, package, parameters, [a, b], tmp_path)
    assert rc == 1 and msgs and all(world.images["E"] in m for m in msgs), msgs


def test_t_f43_control_seed_admits_attested_pods_and_image_free_kinds(world: IndexWorld, tmp_path: Path) -> None:  # noqa: F811
    f = tmp_path / "ok.yaml"
    f.write_text(multi(CONFIGMAP, pod(world.images["A"]), SERVICE))
    # the seed's verify_attestation follows the provider's requireTlog (false in this world)
    assert seed_recipe(world, [f], tmp_path) == (0, [])


# --- the converter: every document, or a clear refusal (exit 2) ----------------------------------

def test_stella_rego_input_keeps_every_document_of_every_file_and_stdin(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("---\n" + multi(CONFIGMAP, deployment("r/x:1")) + "---\n\n")
    (tmp_path / "b.json").write_text(json.dumps(pod("r/y:1")))
    proc = stella_input(tmp_path, "a.yaml", "-", "b.json", stdin=yaml.safe_dump(SERVICE))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"apiVersion": "v1", "kind": "List",
                                       "items": [CONFIGMAP, deployment("r/x:1"), SERVICE, pod("r/y:1")]}


def test_stella_rego_input_keeps_dates_as_strings(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: d\ndata:\n  when: 2026-12-08\n")
    proc = stella_input(tmp_path, "a.yaml")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["items"][0]["data"]["when"] == "2026-12-08"


@pytest.mark.parametrize(("text", "why"), [
    ("", "no documents"),
    ("---\n---\n", "no documents"),
    ("- a\n- b\n", "not a mapping"),
    ("just a string\n", "not a mapping"),
    ("kind: Pod\n---\n- 1\n", "document 2"),
    ("kind: Pod\nspec:\n  containers:\n  - image: good\n    image: bad\n", "duplicate key"),
    ('{"kind": "Pod", "kind": "List"}', "duplicate key"),
    ("kind: Pod\nspec: [unclosed\n", "not valid YAML"),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
     "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
     "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n", "too large"),
    ("kind: Pod\nx: !!binary aGVsbG8=\n", "cannot be written as JSON"),
    ("kind: Pod\nx: .nan\n", "cannot be written as JSON"),
])
def test_stella_rego_input_refuses_what_it_cannot_convert_without_loss(tmp_path: Path, text: str, why: str) -> None:
    (tmp_path / "in.yaml").write_text(text)
    proc = stella_input(tmp_path, "in.yaml")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert "in.yaml" in proc.stderr and why in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_stella_rego_input_refuses_a_missing_file_and_no_arguments(tmp_path: Path) -> None:
    proc = stella_input(tmp_path, "nothere.yaml")
    assert proc.returncode == 2 and "nothere.yaml" in proc.stderr and proc.stdout == ""
    proc = stella_input(tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""


# --- Gatekeeper: templates do not deny kinds they cannot read (the constraint's match decides) -----

def _template_violations(policy: str, resource: dict[str, Any], parameters: dict[str, Any], tmp: Path) -> list[str]:
    doc = yaml.safe_load((ROOT / "deploy" / "gatekeeper" / policy / "template.yaml").read_text())
    source = doc["spec"]["targets"][0]["code"][0]["source"]
    code = tmp / "template"
    code.mkdir(exist_ok=True)
    (code / "src.rego").write_text(source["rego"])
    for i, lib in enumerate(source["libs"]):
        (code / f"lib{i}.rego").write_text(lib)
    (tmp / "in.json").write_text(json.dumps({"review": {"kind": {"kind": resource["kind"]}, "object": resource}, "parameters": parameters}))
    proc = subprocess.run([tool("opa"), "eval", "--format", "json", "--capabilities", str(CAPS), "-d", str(code), "-d", str(TESTDATA),
                           "--input", str(tmp / "in.json"),
                           f"x := data.{doc['metadata']['name']}.violation[_].msg with external_data as data.stub.external_data"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return sorted(r["bindings"]["x"] for r in json.loads(proc.stdout).get("result", []))


@pytest.mark.parametrize("policy", ["requireattestations", "scanthresholds"])
def test_t_f43_gatekeeper_templates_do_not_deny_unknown_kinds(policy: str, tmp_path: Path) -> None:
    parameters = {"predicateTypes": ["stellaops.io/predicates/scan-result@v1"]} if policy == "requireattestations" else {"maxCounts": {"critical": 0}}
    rollout = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "ro"}, "spec": {}}
    for resource in (CONFIGMAP, rollout):
        assert _template_violations(policy, resource, parameters, tmp_path) == [], resource["kind"]
    # control: the same template denies an unsigned Pod (the stub's recorded unsigned verdict)
    assert _template_violations(policy, pod("registry.example.com/app:recorded-unsigned"), parameters, tmp_path)


def test_t_f43_the_documented_recipe_converts_first() -> None:
    """docs/policies.md gives the recipe this file runs, and says why: opa reads one document."""
    text = (ROOT / "docs" / "policies.md").read_text()
    section = text.split("## Pipelines: `opa eval`", 1)[1].split("\n## ", 1)[0]
    assert "stella rego input manifests/*.yaml > input.json" in section and "--input input.json" in section
    assert "reads only the first document of a YAML file" in section
    assert "data.lib.stellaops.pipeline.seed_deny[_]" in text


# T-F44: YAML readers disagree on merge keys. PyYAML lets an explicit key win over a merged one;
# Go's YAML (kubectl, helm, argo) applies keys in document order, so `image: <signed>` followed by
# `<<: {image: <unsigned>}` is judged signed and deployed unsigned. Every variant is refused.
MERGE_KEY_VARIANTS = {
    "after an explicit key": ("kind: Pod\nspec:\n  containers:\n  - name: c\n    image: good.example/app:v1\n"
                              "    <<: {image: evil.example/app:v1}\n", 6),
    "before an explicit key": ("base: &b {image: x, name: c}\nkind: Pod\nspec:\n  containers:\n  - <<: *b\n    image: y\n", 5),
    "parent level": ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: good.example/app:v1}]\n"
                     "  <<: {containers: [{name: c, image: evil.example/app:v1}]}\n", 6),
    "alias sequence": ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nx-evil: &e {image: evil.example/app:v1}\nspec:\n"
                       "  containers:\n  - name: c\n    image: good.example/app:v1\n    <<: [*e]\n", 9),
    "explicit !!merge tag": ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  initContainers:\n  - name: i\n"
                             "    image: good.example/init:v1\n    !!merge \"<<\": {image: evil.example/init:v1}\n"
                             "  containers: [{name: c, image: good.example/app:v1}]\n", 8),
    "!!merge tag on another key": ("kind: Pod\nspec:\n  containers:\n  - image: good\n    !!merge x: {image: evil}\n", 5),
    "quoted <<": ("kind: Pod\nspec:\n  containers:\n  - image: good\n    '<<': {image: evil}\n", 5),
    "initContainers": ("kind: Pod\nspec:\n  initContainers:\n  - image: good\n    <<: {image: evil}\n  containers: [{image: good}]\n", 5),
    "second document, flow mapping": ("kind: ConfigMap\n---\nkind: Pod\nspec: {containers: [{image: good, <<: {image: evil}}]}\n", 4),
}


@pytest.mark.parametrize("variant", sorted(MERGE_KEY_VARIANTS))
def test_t_f44_stella_rego_input_refuses_yaml_merge_keys(tmp_path: Path, variant: str) -> None:
    """T-F44: any `<<` merge key, tagged or not, anywhere: exit 2 naming the file and the line
    (the converter and kubectl would otherwise read different images from the same file)."""
    text, line = MERGE_KEY_VARIANTS[variant]
    (tmp_path / "m.yaml").write_text(text)
    proc = stella_input(tmp_path, "m.yaml")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert "m.yaml" in proc.stderr and "YAML merge keys (<<) are refused: YAML readers disagree on which value wins" in proc.stderr
    assert f"line {line}," in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_t_f44_a_json_key_named_merge_is_an_ordinary_key(tmp_path: Path) -> None:
    """JSON has no merge keys (kubectl reads JSON as JSON): a `"<<"` key there is data, not refused."""
    (tmp_path / "m.json").write_text('{"kind": "Pod", "metadata": {"annotations": {"<<": "x"}}}')
    proc = stella_input(tmp_path, "m.json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["items"][0]["metadata"]["annotations"] == {"<<": "x"}


@pytest.mark.parametrize("policy", sorted(CASES))
def test_t_f43_a_query_without_the_review_wrapper_is_denied(world: IndexWorld, policy: str, tmp_path: Path) -> None:  # noqa: F811
    """`opa eval --input input.json 'data.<policy>.violation[_].msg'`, the `with input as
    {"review": …}` forgotten: the policy sees no object, so it judges nothing: denied, not passed."""
    package, _ = CASES[policy]
    (tmp_path / "in.yaml").write_text(yaml.safe_dump(deployment(world.images["E"])))
    conv = stella_input(tmp_path, "in.yaml")
    (tmp_path / "input.json").write_text(conv.stdout)
    for extra in (["--input", str(tmp_path / "input.json")], []):  # and no --input at all
        proc = subprocess.run([tool("opa"), "eval", "--fail-defined", "--format", "raw", "--bundle", str(PIPELINE), *extra,
                               f"data.{package}.violation[_].msg"], capture_output=True, text=True, timeout=120, env=_env(world))
        assert proc.returncode == 1, (extra, proc.stdout, proc.stderr)
        assert "no review.object" in proc.stdout, proc.stdout


def _kubectl_objects(f: Path, tmp: Path) -> list[str]:
    """What `kubectl apply -f` would act on, read by kubectl itself without a cluster
    (`kubectl label --local` runs the same file builder and decoder), as `kind/name`."""
    proc = subprocess.run([tool("kubectl"), "label", "--local", "-f", str(f), "t-f43=1", "-o", "name"], capture_output=True,
                          text=True, timeout=60, env={"PATH": os.environ.get("PATH", ""), "KUBECONFIG": str(tmp / "none"), "HOME": str(tmp)})
    if proc.returncode != 0:
        return [f"refused: {proc.stderr.strip()}"]
    return sorted(f"{line.split('/')[0].split('.')[0]}/{line.split('/', 1)[1]}" for line in proc.stdout.split())


def _gate_objects(f: Path, tmp: Path) -> list[str]:
    conv = stella_input(tmp, str(f))
    assert conv.returncode == 0, conv.stderr
    (tmp / "input.json").write_text(conv.stdout)
    query = ('x := [sprintf("%s/%s", [lower(e.object.kind), e.object.metadata.name]) | '
             "some e in data.lib.stellaops.objects(input); not data.lib.stellaops.is_list(e.object)]")
    proc = subprocess.run([tool("opa"), "eval", "--format", "json", "--bundle", str(PIPELINE), "--input", str(tmp / "input.json"), query],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return sorted(json.loads(proc.stdout)["result"][0]["bindings"]["x"])


@pytest.mark.parametrize("variant", ["multi.yaml", "list.yaml", "podlist.yaml", "items.yaml", "nested.yaml"])
def test_t_f43_the_gate_reads_the_objects_kubectl_applies(variant: str, tmp_path: Path) -> None:
    """kubectl's own reading of each attack file (it applies the Deployment inside a ConfigMap's
    top-level `items`, not the ConfigMap) is exactly the set of objects the gate judges."""
    files = dict(attack_files("r/x:1"))
    files["nested.yaml"] = multi(CONFIGMAP, {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "apps/v1", "kind": "DeploymentList", "items": [deployment("r/x:1", "d1")]}, pod("r/y:1")]})
    f = tmp_path / variant
    f.write_text(files[variant])
    kubectl = _kubectl_objects(f, tmp_path)
    if variant == "nested.yaml":  # kubectl refuses a List inside a List; the gate reads it anyway (stricter)
        assert kubectl[0].startswith("refused: ") and "not a list" in kubectl[0], kubectl
        assert _gate_objects(f, tmp_path) == ["configmap/harmless", "deployment/d1", "pod/p"]
        return
    assert kubectl and _gate_objects(f, tmp_path) == kubectl


# --- T-F45: a constraint file loaded with --data cannot redirect the job's provider ----------------

def test_t_f45_a_constraint_file_cannot_override_the_provider_url_of_the_environment(world: IndexWorld, tmp_path: Path) -> None:  # noqa: F811
    """`opa eval --data constraint.yaml` loads the whole file at the root of data: a constraint file
    carrying `stellaops: {config: {provider_url: …}}` must not replace STELLAOPS_PROVIDER_URL. Here
    it names a loopback port nothing listens on: the gate must still ask the real provider (A
    admitted, E denied for what it is), never the file's URL."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    package, parameters = CASES["requireattestations"]
    for image, want_rc in ((world.images["A"], 0), (world.images["E"], 1)):
        (tmp_path / "in.yaml").write_text(yaml.safe_dump(pod(image)))
        conv = stella_input(tmp_path, "in.yaml")
        assert conv.returncode == 0, conv.stderr
        (tmp_path / "input.json").write_text(conv.stdout)
        (tmp_path / "constraint.yaml").write_text(yaml.safe_dump({
            "apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "StellaOpsRequireAttestations", "metadata": {"name": "x"},
            "spec": {"parameters": parameters}, "stellaops": {"config": {"provider_url": dead, "timeout": "1s"}}}))
        proc = subprocess.run([tool("opa"), "eval", "--fail-defined", "--format", "raw", "--bundle", str(PIPELINE),
                               "--data", str(tmp_path / "constraint.yaml"), "--input", str(tmp_path / "input.json"),
                               f'data.{package}.violation[_].msg with input as {{"review": {{"object": input}}, "parameters": data.spec.parameters}}'],
                              capture_output=True, text=True, timeout=120, env=_env(world))
        assert proc.returncode == want_rc, (image, proc.stdout, proc.stderr)
        assert dead not in proc.stdout, proc.stdout
        if want_rc:
            assert image in proc.stdout and "could not verify" not in proc.stdout, proc.stdout
