"""Every place a workload names an image, through the API server: Deployments, CronJobs, init
containers, ephemeral containers (added through the ``pods/ephemeralcontainers`` subresource,
as ``kubectl debug`` does) and image volumes. The constraint is the shipped
require-scan-and-sbom sample, which matches Pods, Deployments, ..., Jobs and CronJobs."""

from __future__ import annotations

from typing import Any

import pytest

from tests.kube.conftest import SCAN, Installed, parse_created, pod


@pytest.fixture()
def ns(installed: Installed) -> str:
    ns = installed.namespace("workload")
    installed.sample_constraint("requireattestations", ns)
    return ns


def _template(containers: list[dict[str, Any]], init: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": containers}
    if init:
        spec["initContainers"] = init
    return {"metadata": {"labels": {"app": "x"}}, "spec": spec}


def deployment(name: str, containers: list[dict[str, Any]], init: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "x"}}, "template": _template(containers, init)}}


def cronjob(name: str, containers: list[dict[str, Any]]) -> dict[str, Any]:
    tpl = _template(containers)
    tpl["spec"]["restartPolicy"] = "Never"
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": "0 0 * * *", "jobTemplate": {"spec": {"template": tpl}}}}


def test_deployment_admitted_and_denied_on_its_init_container(installed: Installed, ns: str) -> None:
    w = installed
    signed, unsigned = w.images["sample:v1.0.0"], w.images["sample:unsigned"]
    w.expect_admitted(deployment("good", [{"name": "app", "image": signed}], [{"name": "init", "image": signed}]), ns)
    w.expect_denied(deployment("bad", [{"name": "app", "image": signed}], [{"name": "migrate", "image": unsigned}]), ns,
                    f"initContainer <migrate> image <{unsigned}>", f"<{SCAN}>")


def test_cronjob_admitted_and_denied(installed: Installed, ns: str) -> None:
    w = installed
    w.expect_admitted(cronjob("good", [{"name": "job", "image": w.images["sample:v1.0.0"]}]), ns)
    unsigned = w.images["sample:unsigned"]
    w.expect_denied(cronjob("bad", [{"name": "job", "image": unsigned}]), ns, f"container <job> image <{unsigned}>")


def test_pod_init_container_denied(installed: Installed, ns: str) -> None:
    w = installed
    unsigned = w.images["sample:unsigned"]
    obj = pod("init", w.images["sample:v1.0.0"], initContainers=[{"name": "setup", "image": unsigned}])
    w.expect_denied(obj, ns, f"initContainer <setup> image <{unsigned}>")


def test_ephemeral_container_through_the_subresource(installed: Installed, ns: str) -> None:
    """`kubectl debug` adds an ephemeral container with a PATCH of pods/ephemeralcontainers:
    Gatekeeper is asked (the chart's subresource rules) and refuses an unsigned image."""
    w = installed
    w.expect_admitted(pod("target", w.images["sample:v1.0.0"]), ns)
    unsigned = w.images["sample:unsigned"]
    denied = parse_created(w.kube.kubectl("debug", "-n", ns, "pod/target", f"--image={unsigned}", "--container=dbg",
                                          "--attach=false", "-v=6", check=False))
    assert denied.returncode != 0, denied.stdout
    assert denied.status == 403, denied.error
    assert f"ephemeralContainer <dbg> image <{unsigned}>" in denied.error, denied.error
    spec = w.kube.get_json("pod", "target", "-n", ns)["spec"]
    assert not spec.get("ephemeralContainers"), spec
    ok = parse_created(w.kube.kubectl("debug", "-n", ns, "pod/target", f"--image={w.images['sample:v1.0.0']}",
                                      "--container=dbg2", "--attach=false", "-v=6", check=False))
    assert ok.returncode == 0 and ok.status == 200, ok.error
    names = [c["name"] for c in w.kube.get_json("pod", "target", "-n", ns)["spec"]["ephemeralContainers"]]
    assert names == ["dbg2"]


def test_image_volume_is_checked_like_a_container(installed: Installed, ns: str) -> None:
    """An image volume (spec.volumes[].image, Kubernetes 1.31+) is pulled and mounted by the
    kubelet: an unsigned one must be refused like a container image."""
    w = installed
    unsigned = w.images["sample:unsigned"]
    obj = pod("imgvol", w.images["sample:v1.0.0"],
              volumes=[{"name": "data", "image": {"reference": unsigned, "pullPolicy": "IfNotPresent"}}])
    obj["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    w.expect_denied(obj, ns, f"<{unsigned}>")
