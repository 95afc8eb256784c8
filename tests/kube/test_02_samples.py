"""Every shipped policy's samples through the API server, Gatekeeper's webhook and the real
provider: the shipped sample constraint (restricted to the test's namespace) applied with
kubectl, each sample object created with kubectl; allowed ones are created (HTTP 201),
disallowed ones refused (HTTP 403) with the messages tests/gatekeeper/test_samples.py pins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.gatekeeper.test_samples import CASES, DENIALS, _expected
from tests.kube.conftest import DEPLOY, Installed


@pytest.mark.parametrize(("policy", "test", "case"), CASES)
def test_sample_through_the_api_server(installed: Installed, policy: Path, test: dict[str, Any],
                                       case: dict[str, Any]) -> None:
    w = installed
    ns = w.namespace("sample")
    shipped = DEPLOY / "gatekeeper" / policy.name / test["constraint"]
    assert shipped.is_file(), f"{shipped} is missing: run make generate"
    _, name = w.constraint(shipped, ns)
    obj = w.rewrite(yaml.safe_load((policy / case["object"]).read_text()))
    expected, messages = _expected(case)
    case_id = f"{policy.name}/{test['name']}/{case['name']}"
    if expected in ("no", False, 0):
        w.expect_admitted(obj, ns)
        return
    fragments = [*messages, f"[{name}] "]
    for denial in DENIALS.get(case_id, []):
        fragments += [f.replace("{r}", f"{w.registry}/kube") for f in denial]
    w.expect_denied(obj, ns, *fragments)
