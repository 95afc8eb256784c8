#!/usr/bin/env python3
"""Validate the deploy/ manifests offline: kustomize builds, Kubernetes and CRD schemas.

    scripts/validate-manifests.py                 every target under deploy/ (see discover())
    scripts/validate-manifests.py PATH ...        kustomization directories or YAML files
    scripts/validate-manifests.py --check-config SITE
                                                  also run `stella config check` on the
                                                  configuration the provider pod would see

Each target is a kustomization directory (built with ``kubectl kustomize``; components are
built through the overlays that use them) or a plain YAML file of Kubernetes objects (e.g. the
generated ConstraintTemplates under deploy/gatekeeper/<policy>/). Every object must validate:

- Kubernetes kinds against the JSON schemas of the PyPI package ``kubernetes-validate``, strict
  (unknown fields are errors, as ``kubectl apply`` treats them since 1.27), for each of
  ``KUBE_VERSIONS``;
- custom resources (Gatekeeper Provider/ConstraintTemplate/Config, Kyverno ClusterPolicy,
  cert-manager Certificate/Issuer) against the CRDs vendored in tests/data/deploy/crds/
  (tests/data/deploy/SOURCE.md gives module@version and path), with the API server's structural rules:
  unknown fields are errors unless the schema preserves them;
- Gatekeeper Constraints against the schema Gatekeeper derives from their ConstraintTemplate
  (which must be among the validated objects).

No network: everything comes from files and installed packages. Exit 0 when all is valid,
1 when something is not (one line per problem), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[1]
CRD_DIR = ROOT / "tests" / "data" / "deploy" / "crds"
KUBE_VERSIONS = ("1.30", "1.35")
KUBECTL = "kubectl"
CONSTRAINT_GROUP = "constraints.gatekeeper.sh"
# YAML files under deploy/ that are not Kubernetes objects (Helm values and the like).
NOT_OBJECTS = ("*-values.yaml", "values.yaml", "suite.yaml")


@dataclass
class Problem:
    target: str
    obj: str
    message: str

    def __str__(self) -> str:
        return f"{self.target}: {self.obj}: {self.message}"


@dataclass
class Result:
    target: str
    objects: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


# ------------------------------------------------------------------------------ loading

# libyaml's loader when PyYAML has it (the vendored Kyverno CRD is 1.4 MB).
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def build_kustomization(directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize DIR`` as a list of objects; raises RuntimeError with kubectl's words."""
    proc = subprocess.run(
        [KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl kustomize failed: {proc.stderr.strip()}")
    return [d for d in yaml.load_all(proc.stdout, Loader=_Loader) if d is not None]


def load_objects(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        docs = [d for d in yaml.load_all(fh, Loader=_Loader) if d is not None]
    out: list[dict[str, Any]] = []
    for d in docs:
        if isinstance(d, dict) and d.get("kind", "").endswith("List") and isinstance(d.get("items"), list):
            out.extend(d["items"])
        else:
            out.append(d)
    return out


def is_kustomization_dir(path: Path) -> bool:
    return any((path / n).is_file() for n in ("kustomization.yaml", "kustomization.yml", "Kustomization"))


def _kustomization_kind(path: Path) -> str:
    for n in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        if (path / n).is_file():
            doc = yaml.safe_load((path / n).read_text(encoding="utf-8")) or {}
            return str(doc.get("kind", "Kustomization"))
    return ""


def discover(root: Path) -> list[Path]:
    """What to validate under ``root`` (deploy/): every kustomization directory that is not a
    Component, and every YAML file outside kustomization trees (their files are patches and
    resources that only make sense built)."""
    kdirs = sorted({p.parent for p in root.rglob("kustomization.y*ml")})
    targets: list[Path] = [d for d in kdirs if _kustomization_kind(d) != "Component"]
    # Helm charts are templates, not objects: tests/kube/test_11_helm.py validates what
    # `helm template` renders from them.
    charts = sorted({p.parent for p in root.rglob("Chart.yaml")})
    for f in sorted(root.rglob("*.y*ml")):
        if any(d == f.parent or d in f.parents for d in kdirs):
            continue
        if any(c == f.parent or c in f.parents for c in charts):
            continue
        if any(f.match(pat) for pat in NOT_OBJECTS):
            continue
        targets.append(f)
    return targets


# ------------------------------------------------------------------- CRD schema handling


def structural(schema: Any) -> Any:
    """An OpenAPI v3 CRD schema as JSON Schema with the API server's structural rules.

    Hand-written because no package converts CRD schemas with Kubernetes' semantics: objects
    with ``properties`` reject unknown fields unless ``x-kubernetes-preserve-unknown-fields``,
    ``x-kubernetes-int-or-string`` means integer or string, ``nullable`` admits null, and
    ``x-kubernetes-embedded-resource`` objects carry apiVersion/kind/metadata implicitly.
    """
    if isinstance(schema, list):
        return [structural(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "patternProperties", "definitions", "$defs"):
            out[key] = {k: structural(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = structural(value) if isinstance(value, (dict, list)) else value
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [structural(v) for v in value]
        elif key.startswith("x-kubernetes-") or key in ("nullable", "format", "example", "externalDocs"):
            continue
        else:
            out[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}] + list(out.get("anyOf", []))
    if schema.get("x-kubernetes-embedded-resource"):
        props = out.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    if schema.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


_CRD_CACHE: dict[Path, tuple[dict[tuple[str, str, str], dict[str, Any]], dict[str, Any] | None]] = {}


def _load_crds(crd_dir: Path) -> tuple[dict[tuple[str, str, str], dict[str, Any]], dict[str, Any] | None]:
    key = crd_dir.resolve()
    if key not in _CRD_CACHE:
        schemas: dict[tuple[str, str, str], dict[str, Any]] = {}
        match_schema: dict[str, Any] | None = None
        for f in sorted(crd_dir.glob("*.yaml")):
            for doc in load_objects(f):
                if doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                for ver in spec["versions"]:
                    raw = ver["schema"]["openAPIV3Schema"]
                    if spec["group"] == "match.gatekeeper.sh":
                        match_schema = structural(raw["properties"]["embeddedMatch"])
                        continue
                    if not ver.get("served", True):
                        continue
                    schemas[(spec["group"], ver["name"], spec["names"]["kind"])] = structural(raw)
        _CRD_CACHE[key] = (schemas, match_schema)
    return _CRD_CACHE[key]


class CRDs:
    """Schemas of the vendored CRDs by (group, version, kind), and constraint kinds found."""

    def __init__(self, crd_dir: Path = CRD_DIR) -> None:
        schemas, match_schema = _load_crds(crd_dir)
        self.schemas: dict[tuple[str, str, str], dict[str, Any]] = dict(schemas)
        self.match_schema: dict[str, Any] | None = match_schema
        self.constraint_kinds: dict[str, dict[str, Any]] = {}

    def add_template(self, template: dict[str, Any]) -> None:
        """Remember the Constraint kind a ConstraintTemplate defines (and its parameters)."""
        crd = (template.get("spec") or {}).get("crd") or {}
        kind = ((crd.get("spec") or {}).get("names") or {}).get("kind")
        if kind:
            params = ((crd.get("spec") or {}).get("validation") or {}).get("openAPIV3Schema")
            self.constraint_kinds[kind] = params if isinstance(params, dict) else {}

    def constraint_schema(self, kind: str) -> dict[str, Any] | None:
        """The schema Gatekeeper gives a Constraint of ``kind`` (frameworks crds/schema.go)."""
        if kind not in self.constraint_kinds:
            return None
        spec_props: dict[str, Any] = {
            "match": self.match_schema or {"type": "object"},
            "enforcementAction": {"type": "string"},
            "scopedEnforcementActions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "action": {"type": "string"},
                        "enforcementPoints": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {"name": {"type": "string"}},
                            },
                        },
                    },
                },
            },
        }
        params = self.constraint_kinds[kind]
        if params:
            spec_props["parameters"] = structural(params)
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "apiVersion": {"enum": [f"{CONSTRAINT_GROUP}/v1beta1", f"{CONSTRAINT_GROUP}/v1alpha1"]},
                "kind": {"const": kind},
                "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 63}}},
                "spec": {"type": "object", "additionalProperties": False, "properties": spec_props},
                "status": {},
            },
            "required": ["apiVersion", "kind", "metadata"],
        }


# ------------------------------------------------------------------------- validation


def _where(error: jsonschema.ValidationError) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return path.lstrip(".") or "(top)"


def _object_meta_validator(version: str) -> jsonschema.protocols.Validator:
    """A validator of ObjectMeta from kubernetes-validate's schemas (for custom resources)."""
    import kubernetes_validate.utils as kv
    import referencing
    import referencing.jsonschema

    v = [x for x in kv.all_versions() if kv.major_minor(x) <= kv.major_minor(version)][-1]
    d = f"kubernetes-json-schema/v{v}-local-strict"
    schema = kv.schema_contents(f"{d}/objectmeta-meta-v1.json", version)
    defs = kv.schema_contents(f"{d}/_definitions.json", version)
    registry = referencing.Registry().with_resources(
        [
            ("objectmeta", referencing.Resource.from_contents(schema, default_specification=referencing.jsonschema.DRAFT202012)),
            ("_definitions.json", referencing.Resource.from_contents(defs, default_specification=referencing.jsonschema.DRAFT202012)),
        ]
    )
    return jsonschema.Draft202012Validator(schema, registry=registry)


_META: dict[str, Any] = {}


def _describe(obj: Any) -> str:
    if not isinstance(obj, dict):
        return f"<{type(obj).__name__}>"
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    ns = f"{meta.get('namespace')}/" if meta.get("namespace") else ""
    return f"{obj.get('kind', '?')}/{ns}{meta.get('name', '?')}"


def validate_objects(
    objects: list[dict[str, Any]], crds: CRDs, *, target: str = "<objects>", versions: Iterable[str] = KUBE_VERSIONS
) -> list[Problem]:
    """Every problem with ``objects`` (empty list: all valid). Templates are registered first,
    so Constraints validate against templates given in the same list."""
    import kubernetes_validate

    versions = tuple(versions)
    problems: list[Problem] = []
    for obj in objects:
        if isinstance(obj, dict) and obj.get("kind") == "ConstraintTemplate":
            crds.add_template(obj)
    for obj in objects:
        name = _describe(obj)
        if not isinstance(obj, dict) or not isinstance(obj.get("apiVersion"), str) or not isinstance(obj.get("kind"), str):
            problems.append(Problem(target, name, "not a Kubernetes object (apiVersion and kind are required)"))
            continue
        meta = obj.get("metadata")
        if not isinstance(meta, dict) or not meta.get("name"):
            problems.append(Problem(target, name, "metadata.name is required"))
            continue
        api_version, kind = obj["apiVersion"], obj["kind"]
        group, _, version = api_version.rpartition("/")
        if group == CONSTRAINT_GROUP:
            schema = crds.constraint_schema(kind)
            if schema is None:
                problems.append(Problem(target, name, f"no ConstraintTemplate defines Constraint kind {kind!r} (validate it with its template)"))
                continue
            problems.extend(_jsonschema_problems(obj, schema, target, name))
            problems.extend(_meta_problems(meta, target, name, versions))
            continue
        schema = crds.schemas.get((group, version, kind))
        if schema is not None:
            problems.extend(_jsonschema_problems(obj, schema, target, name))
            problems.extend(_meta_problems(meta, target, name, versions))
            if kind == "ConstraintTemplate":
                problems.extend(_template_rules(obj, target, name))
            continue
        if "." in group and not group.endswith(".k8s.io"):
            problems.append(Problem(target, name, f"no schema for {api_version} {kind}: vendor its CRD in {CRD_DIR.relative_to(ROOT)}"))
            continue
        for v in versions:
            try:
                kubernetes_validate.validate(obj, v, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                problems.append(Problem(target, name, f"Kubernetes {v} has no {api_version} {kind}"))
            except kubernetes_validate.ValidationError as exc:
                problems.append(Problem(target, name, f"Kubernetes {v}: {_where(exc)}: {exc.message}"))
    return problems


def _template_rules(template: dict[str, Any], target: str, name: str) -> list[Problem]:
    """What Gatekeeper checks beyond the schema: the template's name is its Constraint kind in
    lower case (frameworks pkg/client/client.go, validateTemplateMetadata: case-insensitive)."""
    kind = (((template.get("spec") or {}).get("crd") or {}).get("spec") or {}).get("names", {}).get("kind", "")
    if not kind:
        return [Problem(target, name, "spec.crd.spec.names.kind is required")]
    if template["metadata"]["name"].lower() != kind.lower():
        return [Problem(target, name, f"metadata.name must be {kind.lower()!r} (the Constraint kind in lower case), got {template['metadata']['name']!r}")]
    return []


def _jsonschema_problems(obj: dict[str, Any], schema: dict[str, Any], target: str, name: str) -> list[Problem]:
    validator = jsonschema.Draft202012Validator(schema)
    return [
        Problem(target, name, f"{_where(e)}: {e.message}")
        for e in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    ]


def _meta_problems(meta: dict[str, Any], target: str, name: str, versions: tuple[str, ...]) -> list[Problem]:
    out = []
    for v in versions[:1]:
        if v not in _META:
            _META[v] = _object_meta_validator(v)
        for e in _META[v].iter_errors(meta):
            out.append(Problem(target, name, f"metadata.{_where(e)}: {e.message}"))
    return out


def validate_target(path: Path, crds: CRDs, *, versions: Iterable[str] = KUBE_VERSIONS) -> Result:
    label = str(path.relative_to(ROOT)) if path.is_absolute() and ROOT in path.parents else str(path)
    result = Result(label)
    try:
        if path.is_dir():
            if not is_kustomization_dir(path):
                result.problems.append(Problem(label, "-", "a directory without kustomization.yaml"))
                return result
            result.objects = build_kustomization(path)
        else:
            result.objects = load_objects(path)
    except (RuntimeError, OSError, yaml.YAMLError, subprocess.TimeoutExpired) as exc:
        result.problems.append(Problem(label, "-", str(exc)))
        return result
    if not result.objects:
        result.problems.append(Problem(label, "-", "no objects"))
    result.problems.extend(validate_objects(result.objects, crds, target=label, versions=versions))
    return result


# ------------------------------------------------------------- the pod's configuration


def materialize(objects: list[dict[str, Any]], root: Path, deployment: str = "stellaops") -> tuple[dict[str, str], Path]:
    """Write the Deployment's ConfigMap and Secret volumes under ``root`` at their mount paths,
    as the kubelet would, and a copy of the configuration whose absolute paths point into
    ``root``. Returns (the container's plain environment, that configuration's path).
    Raises LookupError naming a ConfigMap or Secret the build does not contain."""
    import base64

    found = [o for o in objects if o.get("kind") == "Deployment" and o["metadata"]["name"] == deployment]
    if len(found) != 1:
        raise LookupError(f"the build has no Deployment {deployment!r}")
    pod = found[0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    by_name = {(o.get("kind"), o["metadata"]["name"]): o for o in objects if isinstance(o.get("metadata"), dict)}
    for mount in container.get("volumeMounts", []):
        target = root / mount["mountPath"].lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        vol = volumes[mount["name"]]
        if "configMap" in vol:
            ref = ("ConfigMap", vol["configMap"]["name"])
            items = vol["configMap"].get("items")
        elif "secret" in vol:
            ref = ("Secret", vol["secret"]["secretName"])
            items = vol["secret"].get("items")
        else:
            continue  # emptyDir, PersistentVolumeClaim: an empty directory
        if ref not in by_name:
            raise LookupError(f"{ref[0]} {ref[1]!r} (volume {mount['name']!r}) is not in the build; a site provides it (make-certs.sh --site)")
        obj = by_name[ref]
        files = {k: v.encode() for k, v in (obj.get("data") or {}).items()} if ref[0] == "ConfigMap" else {}
        if ref[0] == "Secret":
            files = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
            files.update({k: v.encode() for k, v in (obj.get("stringData") or {}).items()})
        mapping = {i["key"]: i["path"] for i in items} if items else {k: k for k in files}
        for key, path in mapping.items():
            if key not in files:
                raise LookupError(f"{ref[0]} {ref[1]!r} has no key {key!r}")
            (target / path).write_bytes(files[key])
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    config = root / env.get("STELLAOPS_CONFIG", "/etc/stellaops/stellaops.yaml").lstrip("/")
    if not config.is_file():
        raise LookupError(f"no configuration at {env.get('STELLAOPS_CONFIG')} in the pod")
    text = config.read_text(encoding="utf-8")
    local = root / "stellaops.local.yaml"
    local.write_text(text.replace("/etc/stellaops/", f"{root}/etc/stellaops/").replace("/var/lib/stellaops", f"{root}/var/lib/stellaops"))
    return env, local


def check_config(objects: list[dict[str, Any]], target: str, stella: str = "stella") -> list[Problem]:
    """``stella config check`` on the configuration the provider pod would load."""
    import shutil
    import tempfile

    exe = shutil.which(stella) or str(Path(sys.executable).parent / "stella")
    with tempfile.TemporaryDirectory(prefix="stellaops-pod-") as tmp:
        try:
            _, local = materialize(objects, Path(tmp))
        except LookupError as exc:
            return [Problem(target, "Deployment/stellaops", str(exc))]
        env = {k: v for k, v in os.environ.items() if not k.startswith("STELLAOPS_")}
        proc = subprocess.run([exe, "config", "check", str(local)], capture_output=True, text=True, timeout=120, check=False, env=env)
    if proc.returncode != 0:
        message = proc.stderr.strip().replace(tmp, "")
        return [Problem(target, "Deployment/stellaops", f"stella config check: {message}")]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="kustomization directories or YAML files (default: discover under deploy/)")
    parser.add_argument("--kube-version", action="append", dest="versions", help=f"Kubernetes version(s) (default: {', '.join(KUBE_VERSIONS)})")
    parser.add_argument("--crds", type=Path, default=CRD_DIR, help="directory of vendored CRD YAML files")
    parser.add_argument("--check-config", action="store_true", help="also run `stella config check` on each kustomization's provider configuration, as mounted in the pod")
    args = parser.parse_args(argv)
    targets = [p.resolve() for p in args.paths] or discover(ROOT / "deploy")
    if not targets:
        print("validate-manifests: nothing to validate", file=sys.stderr)
        return 2
    crds = CRDs(args.crds)
    # Templates first, so Constraints in other files find their kinds.
    results: list[Result] = []
    for t in sorted(targets, key=lambda p: 0 if "template" in p.name else 1):
        result = validate_target(t, crds, versions=args.versions or KUBE_VERSIONS)
        if args.check_config and t.is_dir() and not result.problems:
            result.problems.extend(check_config(result.objects, result.target))
        results.append(result)
    failed = 0
    for r in results:
        if r.problems:
            failed += 1
            for p in r.problems:
                print(f"INVALID {p}")
        else:
            print(f"ok      {r.target}: {len(r.objects)} objects")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
