"""Threat "image volumes unchecked" (issue 16 item 3; row and id proposed to the lead): an
unattested image mounted as a Kubernetes ImageVolume
(``spec.volumes[].image.reference``) beside an attested container was admitted by every shipped
policy: the library read containers, initContainers and ephemeralContainers only (issue 16
item 3). Every image-bearing field of every pod spec the library reads is now checked
(docs/policies.md, "The images a policy checks").

The same real world as test_index_policies.py: A is a genuinely attested image (release key),
E an image with no attestation, the provider is ``stella serve``, the policies the shipped
pipeline bundle through the real ``opa``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.hardening.test_index_policies import CASES, IndexWorld, violations, world  # noqa: F401  (world: the fixture)


def _spec(good: str, bad: str) -> dict[str, Any]:
    return {"containers": [{"name": "app", "image": good}],
            "volumes": [{"name": "models", "image": {"reference": bad, "pullPolicy": "IfNotPresent"}}, {"name": "tmp", "emptyDir": {}}]}


def _objects(good: str, bad: str) -> dict[str, dict[str, Any]]:
    template = {"metadata": {"labels": {"app": "a"}}, "spec": _spec(good, bad)}
    return {
        "Pod": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": _spec(good, bad)},
        "Deployment": {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": template}},
        "CronJob": {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
                    "spec": {"jobTemplate": {"spec": {"template": template}}}},
        "PodTemplate": {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": template},
    }


@pytest.mark.parametrize("kind", ["Pod", "Deployment", "CronJob", "PodTemplate"])
@pytest.mark.parametrize("policy", sorted(CASES))
def test_an_unattested_image_volume_is_denied(world: IndexWorld, policy: str, kind: str, tmp_path: Path) -> None:  # noqa: F811
    package, parameters = CASES[policy]
    good, bad = world.images["A"], world.images["E"]
    msgs = violations(world, package, _objects(good, bad)[kind], parameters, tmp_path)
    assert msgs, f"{policy} admitted a {kind} mounting the unattested image {bad} as a volume"
    assert all(m.startswith(f"imageVolume <models> image <{bad}>: ") for m in msgs), msgs
    # control: the same object with the attested image as its volume passes
    assert violations(world, package, _objects(good, good)[kind], parameters, tmp_path) == []
