"""The provider image, built for real and run as the provider of the install test.

``make image`` (``deploy/scripts/build-image.sh``) builds the Dockerfile with buildah from a base
made of Debian's packages (mmdebstrap; no image registry is reachable here) before the tests run
(the build fetches from PyPI; tests send traffic to loopback only), and podman runs it with Debian's
``runc``: as its own non-root user, with a read-only root filesystem and a tmpfs ``/tmp``, the
site's ConfigMaps and Secrets (as the API server holds them) mounted read-only at their pod
paths, on the host's loopback only (``--network=host`` with the server bound to 127.0.0.1: the
provider must reach the loopback registry, and ``--network=none`` would cut it off). The Gatekeeper
Provider is re-pointed at the container (the overlay's URL patch), the install test's Pods are
created through the API server, and the image's HEALTHCHECK is run with ``podman healthcheck run``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.fixtures.kube import free_port
from tests.kube.conftest import DEPLOY, SCAN, Installed, materialize_from_cluster, pod

IMAGE = "localhost/stellaops/attest:e2e"  # `make image` adds -<source hash>
NEEDED = ("buildah", "podman", "runc")
CONTAINERS_CONF = Path(__file__).with_name("containers.conf")  # runc on this kind of machine


def _require(ok: bool, msg: str) -> None:
    """Fail under CI, skip elsewhere (as tests/fixtures/procs.py's require_tools)."""
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


@dataclass
class Container:
    name: str
    port: int
    env: dict[str, str]

    def podman(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, env=self.env,
                              check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        return proc

    def inspect(self, fmt: str) -> str:
        return self.podman("inspect", "--format", fmt, self.name).stdout.strip()

    def logs(self) -> str:
        return self.podman("logs", self.name, check=False).stdout[-4000:]


@pytest.fixture(scope="module")
def engine_env() -> dict[str, str]:
    missing = [c for c in NEEDED if shutil.which(c) is None]
    _require(not missing, f"{', '.join(missing)} not installed: make debs")
    return {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(CONTAINERS_CONF))}


@pytest.fixture(scope="module")
def built_image(engine_env: dict[str, str]) -> str:
    """The image of this checkout, built by `make image` (the build needs PyPI, so it is not made
    here: tests send traffic to loopback only)."""
    if os.environ.get("STELLAOPS_TEST_IMAGE"):  # an image built elsewhere, e.g. while the tree moves on
        return os.environ["STELLAOPS_TEST_IMAGE"]
    digest = subprocess.run([str(DEPLOY / "scripts" / "build-image.sh"), "--print-source-hash"], capture_output=True,
                            text=True, timeout=60, check=True).stdout.strip()
    image = f"{IMAGE}-{digest}"
    exists = subprocess.run(["podman", "image", "exists", image], env=engine_env, timeout=60, check=False)
    _require(exists.returncode == 0, f"image {image} is not built for this checkout: run `make image`")
    return image


@pytest.fixture(scope="module")
def container(installed: Installed, built_image: str, engine_env: dict[str, str],
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    root = tmp_path_factory.mktemp("image-pod")
    materialize_from_cluster(installed.kube, root)
    store = root / "var" / "lib" / "stellaops"
    store.mkdir(parents=True, exist_ok=True)
    os.chown(store, 10001, 10001)
    for path in (root / "etc").rglob("*"):  # the kubelet's defaultMode 0644 (keys 0600 owned by the pod's user)
        os.chown(path, 10001, 10001)
    deployment = installed.kube.get_json("deployment", "stellaops", "-n", "stellaops-system")
    env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0].get("env", [])
           if "value" in e}
    c = Container(name=f"stellaops-e2e-{uuid.uuid4().hex[:8]}", port=free_port(), env=engine_env)
    argv = ["run", "-d", "--name", c.name, "--network=host", "--read-only", "--tmpfs", "/tmp:rw,size=64m",
            "--cap-drop=ALL", "--security-opt=no-new-privileges",
            "-v", f"{root / 'etc' / 'stellaops'}:/etc/stellaops:ro", "-v", f"{store}:/var/lib/stellaops:rw",
            *[a for k, v in env.items() for a in ("-e", f"{k}={v}")],
            "-e", "STELLAOPS_SERVER__HOST=127.0.0.1", "-e", f"STELLAOPS_SERVER__PORT={c.port}",
            built_image]  # fmt: skip
    c.podman(*argv)
    try:
        end = time.monotonic() + 120
        while time.monotonic() < end:
            if c.inspect("{{.State.Running}}") != "true":
                pytest.fail(f"the container exited:\n{c.logs()}")
            if c.podman("healthcheck", "run", c.name, check=False).returncode == 0:
                break
            time.sleep(1)
        else:
            pytest.fail(f"the image's HEALTHCHECK did not pass within 120 s:\n{c.logs()}")
        yield c
    finally:
        c.podman("rm", "-f", "-t", "10", c.name, check=False, timeout=60)


def _point_provider(installed: Installed, url: str) -> None:
    doc = yaml.safe_load((installed.overlay / "kustomization.yaml").read_text())
    doc["patches"][0]["patch"] = yaml.safe_dump([{"op": "replace", "path": "/spec/url", "value": url}])
    (installed.overlay / "kustomization.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    installed.kube.kubectl("apply", "-k", str(installed.overlay), timeout=120)


def test_image_runs_as_non_root_with_a_read_only_root(container: Container) -> None:
    assert container.inspect("{{.Config.User}}") == "10001:10001"
    assert container.inspect("{{.HostConfig.ReadonlyRootfs}}") == "true"
    proc = container.podman("exec", container.name, "python", "-c",
                            "import os; print(os.getuid()); open('/opt/stellaops/x', 'w')", check=False)
    assert proc.stdout.splitlines()[0] == "10001", proc.stdout
    assert "Read-only file system" in proc.stderr, proc.stderr


def test_image_as_the_provider_of_the_install_test(installed: Installed, container: Container) -> None:
    """docs/install.md step 6 with the built image serving Gatekeeper's calls (the process
    provider is stopped meanwhile, so nothing else can answer)."""
    w = installed
    _point_provider(w, f"https://127.0.0.1:{container.port}/gatekeeper/v1/verify")
    w.provider.stop()
    try:
        ns = w.namespace("image")
        _, name = w.sample_constraint("requireattestations", ns)
        tag = f"img-{uuid.uuid4().hex[:8]}"  # keys Gatekeeper has not cached from the process provider
        signed = w.push_tag("sample:v1.0.0", f"{tag}-signed")  # one repository: two tags
        unsigned = w.push_tag("sample:unsigned", f"{tag}-unsigned")
        w.wait_admitted(lambda i: pod(f"signed-{i}", signed), ns, timeout=60)
        w.expect_denied(pod("unsigned", unsigned), ns, f"[{name}] container <app> image <{unsigned}>",
                        f"no attestation of type <{SCAN}> is attached")
    finally:
        _point_provider(w, w.provider.url)
        w.provider.start()
