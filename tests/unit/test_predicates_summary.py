"""predicates.summarize: what policies read must never say less than the signed predicate does.

- A scan-result's own ``summary`` is honoured when it counts more than the findings it lists
  (a scanner that truncates its findings list still reports its criticals): each severity's
  count is the larger of the two.
- SLSA v1 provenance from GitHub Actions (buildType .../workflow/v1) names the repository and the
  ref apart (``externalParameters.workflow.{repository, ref}``); the summarised ``source`` joins
  them as ``git+<repository>@<ref>``, so a constraint's "built from main" pattern can match
  genuine provenance, and provenance from a feature branch never reads as main.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from stellaops import predicates
from stellaops.predicates import SCAN_RESULT_V1, SLSA_V1, summarize

SEVERITIES = ("critical", "high", "medium", "low", "unknown")


def _scan(findings: list[tuple[str, str]], summary: Any) -> dict[str, Any]:
    return {
        "scanner": {"name": "s", "version": "1"},
        "scanId": "scan-1",
        "scannedAt": "2026-11-25T10:00:00Z",
        "findings": [{"id": i, "severity": s, "package": {"name": "p", "version": "1"}} for i, s in findings],
        "summary": summary,
    }


def test_scan_summary_higher_than_findings_is_honoured() -> None:
    p = _scan([("CVE-1", "critical")], {"critical": 5, "high": 2, "medium": 0, "low": 0, "unknown": 0})
    counts = summarize(SCAN_RESULT_V1, p)["counts"]
    assert counts == {"critical": 5, "high": 2, "medium": 0, "low": 0, "unknown": 0}
    # the findings listed are still reported as they are
    assert [f["id"] for f in summarize(SCAN_RESULT_V1, p)["findings"]] == ["CVE-1"]


def test_scan_summary_lower_than_findings_never_lowers_a_count() -> None:
    p = _scan([("CVE-1", "critical"), ("CVE-2", "critical"), ("CVE-3", "high")], {s: 0 for s in SEVERITIES})
    assert summarize(SCAN_RESULT_V1, p)["counts"] == {"critical": 2, "high": 1, "medium": 0, "low": 0, "unknown": 0}


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, 0), ("7", 0), (None, 0), (-3, 0), (2.5, 3), (float("inf"), predicates.MAX_SCAN_COUNT),
     (float("nan"), predicates.MAX_SCAN_COUNT), (10**40, predicates.MAX_SCAN_COUNT)],
    ids=["bool", "string", "null", "negative", "fraction", "infinity", "nan", "huge"],
)
def test_scan_summary_odd_values(value: Any, expected: int) -> None:
    """Not a count: ignored (the findings decide); a fraction rounds up; unbounded ones are capped high."""
    p = _scan([], {"critical": value})
    counts = summarize(SCAN_RESULT_V1, p)["counts"]
    assert counts["critical"] == expected
    json.dumps(counts, allow_nan=False)  # what the verdict carries stays valid JSON
    assert all(isinstance(counts[s], int) and not isinstance(counts[s], bool) for s in SEVERITIES)


@pytest.mark.parametrize("summary", [None, "high", ["critical"], 3])
def test_scan_summary_not_an_object_counts_findings(summary: Any) -> None:
    p = _scan([("CVE-1", "high")], summary)
    assert summarize(SCAN_RESULT_V1, p)["counts"]["high"] == 1
    assert not math.isnan(summarize(SCAN_RESULT_V1, p)["counts"]["critical"])


def _github_v1(repository: str, ref: str | None, *, deps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    workflow: dict[str, Any] = {"repository": repository, "path": ".github/workflows/release.yml"}
    if ref is not None:
        workflow["ref"] = ref
    return {
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {"workflow": workflow},
            "internalParameters": {"github": {"event_name": "push"}},
            "resolvedDependencies": deps if deps is not None else [
                {"uri": f"git+{repository}@{ref}", "digest": {"gitCommit": "a" * 40}}],
        },
        "runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}},
    }


def test_slsa_v1_github_workflow_source_carries_the_ref() -> None:
    s = summarize(SLSA_V1, _github_v1("https://github.com/stellaops/app", "refs/heads/main"))
    assert s["source"] == "git+https://github.com/stellaops/app@refs/heads/main"
    assert s["builderId"] == "https://github.com/actions/runner/github-hosted"


def test_slsa_v1_feature_branch_never_reads_as_main() -> None:
    s = summarize(SLSA_V1, _github_v1("https://github.com/stellaops/app", "refs/heads/feature-x"))
    assert s["source"] == "git+https://github.com/stellaops/app@refs/heads/feature-x"


def test_slsa_v1_repository_already_carrying_the_ref_is_kept() -> None:
    s = summarize(SLSA_V1, _github_v1("git+https://github.com/stellaops/app@refs/heads/main", "refs/heads/main"))
    assert s["source"] == "git+https://github.com/stellaops/app@refs/heads/main"


@pytest.mark.parametrize(
    ("repository", "ref"),
    [("git+https://github.com/stellaops/app@refs/heads/feature-x", "refs/heads/main"),
     ("git+https://github.com/stellaops/app@refs/heads/main", "refs/heads/feature-x")],
    ids=["repository-says-feature", "repository-says-main"],
)
def test_slsa_v1_repository_and_ref_that_disagree_give_no_source(repository: str, ref: str) -> None:
    """Whichever of the two signed fields says main, a disagreement is never read as main."""
    deps = [{"uri": "git+https://github.com/stellaops/app@refs/heads/main", "digest": {"gitCommit": "a" * 40}}]
    s = summarize(SLSA_V1, _github_v1(repository, ref, deps=deps))
    assert s["source"] == ""  # and not the dependency's uri either


def test_slsa_v1_workflow_without_a_ref_gives_the_repository_alone() -> None:
    """No ref in the signed provenance: nothing to match "main" against (fail closed)."""
    deps = [{"uri": "git+https://github.com/stellaops/app@refs/heads/main"}]
    s = summarize(SLSA_V1, _github_v1("https://github.com/stellaops/app", None, deps=deps))
    assert s["source"] == "https://github.com/stellaops/app"


def test_slsa_v1_explicit_source_parameter_still_wins() -> None:
    p = _github_v1("https://github.com/stellaops/app", "refs/heads/main")
    p["buildDefinition"]["externalParameters"]["source"] = "git+https://github.com/stellaops/other@refs/tags/v1"
    assert summarize(SLSA_V1, p)["source"] == "git+https://github.com/stellaops/other@refs/tags/v1"


@pytest.mark.parametrize("ref", [7, {"x": 1}, ["refs/heads/main"], ""])
def test_slsa_v1_odd_ref_is_not_joined(ref: Any) -> None:
    s = summarize(SLSA_V1, _github_v1("https://github.com/stellaops/app", ref, deps=[]))
    assert s["source"] == "https://github.com/stellaops/app"


def test_slsa_v1_without_workflow_falls_back_to_the_first_dependency() -> None:
    p = {"buildDefinition": {"buildType": "https://example.com/build/v1", "externalParameters": {},
                             "resolvedDependencies": [{"uri": "git+https://example.com/app@refs/tags/v1"}]},
         "runDetails": {"builder": {"id": "https://example.com/builder"}}}
    assert summarize(SLSA_V1, p)["source"] == "git+https://example.com/app@refs/tags/v1"
