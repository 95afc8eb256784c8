"""The installed world of tests/kube: StellaOps installed into the loopback API server as
docs/install.md says, Gatekeeper v3.23.1 calling the real provider over mTLS.

``installed`` (session) does, in order, what a user does:

1. reads Gatekeeper's CA from Secret ``gatekeeper-webhook-server-cert`` with ``kubectl`` (step 4);
2. runs ``deploy/scripts/make-certs.sh --site`` with it, the trust files and an edited
   ``stellaops.yaml`` (registries narrowed to the loopback registries), plus ``--san IP:127.0.0.1``
   because this provider is called by address, not by its Service name;
3. wraps the site in an overlay of its own that patches only the Provider's ``spec.url`` to the
   loopback provider (``caBundle`` is the site's), and ``kubectl apply -k`` it;
4. runs the provider as the image does (the Dockerfile's ``CMD``), with the ConfigMaps and Secrets
   the API server now holds written at their mount paths (what the kubelet would do), on 127.0.0.1;
5. applies every generated ConstraintTemplate (``deploy/gatekeeper/<policy>/template.yaml``) and
   waits until Gatekeeper has made each constraint CRD.

Constraints are applied per test into a namespace of the test's own (``match.namespaces`` is the
only change to a shipped sample constraint), so tests never see each other's constraints.

The attested images live in ``ocireg`` under ``kube/``; the samples' ``registry.example.com/``
references are rewritten to ``<ocireg>/kube/samples/`` (the scenarios of tests/gatekeeper/test_samples.py).
Images under ``<proxy>/…`` go through a :class:`~tests.fixtures.faults.FaultProxy` in front of the
same registry, for the stalled-registry and transient-failure cases.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fixtures.faults import FaultProxy
from tests.fixtures.kube import KubeStack, KubeStackError, free_port
from tests.fixtures.tools import ROOT, tool

STELLA = str(Path(sys.executable).parent / "stella")
DEPLOY = ROOT / "deploy"
POLICIES = sorted(p.parent.name for p in (DEPLOY / "gatekeeper").glob("*/template.yaml"))
SCAN = "stellaops.io/predicates/scan-result@v1"
SBOM = "stellaops.io/predicates/sbom@v1"
SLSA1 = "https://slsa.dev/provenance/v1"  # a type `cosign attest --type` accepts (an absolute URI)
# The parameters the key-signed-offline images are checked with (require-scan-and-sbom sample):
OFFLINE = {"requireTlog": False, "predicateTypes": [SLSA1]}
COSIGN_PASSWORD = "kube-e2e"
STABLE_HOST = "registry.example.com"

sys.path.insert(0, str(ROOT / "scripts"))
import importlib.util  # noqa: E402

_spec = importlib.util.spec_from_file_location("validate_manifests", ROOT / "scripts" / "validate-manifests.py")
assert _spec and _spec.loader
vm = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("validate_manifests", vm)
_spec.loader.exec_module(vm)


def image_cmd() -> list[str]:
    """The Dockerfile's ``CMD`` (what the image runs)."""
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    return json.loads([i for i in parser.structure if i["instruction"] == "CMD"][-1]["value"])


# --- the provider, as the pod runs it -----------------------------------------------------------------
@dataclass
class ProviderPod:
    """The provider process with the pod's files under ``root`` (see :func:`vm.materialize`)."""

    root: Path
    port: int
    config: Path
    ca: Path  # the StellaOps CA (the Provider's caBundle)
    client_cert: Path  # Gatekeeper's certificate, which the provider trusts as a client
    client_key: Path
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/gatekeeper/v1/verify"

    @property
    def log(self) -> Path:
        return self.root / "provider.log"

    def start(self, timeout: float = 90) -> None:
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "STELLAOPS_CONFIG": str(self.config),
            "STELLAOPS_SERVER__HOST": "127.0.0.1",  # the shipped 0.0.0.0 is for the pod's network
            "STELLAOPS_SERVER__PORT": str(self.port),
            "TMPDIR": str(self.root / "tmp"),
            **self.env,
        }
        (self.root / "tmp").mkdir(exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(image_cmd(), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
                                         start_new_session=True)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise KubeStackError(f"the provider exited ({self.proc.returncode}):\n{self.log_tail()}")
            if self.healthy():
                return
            time.sleep(0.3)
        self.stop()
        raise KubeStackError(f"the provider did not become healthy within {timeout:g}s:\n{self.log_tail()}")

    def healthy(self) -> bool:
        """``deploy/scripts/healthcheck.py /readyz`` with the pod's certificate, as the probe runs it."""
        tls = self.root / "etc" / "stellaops" / "tls"
        proc = subprocess.run(
            [sys.executable, str(DEPLOY / "scripts" / "healthcheck.py"), "/readyz"], capture_output=True, text=True,
            timeout=20, check=False,
            env={**os.environ, "STELLAOPS_SERVER__PORT": str(self.port), "STELLAOPS_HEALTHCHECK_CERT": str(tls / "tls.crt"),
                 "STELLAOPS_HEALTHCHECK_KEY": str(tls / "tls.key")},
        )  # fmt: skip
        return proc.returncode == 0

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGCONT)
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP every process of the provider: connections are accepted by the kernel and never answered."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)

    def serving_serial(self) -> int:
        """The serial number of the certificate the provider presents now."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                der = tls.getpeercert(binary_form=True)
        from cryptography import x509

        assert der is not None
        return x509.load_der_x509_certificate(der).serial_number


# --- kubectl results -------------------------------------------------------------------------------------
@dataclass
class Created:
    """What ``kubectl create -v=6`` said: the HTTP status of the POST and kubectl's output."""

    returncode: int
    status: int
    stdout: str
    stderr: str

    @property
    def error(self) -> str:
        """kubectl's error (from ``Error from server …`` on), without the -v=6 request log."""
        at = self.stderr.find("Error from server")
        if at >= 0:
            return self.stderr[at:]
        return "\n".join(line for line in self.stderr.splitlines() if not re.match(r"^[IWE]\d{4} ", line))


_STATUS = re.compile(r'"Response" verb="(?:POST|PATCH|PUT)" url="[^"]+" status="(\d{3})')
_STATUS_OLD = re.compile(r"(?:POST|PATCH|PUT) https://\S+ (\d{3}) ")


def parse_created(proc: subprocess.CompletedProcess[str]) -> Created:
    codes = _STATUS.findall(proc.stderr) or _STATUS_OLD.findall(proc.stderr)
    return Created(proc.returncode, int(codes[-1]) if codes else 0, proc.stdout, proc.stderr)


# --- the installed world ------------------------------------------------------------------------------
@dataclass
class Installed:
    kube: KubeStack
    registry: str  # ocireg, host:port
    proxy: FaultProxy  # in front of the same registry
    provider: ProviderPod
    site: Path
    overlay: Path
    work: Path
    images: dict[str, str]  # name -> reference (by tag)
    digests: dict[str, str]  # name -> digest
    cosign_key: Path
    stella_key: Path
    _seq: int = 0

    # -- namespaces and constraints
    def namespace(self, prefix: str = "t") -> str:
        self._seq += 1
        ns = f"{prefix}-{self._seq}-{uuid.uuid4().hex[:6]}"
        self.kube.kubectl("create", "namespace", ns)
        return ns

    def constraint(self, path: Path | str | dict[str, Any], ns: str, *, action: str | None = None,
                   parameters: dict[str, Any] | None = None) -> tuple[str, str]:
        """Apply a (shipped sample) constraint restricted to namespace ``ns``; wait until enforced.
        Returns (kind, name)."""
        doc = path if isinstance(path, dict) else yaml.safe_load(Path(path).read_text())
        doc = json.loads(json.dumps(doc))
        doc["metadata"]["name"] = f"{doc['metadata']['name']}-{ns}"[:63].rstrip("-")
        doc["spec"].setdefault("match", {})["namespaces"] = [ns]
        if action:
            doc["spec"]["enforcementAction"] = action
        if parameters is not None:
            doc["spec"]["parameters"] = {**doc["spec"].get("parameters", {}), **parameters}
        self.kube.apply(doc)
        self.kube.wait_constraint(doc["kind"], doc["metadata"]["name"])
        return doc["kind"], doc["metadata"]["name"]

    def sample_constraint(self, policy: str, ns: str, **kw: Any) -> tuple[str, str]:
        found = sorted((DEPLOY / "gatekeeper" / policy / "samples").glob("*/constraint.yaml"))
        assert found, f"deploy/gatekeeper/{policy} has no sample constraint"
        return self.constraint(found[0], ns, **kw)

    def rewrite(self, obj: Any) -> Any:
        """The samples' ``registry.example.com/…`` images, in the loopback registry."""
        return json.loads(json.dumps(obj).replace(f'"{STABLE_HOST}/', f'"{self.registry}/kube/samples/'))

    # -- creating objects
    def create(self, obj: dict[str, Any], ns: str, *extra: str) -> Created:
        """``kubectl create -f -`` (``-v=6``: the HTTP status of the request is in its log)."""
        proc = self.kube.kubectl("create", "-n", ns, "-f", "-", "-v=6", *extra, input=yaml.safe_dump(obj),
                                 check=False, timeout=60)
        return parse_created(proc)

    def expect_admitted(self, obj: dict[str, Any], ns: str) -> Created:
        got = self.create(obj, ns)
        assert got.returncode == 0 and got.status == 201, f"expected 201 Created, got {got.status}:\n{got.error}"
        return got

    def expect_denied(self, obj: dict[str, Any], ns: str, *fragments: str) -> str:
        got = self.create(obj, ns)
        assert got.returncode != 0, f"admitted, expected a denial: {got.stdout}"
        assert got.status == 403, f"expected HTTP 403, got {got.status}:\n{got.error}"
        assert 'admission webhook "validation.gatekeeper.sh" denied the request' in got.error, got.error
        for fragment in fragments:
            assert fragment in got.error, f"{fragment!r} not in kubectl's error:\n{got.error}"
        return got.error

    def wait_admitted(self, make: Any, ns: str, timeout: float = 90) -> None:
        """Create ``make(i)`` until one is admitted: Gatekeeper has caught up with new constraints,
        providers or certificates (a bounded wait; the last denial is in the failure)."""
        end = time.monotonic() + timeout
        i = 0
        last: Created | None = None
        while time.monotonic() < end:
            i += 1
            last = self.create(make(i), ns)
            if last.returncode == 0:
                return
            time.sleep(1)
        raise AssertionError(f"nothing admitted within {timeout:g}s; last answer {last.status if last else '-'}:\n"
                             f"{last.error if last else ''}")

    def push_tag(self, name: str, tag: str) -> str:
        """Tag the image ``name`` again (same digest, a new key for Gatekeeper's cache)."""
        from tests.fixtures.images import loopback_client

        ref = self.images[name]
        host, rest = ref.split("/", 1)
        repo = rest.rsplit(":", 1)[0]
        with loopback_client() as c:  # pushed to the registry itself, never through the fault proxy
            m = c.get_manifest(self.registry, repo, self.digests[name])
            c.put_manifest(self.registry, repo, tag, m.raw, m.media_type)
        return f"{host}/{repo}:{tag}"


def pod(name: str, image: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": image}], **spec}}  # fmt: skip


def _run(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False, cwd=cwd,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def _seed_samples(registry: str, work: Path, test_sigstore: Any) -> dict[str, str]:
    """The images of tests/gatekeeper/test_samples.py (its SCENARIOS and multi-arch INDEXES) under
    ``<registry>/kube/samples/app``, made the same way (release/vendor/rogue keys logged in the test
    Rekor, ci keyless). The making is repeated here because that module keeps it inside its fixture;
    the scenarios themselves are imported, so both suites decide on the same attestations."""
    from stellaops.registry import OCI_INDEX, OCI_MANIFEST
    from tests.fixtures.images import _push_single, loopback_client, push_test_image
    from tests.fixtures.sigstore import dsse_entry_body
    from tests.gatekeeper import test_samples as ts

    keys = {name: ec.generate_private_key(ec.SECP256R1()) for name in ("release", "vendor", "rogue")}
    for name in ("release", "vendor"):
        (work / f"{name}.pub").write_bytes(keys[name].public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    digests: dict[str, str] = {}
    name = f"{registry}/kube/samples/app"

    def attest(tag: str, digest: str, atts: list[Any]) -> None:
        for i, att in enumerate(atts):
            payload = ts._statement(name, digest, att)
            logged = int(time.time() - att.logged_days_ago * 86400)
            if att.signer == "ci":
                leaf = test_sigstore.issue(identity=ts.CI_IDENTITY, issuer=ts.GITHUB_ISSUER,
                                           not_before=dt.datetime.fromtimestamp(logged - 60, dt.timezone.utc))
                bundle = test_sigstore.attest(payload, leaf=leaf, integrated_time=logged).bundle_json()
            else:
                key = keys[att.signer]
                env, sig = ts._sign_p256(key, payload)
                pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo).decode()
                entry = test_sigstore.rekor.add(dsse_entry_body(env, payload, [sig], pub), logged)
                bundle = json.dumps({
                    "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                    "verificationMaterial": {"publicKey": {"hint": ""}, "tlogEntries": [entry.bundle_entry()]},
                    "dsseEnvelope": json.loads(env),
                }).encode()
            path = work / f"sample-{tag}-{i}.bundle.json"
            path.write_bytes(bundle)
            if att.subject_digest:
                _run([tool("cosign"), "attach", "attestation", "--attestation", str(path), f"{name}@{digest}"])
            else:
                _run([STELLA, "attest", "attach", "--image", f"{name}@{digest}", "--attestation", str(path),
                      "--format", "bundle"])

    for tag, atts in ts.SCENARIOS.items():
        digests[tag] = push_test_image(registry, "kube/samples/app", tag)
        attest(tag, digests[tag], atts)
    with loopback_client() as client:
        for tag, members in getattr(ts, "INDEXES", {}).items():
            entries = []
            for j, (platform, atts) in enumerate(members):
                os_, _, arch = platform.partition("/")
                digest, size = _push_single(client, registry, "kube/samples/app", os_, arch)
                attest(f"{tag}-{j}", digest, atts)
                entries.append({"mediaType": OCI_MANIFEST, "size": size, "digest": digest,
                                "platform": {"os": os_, "architecture": arch}})
            raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries},
                             separators=(",", ":")).encode()
            digests[tag] = client.put_manifest(registry, "kube/samples/app", tag, raw, OCI_INDEX)
    return digests


def _cosign_attest(key: Path, ref: str, predicate: dict[str, Any], ptype: str, work: Path, *, legacy: bool) -> None:
    pred = work / f"pred-{uuid.uuid4().hex[:8]}.json"
    pred.write_text(json.dumps(predicate))
    cmd = [tool("cosign"), "attest", "--yes", "--key", str(key), "--type", ptype, "--predicate", str(pred),
           "--use-signing-config=false", "--tlog-upload=false"]
    if legacy:
        cmd.append("--new-bundle-format=false")
    _run([*cmd, ref], env={"COSIGN_PASSWORD": COSIGN_PASSWORD})


def _stella_attest(key: Path, ref: str, predicate: dict[str, Any], ptype: str, work: Path) -> None:
    pred = work / f"pred-{uuid.uuid4().hex[:8]}.json"
    pred.write_text(json.dumps(predicate))
    env = {"COSIGN_PASSWORD": COSIGN_PASSWORD}
    envelope = _run([STELLA, "attest", "sign", "--predicate", str(pred), "--type", ptype, "--image", ref,
                     "--key", str(key)], env=env)
    out = work / f"att-{uuid.uuid4().hex[:8]}.dsse.json"
    out.write_text(envelope)
    _run([STELLA, "attest", "attach", "--image", ref, "--attestation", str(out)], env=env)


def _seed_formats(registry: str, proxy: str, work: Path) -> tuple[dict[str, str], dict[str, str], Path, Path]:
    """Images attested by cosign (bundle, .att) and stella with keys, offline (requireTlog: false),
    multi-arch indexes, and images reached through the fault proxy."""
    from tests.fixtures.images import loopback_client, push_test_image

    _run([tool("cosign"), "generate-key-pair"], env={"COSIGN_PASSWORD": COSIGN_PASSWORD}, cwd=work)
    _run([STELLA, "key", "generate", "--output-key-prefix", str(work / "stella")], env={"COSIGN_PASSWORD": COSIGN_PASSWORD})
    cosign_key, stella_key = work / "cosign.key", work / "stella.key"
    images: dict[str, str] = {}
    digests: dict[str, str] = {}

    def push(name: str, platforms: list[str] | None = None) -> str:
        digests[name] = push_test_image(registry, f"kube/{name}", "v1", platforms=platforms)
        images[name] = f"{registry}/kube/{name}:v1"
        return f"{registry}/kube/{name}@{digests[name]}"

    from tests.gatekeeper.test_samples import slsa1

    both = (SLSA1,)
    preds = {SLSA1: slsa1("https://github.com/actions/runner/github-hosted",
                          "git+https://github.com/stellaops/app@refs/heads/main")}
    for name, how in (("cosign-bundle", "bundle"), ("cosign-att", "att"), ("stella", "stella")):
        ref = push(name)
        for t in both:
            if how == "stella":
                _stella_attest(stella_key, ref, preds[t], t, work)
            else:
                _cosign_attest(cosign_key, ref, preds[t], t, work, legacy=how == "att")
    # multi-arch: the index itself attested; every platform attested; one platform only
    platforms = ["linux/amd64", "linux/arm64"]
    for name in ("index-own", "index-platforms", "index-one-platform"):
        ref = push(name, platforms)
        with loopback_client() as c:
            index = json.loads(c.get_manifest(registry, f"kube/{name}", digests[name]).raw)
        plats = [m["digest"] for m in index["manifests"]]
        targets = {"index-own": [digests[name]], "index-platforms": plats, "index-one-platform": plats[:1]}[name]
        for d in targets:
            for t in both:
                _cosign_attest(cosign_key, f"{registry}/kube/{name}@{d}", preds[t], t, work, legacy=False)
    # through the fault proxy: signed (registry stalls later) and, for each test that needs a fresh key, more tags
    ref = push("via-proxy")
    for t in both:
        _cosign_attest(cosign_key, ref, preds[t], t, work, legacy=False)
    images["via-proxy"] = f"{proxy}/kube/via-proxy:v1"
    return images, digests, cosign_key, stella_key


def _provider_config(registry: str, proxy: str) -> str:
    """The shipped stellaops.yaml, edited as docs/install.md says: trust and registries."""
    from tests.gatekeeper.test_samples import CI_IDENTITY, GITHUB_ISSUER

    doc = yaml.safe_load((DEPLOY / "kubernetes" / "base" / "stellaops.yaml").read_text())
    trust = "/etc/stellaops/trust"
    doc["attestation"]["trustRoots"] = {"offline": True, "bundlePath": f"{trust}/trusted_root.json"}
    doc["attestation"]["authorities"] = [
        {"name": "release-key", "key": {"path": f"{trust}/release.pub"}},
        {"name": "vendor-key", "key": {"path": f"{trust}/vendor.pub"}},
        {"name": "ci", "keyless": {"issuer": GITHUB_ISSUER, "subject": CI_IDENTITY}},
        {"name": "cosign-key", "key": {"path": f"{trust}/cosign.pub"}},
        {"name": "stella-key", "key": {"path": f"{trust}/stella.pub"}},
    ]
    # requireTlog stays as shipped (false): the provider reports each attestation's log entry, and
    # each constraint decides (the samples' default requireTlog: true; OFFLINE: false)
    doc["registries"]["allow"] = [registry, proxy]
    doc["registries"]["allowPrivate"] = True  # the registries are on 127.0.0.1
    return yaml.safe_dump(doc, sort_keys=False)


def materialize_from_cluster(kube: KubeStack, root: Path) -> Path:
    """Write the pod's volumes from what the API server holds for namespace stellaops-system."""
    objs = []
    for kind in ("deployments", "configmaps", "secrets"):
        objs += kube.get_json(kind, "-n", "stellaops-system")["items"]
    _, local = vm.materialize(objs, root)
    return local


@pytest.fixture(scope="session")
def installed(kube_stack: KubeStack, ocireg: str, test_sigstore: Any,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    kube = kube_stack
    work = tmp_path_factory.mktemp("kube-install")
    proxy = FaultProxy(ocireg)
    provider: ProviderPod | None = None
    try:
        (work / "trusted_root.json").write_bytes(test_sigstore.trusted_root_json())
        digests = {f"sample:{k}": v for k, v in _seed_samples(ocireg, work, test_sigstore).items()}
        proxy_addr = f"127.0.0.1:{proxy.port}"
        images, more, cosign_key, stella_key = _seed_formats(ocireg, proxy_addr, work)
        digests.update(more)
        for tag in ("v1.0.0", "vulnerable", "unsigned", "tampered", "stale"):
            images[f"sample:{tag}"] = f"{ocireg}/kube/samples/app:{tag}"

        # docs/install.md step 4: Gatekeeper's CA, read from its Secret.
        ca_b64 = kube.kubectl("get", "secret", "gatekeeper-webhook-server-cert", "-n", "gatekeeper-system",
                              "-o", r"jsonpath={.data.ca\.crt}").stdout
        (work / "gatekeeper-ca.crt").write_bytes(base64.b64decode(ca_b64))
        (work / "stellaops.yaml").write_text(_provider_config(ocireg, proxy_addr))
        site = work / "stellaops-site"
        trust = [work / n for n in ("release.pub", "vendor.pub", "trusted_root.json", "cosign.pub", "stella.pub")]
        _run([str(DEPLOY / "scripts" / "make-certs.sh"), "--site", "--out", str(site),
              "--gatekeeper-ca", str(work / "gatekeeper-ca.crt"), "--config", str(work / "stellaops.yaml"),
              *[a for f in trust for a in ("--trust-file", str(f))],
              "--san", "IP:127.0.0.1"])  # fmt: skip

        port = free_port()
        overlay = work / "loopback"
        overlay.mkdir()
        (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
            "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": ["../stellaops-site"],
            "patches": [{"target": {"group": "externaldata.gatekeeper.sh", "kind": "Provider", "name": "stellaops"},
                         "patch": yaml.safe_dump([{"op": "replace", "path": "/spec/url",
                                                   "value": f"https://127.0.0.1:{port}/gatekeeper/v1/verify"}])}],
        }, sort_keys=False))  # fmt: skip
        kube.kubectl("apply", "-k", str(overlay), timeout=120)

        pod_root = work / "pod"
        config = materialize_from_cluster(kube, pod_root)
        gk = kube.pki.gatekeeper_cert_dir
        provider = ProviderPod(root=pod_root, port=port, config=config, ca=site / "certs" / "ca.crt",
                               client_cert=gk / "tls.crt", client_key=gk / "tls.key")
        provider.start()

        for policy in POLICIES:
            kube.kubectl("apply", "-f", str(DEPLOY / "gatekeeper" / policy / "template.yaml"))
        for policy in POLICIES:
            kube.wait_template(yaml.safe_load((DEPLOY / "gatekeeper" / policy / "template.yaml").read_text())["metadata"]["name"])

        world = Installed(kube=kube, registry=ocireg, proxy=proxy, provider=provider, site=site, overlay=overlay,
                          work=work, images=images, digests=digests, cosign_key=cosign_key, stella_key=stella_key)
        # Gatekeeper has the Provider and calls it: a signed image is admitted under a constraint.
        ns = world.namespace("ready")
        world.sample_constraint("requireattestations", ns)
        world.wait_admitted(lambda i: pod(f"ready-{i}", images["sample:v1.0.0"]), ns, timeout=120)
        yield world
    finally:
        if provider is not None:
            provider.stop()
        proxy.stop()
