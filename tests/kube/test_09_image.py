"""The provider image, built for real and run as the provider of the install test.

``deploy/scripts/build-image.sh`` builds the Dockerfile with buildah from a base made of Debian's
packages (mmdebstrap; no image registry is reachable here), and podman runs it with Debian's
``runc``: as its own non-root user, with a read-only root filesystem and a tmpfs ``/tmp``, the
site's ConfigMaps and Secrets (as the API server holds them) mounted read-only at their pod
paths, on the host's loopback only (``--network=host`` with the server bound to 127.0.0.1: the
provider must reach the loopback registry, and ``--network=none`` would cut it off). The Gatekeeper
Provider is re-pointed at the container (the overlay's URL patch), the install test's Pods are
created through the API server, and the image's HEALTHCHECK is run with ``podman healthcheck run``.
"""

from __future__ import annotations

import hashlib
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
from tests.fixtures.tools import ROOT
from tests.kube.conftest import DEPLOY, SCAN, Installed, materialize_from_cluster, pod

IMAGE = "localhost/stellaops/attest:e2e"
NEEDED = ("buildah", "podman", "runc", "mmdebstrap")
# podman with Debian's runc on this kind of machine (shared/reference/kubernetes-loopback.md):
# crun's setrlimit is refused and cgroups are hybrid.
CONTAINERS_CONF = """[containers]
default_ulimits = []
pids_limit = 0
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
"""


def _need_engine() -> None:
    missing = [c for c in NEEDED if shutil.which(c) is None]
    if missing:
        msg = f"{', '.join(missing)} not installed: scripts/debs.sh image (Debian packages)"
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
def engine_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    _need_engine()
    d = tmp_path_factory.mktemp("podman")
    (d / "containers.conf").write_text(CONTAINERS_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(d / "containers.conf")}


def _source_hash() -> str:
    """sha256 over what the image is built from (the Dockerfile and the files .dockerignore lets in)."""
    h = hashlib.sha256()
    files = [ROOT / "Dockerfile", ROOT / "pyproject.toml", ROOT / "README.md", DEPLOY / "scripts" / "healthcheck.py",
             DEPLOY / "scripts" / "build-image.sh"]
    files += sorted(p for p in (ROOT / "provider").rglob("*") if p.is_file() and "__pycache__" not in p.parts
                    and not p.name.endswith(".pyc") and ".egg-info" not in str(p))
    for f in files:
        h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@pytest.fixture(scope="module")
def built_image(engine_env: dict[str, str]) -> str:
    """The image of this checkout (built once per source hash and kept in the local store)."""
    image = f"{IMAGE}-{_source_hash()}"
    exists = subprocess.run(["podman", "image", "exists", image], env=engine_env, timeout=60, check=False)
    if exists.returncode != 0:
        proc = subprocess.run([str(DEPLOY / "scripts" / "build-image.sh"), "--image", image], capture_output=True,
                              text=True, timeout=1500, env=engine_env, check=False)
        assert proc.returncode == 0, f"build-image.sh failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
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
        signed = w.push_tag("sample:v1.0.0", tag)
        unsigned = w.push_tag("sample:unsigned", tag)
        w.wait_admitted(lambda i: pod(f"signed-{i}", signed), ns, timeout=60)
        w.expect_denied(pod("unsigned", unsigned), ns, f"[{name}] container <app> image <{unsigned}>",
                        f"no attestation of type <{SCAN}> is attached")
    finally:
        _point_provider(w, w.provider.url)
        w.provider.start()
