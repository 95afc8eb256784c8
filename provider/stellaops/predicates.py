"""Predicate types: cosign's ``--type`` aliases, our JSON Schemas, and per-type summaries.

Large predicates (SBOMs) are not returned whole to Gatekeeper: each known type has a summary
that policies read instead (DESIGN.md §3). Summaries are computed only from *verified*,
signed predicates; they never fail (a predicate that doesn't fit gives a partial summary).
"""

from __future__ import annotations

import hashlib
import json
import math
from functools import lru_cache
from importlib import resources
from typing import Any

from .errors import StellaError

SCAN_RESULT_V1 = "stellaops.io/predicates/scan-result@v1"
SBOM_V1 = "stellaops.io/predicates/sbom@v1"
VEX_V1 = "stellaops.io/predicates/vex@v1"
SLSA_V02 = "https://slsa.dev/provenance/v0.2"
SLSA_V1 = "https://slsa.dev/provenance/v1"

# cosign's --type alias table, identical in v2.6.4 and v3.1.3
# (cmd/cosign/cli/options/predicate.go). Note: `slsaprovenance` is SLSA v0.2 in cosign.
COSIGN_ALIASES: dict[str, str] = {
    "custom": "https://cosign.sigstore.dev/attestation/v1",
    "slsaprovenance": SLSA_V02,
    "slsaprovenance02": SLSA_V02,
    "slsaprovenance1": SLSA_V1,
    "link": "https://in-toto.io/Link/v1",
    "spdx": "https://spdx.dev/Document",
    "spdxjson": "https://spdx.dev/Document",
    "cyclonedx": "https://cyclonedx.org/bom",
    "vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
    "openvex": "https://openvex.dev/ns",
}

_SCHEMAS = {SCAN_RESULT_V1: "scan-result-v1.json", SBOM_V1: "sbom-v1.json", VEX_V1: "vex-v1.json"}
SEVERITIES = ("critical", "high", "medium", "low", "unknown")
# An inline predicate bigger than this is not returned whole in verdicts (its summary is).
MAX_INLINE_PREDICATE_BYTES = 64 * 1024


class PredicateInvalid(StellaError):
    reason = "PREDICATE_INVALID"


def resolve_predicate_type(name: str) -> str:
    """A user-typed predicate type: a cosign alias or a literal URI (compared exactly)."""
    return COSIGN_ALIASES.get(name, name)


@lru_cache(maxsize=None)
def _schema(predicate_type: str) -> dict[str, Any] | None:
    fname = _SCHEMAS.get(predicate_type)
    if fname is None:
        return None
    return json.loads(resources.files("stellaops.schemas").joinpath(fname).read_text(encoding="utf-8"))


def schema_for(predicate_type: str) -> dict[str, Any] | None:
    """The JSON Schema we publish for a StellaOps predicate type, or None for other types."""
    return _schema(predicate_type)


def validate_predicate(predicate_type: str, predicate: Any) -> None:
    """Validate a StellaOps predicate against its schema (other types: must be an object,
    as cosign requires for every type but ``custom``)."""
    schema = _schema(predicate_type)
    if schema is None:
        if not isinstance(predicate, dict):
            raise PredicateInvalid(f"the predicate of {predicate_type} must be a JSON object, got {type(predicate).__name__}")
        return
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(predicate), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        raise PredicateInvalid(
            f"{predicate_type} predicate is invalid at {where}: {first.message}",
            hint=f"see the schema {schema.get('$id')}",
        )
    if predicate_type == SCAN_RESULT_V1:
        counts = {s: 0 for s in SEVERITIES}
        for f in predicate["findings"]:
            counts[f["severity"]] += 1
        if counts != {s: predicate["summary"][s] for s in SEVERITIES}:
            raise PredicateInvalid(
                f"scan-result summary {predicate['summary']} does not agree with its findings {counts}",
                hint="summary must count the findings by severity",
            )


def _str(v: Any) -> str:
    return v if isinstance(v, str) else ""


def summarize(predicate_type: str, predicate: Any) -> dict[str, Any]:
    """The summary policies read (DESIGN.md §3). Never raises."""
    try:
        if not isinstance(predicate, dict):
            return {}
        if predicate_type == SCAN_RESULT_V1:
            return _summarize_scan(predicate)
        if predicate_type == SBOM_V1:
            doc = predicate.get("document")
            digest = _str(predicate.get("documentDigest"))
            if not digest and doc is not None:
                digest = "sha256:" + hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
            return {
                "format": _str(predicate.get("format")),
                "specVersion": _str(predicate.get("specVersion")),
                "componentCount": predicate.get("componentCount") if isinstance(predicate.get("componentCount"), int) else 0,
                "documentDigest": digest,
            }
        if predicate_type == VEX_V1:
            stmts = []
            for s in predicate.get("statements") or []:
                if isinstance(s, dict):
                    stmts.append(
                        {
                            "vulnerability": _str(s.get("vulnerability")),
                            "products": [p for p in s.get("products") or [] if isinstance(p, str)],
                            "status": _str(s.get("status")),
                            "justification": _str(s.get("justification")),
                        }
                    )
            return {"author": _str(predicate.get("author")), "timestamp": _str(predicate.get("timestamp")), "statements": stmts}
        if predicate_type == SLSA_V1:
            bd = predicate.get("buildDefinition") or {}
            rd = predicate.get("runDetails") or {}
            params = bd.get("externalParameters") or {}
            wf = params.get("workflow") if isinstance(params.get("workflow"), dict) else {}
            source = _str(params.get("source"))
            if not source and _str(wf.get("repository")):
                # GitHub workflow provenance: its workflow fields decide, never a dependency uri
                # (which could name another ref than the one the workflow ran on).
                source = _workflow_source(wf)
            elif not source:
                for dep in bd.get("resolvedDependencies") or []:
                    if isinstance(dep, dict) and dep.get("uri"):
                        source = _str(dep["uri"])
                        break
            return {"builderId": _str((rd.get("builder") or {}).get("id")), "buildType": _str(bd.get("buildType")), "source": source}
        if predicate_type == SLSA_V02:
            inv = predicate.get("invocation") or {}
            cs = inv.get("configSource") or {}
            source = _str(cs.get("uri"))
            if not source:
                for m in predicate.get("materials") or []:
                    if isinstance(m, dict) and m.get("uri"):
                        source = _str(m["uri"])
                        break
            return {"builderId": _str((predicate.get("builder") or {}).get("id")), "buildType": _str(predicate.get("buildType")), "source": source}
    except (AttributeError, TypeError):
        return {}
    return {}


def _workflow_source(workflow: dict[str, Any]) -> str:
    """GitHub Actions' SLSA v1 provenance (buildType .../workflow/v1) signs the repository and the
    ref apart (``externalParameters.workflow.{repository, ref}``); policies match one ``source``,
    so join them as ``git+<repository>@<ref>`` (the form of its resolvedDependencies uri). A
    repository that already ends with ``@<ref>`` is kept; without a ref, the repository alone (a
    "built from main" pattern then cannot match: nothing signed says main)."""
    repository = _str(workflow.get("repository"))
    ref = _str(workflow.get("ref"))
    if not repository or not ref or repository.endswith("@" + ref):
        return repository
    if "@" in repository.partition("://")[2]:
        # The repository names a ref of its own and it is not `ref`: the signed fields disagree,
        # so neither is the source (no pattern can match "", whichever ref it asks for).
        return ""
    prefix = "" if repository.startswith("git+") else "git+"
    return f"{prefix}{repository}@{ref}"


# A scan count the summary states beyond any real number (infinite, NaN, absurdly large) is kept
# as this: still a count every threshold refuses, and a valid JSON integer in the verdict.
MAX_SCAN_COUNT = 2**53 - 1


def _summary_count(value: Any) -> int:
    """One severity of a scan predicate's own ``summary``: 0 when it is not a count (the findings
    then decide), a fraction rounded up, anything unbounded as MAX_SCAN_COUNT."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return MAX_SCAN_COUNT
        value = math.ceil(value)
    return max(0, min(int(value), MAX_SCAN_COUNT))


def _summarize_scan(p: dict[str, Any]) -> dict[str, Any]:
    counts = {s: 0 for s in SEVERITIES}
    findings = []
    for f in p.get("findings") or []:
        if not isinstance(f, dict):
            continue
        sev = f.get("severity") if f.get("severity") in SEVERITIES else "unknown"
        counts[sev] += 1
        pkg = f.get("package") if isinstance(f.get("package"), dict) else {}
        findings.append(
            {
                "id": _str(f.get("id")),
                "severity": sev,
                "package": {"name": _str(pkg.get("name")), "version": _str(pkg.get("version")), "purl": _str(pkg.get("purl"))},
                "fixedVersion": _str(f.get("fixedVersion")),
            }
        )
    # The predicate's own summary is signed too: a count it states above the findings listed (a
    # scanner that truncates its list) is honoured; it never lowers what the findings count.
    stated = p.get("summary") if isinstance(p.get("summary"), dict) else {}
    for sev in SEVERITIES:
        counts[sev] = max(counts[sev], _summary_count(stated.get(sev)))
    scanner = p.get("scanner") if isinstance(p.get("scanner"), dict) else {}
    return {
        "scanner": {"name": _str(scanner.get("name")), "version": _str(scanner.get("version"))},
        "scanId": _str(p.get("scanId")),
        "scannedAt": _str(p.get("scannedAt")),
        "counts": counts,
        "findings": findings,
    }


def signed_time(predicate_type: str, predicate: Any) -> str:
    """The time a predicate itself signs (scan-result ``scannedAt``, VEX ``timestamp``), or ''."""
    if not isinstance(predicate, dict):
        return ""
    if predicate_type == SCAN_RESULT_V1:
        return _str(predicate.get("scannedAt"))
    if predicate_type == VEX_V1:
        return _str(predicate.get("timestamp"))
    return ""


def inline_predicate(predicate: Any) -> Any:
    """The predicate as returned in a verdict: whole when small, else None (summary only)."""
    try:
        size = len(json.dumps(predicate, separators=(",", ":")))
    except (TypeError, ValueError):
        return None
    return predicate if size <= MAX_INLINE_PREDICATE_BYTES else None
