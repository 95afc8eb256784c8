"""Audit: Pods created while a constraint was in `dryrun` are admitted, and Gatekeeper's audit
reports them in the constraint's status with the provider's reasons."""

from __future__ import annotations

import time

from tests.kube.conftest import SCAN, Installed, pod


def test_dryrun_admits_and_audit_reports_with_the_providers_reasons(installed: Installed) -> None:
    w = installed
    ns = w.namespace("audit")
    kind, name = w.sample_constraint("requireattestations", ns, action="dryrun")
    unsigned = w.images["sample:unsigned"]
    w.expect_admitted(pod("unsigned", unsigned), ns)
    w.expect_admitted(pod("signed", w.images["sample:v1.0.0"]), ns)
    end = time.monotonic() + 120  # audit runs every few seconds (the fixture's --audit-interval)
    violations: list[dict[str, str]] = []
    while time.monotonic() < end:
        status = w.kube.get_json(kind.lower(), name).get("status") or {}
        violations = [v for v in status.get("violations") or [] if v.get("namespace") == ns]
        if violations:
            break
        time.sleep(2)
    assert violations, f"audit reported nothing for {ns} within 120 s"
    assert {v["name"] for v in violations} == {"unsigned"}, violations
    assert all(v["enforcementAction"] == "dryrun" and v["kind"] == "Pod" for v in violations), violations
    messages = " ".join(v["message"] for v in violations)
    assert f"image <{unsigned}>" in messages and f"<{SCAN}>" in messages, messages
