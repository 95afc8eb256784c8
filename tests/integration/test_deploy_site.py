"""deploy/scripts/make-certs.sh and the site it writes, run as docs/install.md runs them.

1. make-certs.sh --site (the install guide's step) → certificates with the right names and
   usages, a Provider whose caBundle is the StellaOps CA, a client-CA bundle of Gatekeeper's CA
   and ours, and a kustomization that builds and validates for every overlay.
2. The rendered site, materialized as the pod would see it (ConfigMaps and Secrets written at
   their mount paths): ``stella config check`` accepts its configuration, and the image's
   command serves it on loopback with mTLS: Gatekeeper's client certificate gets a
   ProviderResponse over TLS 1.3, the probe (healthcheck.py with the pod's own certificate)
   passes, clients without a certificate or from another CA are refused at the handshake.
3. make-certs.sh refuses what would make a broken or unsafe install.

No network: certificates come from openssl/cryptography, and the one ProviderRequest names
images the configuration does not allow, so the provider answers without any lookup.
"""

from __future__ import annotations

import base64
import copy
import datetime
import http.client
import importlib.util
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

ROOT = Path(__file__).resolve().parents[2]
MAKE_CERTS = ROOT / "deploy" / "scripts" / "make-certs.sh"
HEALTHCHECK = ROOT / "deploy" / "scripts" / "healthcheck.py"
BIN = Path(sys.executable).parent
SERVICE_DNS = "stellaops.stellaops-system.svc"
GATEKEEPER_DNS = "gatekeeper-webhook-service.gatekeeper-system.svc"


def _load_validator() -> Any:
    spec = importlib.util.spec_from_file_location("validate_manifests", ROOT / "scripts" / "validate-manifests.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("validate_manifests", module)
    spec.loader.exec_module(module)
    return module


vm = _load_validator()


# ------------------------------------------------------------------ Gatekeeper-like certs


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )


def make_ca(cn: str, org: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_leaf(ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, dns: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Like cert-controller's Gatekeeper webhook certificate: serverAuth + clientAuth."""
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


@dataclass
class Inputs:
    dir: Path
    gatekeeper_ca: Path
    gatekeeper_client: Path  # .crt; the key beside it (.key)
    other_client: Path  # a client certificate from a CA nobody trusts
    cosign_pub: Path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    d = tmp_path_factory.mktemp("deploy-inputs")
    gk_ca, gk_key = make_ca("gatekeeper-ca", "gatekeeper")
    _write(d / "gatekeeper-ca.crt", gk_ca)
    leaf, leaf_key = make_leaf(gk_ca, gk_key, GATEKEEPER_DNS)
    _write(d / "gatekeeper-client.crt", leaf, leaf_key)
    rogue_ca, rogue_key = make_ca("gatekeeper-ca", "gatekeeper")  # same names, other key
    rogue, rogue_leaf_key = make_leaf(rogue_ca, rogue_key, GATEKEEPER_DNS)
    _write(d / "rogue-client.crt", rogue, rogue_leaf_key)
    signer = _key()
    (d / "cosign.pub").write_bytes(
        signer.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return Inputs(d, d / "gatekeeper-ca.crt", d / "gatekeeper-client.crt", d / "rogue-client.crt", d / "cosign.pub")


def make_certs(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["bash", str(MAKE_CERTS), *map(str, args)], capture_output=True, text=True, timeout=120, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def make_site(out: Path, inputs: Inputs, *extra: str | Path) -> Path:
    make_certs(
        "--out", out, "--site", "--gatekeeper-ca", inputs.gatekeeper_ca, "--trust-file", inputs.cosign_pub,
        "--client", "ci", *extra,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def site(inputs: Inputs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = make_site(tmp_path_factory.mktemp("site") / "stellaops-site", inputs)
    # The guide's next step: narrow registries.allow to your registries.
    cfg = out / "stellaops.yaml"
    text = cfg.read_text()
    assert 'allow: ["*"]' in text
    cfg.write_text(text.replace('allow: ["*"]', 'allow: ["registry.example.com"]'))
    return out


@pytest.fixture(scope="module")
def rendered(site: Path) -> list[dict[str, Any]]:
    return vm.build_kustomization(site)


def _obj(objs: list[dict[str, Any]], kind: str, prefix: str) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"].startswith(prefix)]
    assert len(found) == 1, f"{kind} {prefix}*: {len(found)}"
    return found[0]


# ------------------------------------------------------------------ certificates and files


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_serving_certificate_verifies_for_the_service_name(site: Path) -> None:
    ca, leaf = _cert(site / "certs" / "ca.crt"), _cert(site / "certs" / "tls.crt")
    store = Store([ca])
    PolicyBuilder().store(store).build_server_verifier(x509.DNSName(SERVICE_DNS)).verify(leaf, [])
    # clientAuth too: the pod's probes present this certificate to the provider.
    PolicyBuilder().store(store).build_client_verifier().verify(leaf, [])
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert SERVICE_DNS in sans and f"{SERVICE_DNS}.cluster.local" in sans
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True


def test_serving_certificate_does_not_verify_for_another_name(site: Path) -> None:
    ca, leaf = _cert(site / "certs" / "ca.crt"), _cert(site / "certs" / "tls.crt")
    verifier = PolicyBuilder().store(Store([ca])).build_server_verifier(x509.DNSName("evil.example.com"))
    with pytest.raises(x509.verification.VerificationError):
        verifier.verify(leaf, [])


def test_client_certificate_is_client_only(site: Path) -> None:
    ca, client = _cert(site / "certs" / "ca.crt"), _cert(site / "certs" / "client-ci.crt")
    PolicyBuilder().store(Store([ca])).build_client_verifier().verify(client, [])
    with pytest.raises(x509.verification.VerificationError):
        PolicyBuilder().store(Store([ca])).build_server_verifier(x509.DNSName(SERVICE_DNS)).verify(client, [])


def test_private_keys_and_tokens_are_not_world_readable(site: Path) -> None:
    for p in [*site.glob("certs/*.key"), *site.glob("secrets/tokens/*"), site / "secrets" / "dockerconfig.json"]:
        assert p.stat().st_mode & 0o077 == 0, f"{p} is readable by others"
    assert "certs/*.key" in (site / ".gitignore").read_text()
    token = (site / "secrets" / "tokens" / "default").read_text().strip()
    assert len(token) == 64 and int(token, 16) >= 0


def test_client_ca_bundle_is_gatekeeper_then_ours(site: Path, inputs: Inputs) -> None:
    bundle = x509.load_pem_x509_certificates((site / "certs" / "client-ca.crt").read_bytes())
    assert bundle == [_cert(inputs.gatekeeper_ca), _cert(site / "certs" / "ca.crt")]


def test_provider_carries_the_ca_and_nothing_else_changes(site: Path) -> None:
    provider = yaml.safe_load((site / "provider.yaml").read_text())
    template = yaml.safe_load((ROOT / "deploy" / "gatekeeper" / "provider" / "provider.yaml").read_text())
    assert base64.b64decode(provider["spec"]["caBundle"], validate=True) == (site / "certs" / "ca.crt").read_bytes()
    provider["spec"].pop("caBundle")
    template["spec"].pop("caBundle")
    assert provider == template


@pytest.mark.parametrize(
    "overlay,extra",
    [("default", []), ("scale-out", []), ("cert-manager", ["--cert-manager"]), ("scale-out", ["--cert-manager"])],
    ids=["default", "scale-out", "cert-manager", "scale-out+cert-manager"],
)
def test_site_builds_and_validates(overlay: str, extra: list[str], inputs: Inputs, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site", inputs, "--overlay", overlay, *extra)
    result = vm.validate_target(site, vm.CRDs())
    assert not result.problems, "\n".join(map(str, result.problems))
    objs = result.objects
    dep = _obj(objs, "Deployment", "stellaops")
    provider = _obj(objs, "Provider", "stellaops")
    assert base64.b64decode(provider["spec"]["caBundle"]) == (site / "certs" / "ca.crt").read_bytes()
    assert "namespace" not in provider["metadata"]  # cluster-scoped
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    for vol in dep["spec"]["template"]["spec"]["volumes"]:
        if "secret" in vol:
            ref = vol["secret"]["secretName"]
            if "--cert-manager" in extra and ref == "stellaops-tls":
                assert ("Certificate", "stellaops-tls") in names  # cert-manager writes it
                continue
            assert ("Secret", ref) in names, f"volume {vol['name']} needs Secret {ref}"
        if "configMap" in vol:
            assert ("ConfigMap", vol["configMap"]["name"]) in names
    if "--cert-manager" in extra:
        ca_secret = _obj(objs, "Secret", "stellaops-ca")
        assert ca_secret["metadata"]["name"] == "stellaops-ca"  # read by name by cert-manager: no hash
        assert base64.b64decode(ca_secret["data"]["tls.crt"]) == (site / "certs" / "ca.crt").read_bytes()
        assert not (site / "certs" / "tls.key").exists()
        assert not [o for o in objs if o["kind"] == "Secret" and o["metadata"]["name"].startswith("stellaops-tls")]


@pytest.mark.parametrize("ref,expected", [
    ("registry.example.com:5000/stellaops/attest:0.2.0", "registry.example.com:5000/stellaops/attest:0.2.0"),
    ("registry.example.com/stellaops/attest:0.2.0@sha256:" + "a" * 64, "registry.example.com/stellaops/attest@sha256:" + "a" * 64),
])  # fmt: skip
def test_site_uses_the_pushed_image(ref: str, expected: str, inputs: Inputs, tmp_path: Path) -> None:
    site = make_site(tmp_path / "s", inputs, "--image", ref)
    (container,) = _obj(vm.build_kustomization(site), "Deployment", "stellaops")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == expected


def test_rerun_keeps_keys_and_tokens_and_renews_with_the_same_ca(inputs: Inputs, tmp_path: Path) -> None:
    site = make_site(tmp_path / "s", inputs)
    before = {p.name: p.read_bytes() for p in [*site.glob("certs/*"), *site.glob("secrets/tokens/*")]}
    refused = make_certs("--out", site, "--site", "--gatekeeper-ca", inputs.gatekeeper_ca, check=False)
    assert refused.returncode == 2 and "pass --force" in refused.stderr
    assert {p.name: p.read_bytes() for p in [*site.glob("certs/*"), *site.glob("secrets/tokens/*")]} == before
    # Renewal: reuse the CA, replace the serving certificate; the Provider's caBundle stays.
    make_certs(
        "--out", site, "--site", "--gatekeeper-ca", inputs.gatekeeper_ca, "--force",
        "--ca-cert", site / "certs" / "ca.crt", "--ca-key", site / "certs" / "ca.key",
    )  # fmt: skip
    assert (site / "certs" / "ca.crt").read_bytes() == before["ca.crt"]
    assert (site / "certs" / "tls.crt").read_bytes() != before["tls.crt"]
    assert (site / "secrets" / "tokens" / "default").read_bytes() == before["default"]


# ------------------------------------------------------------------------------ refusals


def test_refuses_site_without_gatekeeper_ca(inputs: Inputs, tmp_path: Path) -> None:
    proc = make_certs("--out", tmp_path / "s", "--site", "--trust-file", inputs.cosign_pub, check=False)
    assert proc.returncode == 2
    assert "--gatekeeper-ca" in proc.stderr and "gatekeeper-webhook-server-cert" in proc.stderr


def test_refuses_gatekeeper_leaf_as_its_ca(inputs: Inputs, tmp_path: Path) -> None:
    proc = make_certs("--out", tmp_path / "s", "--gatekeeper-ca", inputs.gatekeeper_client, check=False)
    assert proc.returncode == 2 and "is not a CA certificate" in proc.stderr and "ca.crt (not tls.crt)" in proc.stderr


def test_refuses_ca_key_of_another_ca(inputs: Inputs, tmp_path: Path) -> None:
    make_certs("--out", tmp_path / "a")
    make_certs("--out", tmp_path / "b")
    proc = make_certs("--out", tmp_path / "c", "--ca-cert", tmp_path / "a/certs/ca.crt", "--ca-key", tmp_path / "b/certs/ca.key", check=False)
    assert proc.returncode == 2 and "does not belong to --ca-cert" in proc.stderr


def test_refuses_site_without_trust_material(inputs: Inputs, tmp_path: Path) -> None:
    proc = make_certs("--out", tmp_path / "s", "--site", "--gatekeeper-ca", inputs.gatekeeper_ca, check=False)
    assert proc.returncode == 2 and "--trust-file" in proc.stderr


@pytest.mark.parametrize("args,message", [
    (["--client", "../etc/passwd"], "is not a valid name"),
    (["--days", "0"], "--days must be a positive integer"),
    (["--site", "--overlay", "cert-manager"], "pass --cert-manager too"),
    (["--trust-file", "x"], "need --site"),
    (["--bogus"], "unknown argument"),
    (["--site", "--image", "Registry/Bad Name"], "is not an image reference"),
])  # fmt: skip
def test_refuses_bad_arguments(args: list[str], message: str, inputs: Inputs, tmp_path: Path) -> None:
    proc = make_certs(
        "--out", tmp_path / "s", "--gatekeeper-ca", inputs.gatekeeper_ca, "--trust-file", inputs.cosign_pub, *args, check=False
    ) if "--site" in args else make_certs("--out", tmp_path / "s", *args, check=False)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr


# ------------------------------------------------- the rendered pod, served for real


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _image_cmd() -> list[str]:
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    cmd = [i for i in parser.structure if i["instruction"] == "CMD"][-1]["value"]
    return json.loads(cmd)


@dataclass
class Served:
    root: Path
    port: int
    env: dict[str, str]
    site: Path


@pytest.fixture(scope="module")
def served(rendered: list[dict[str, Any]], site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("pod")
    _, local_config = vm.materialize(rendered, root)
    port = _free_port()
    run_env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "STELLAOPS_CONFIG": str(local_config),
        "STELLAOPS_SERVER__HOST": "127.0.0.1",
        "STELLAOPS_SERVER__PORT": str(port),
        "STELLAOPS_SERVER__WORKERS": "1",
        "TMPDIR": str(root / "tmp"),
    }
    log = (root / "provider.log").open("w")
    proc = subprocess.Popen(_image_cmd(), env=run_env, stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"provider did not start: {(root / 'provider.log').read_text()}")
                time.sleep(0.2)
        yield Served(root, port, run_env, site)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_stella_config_check_accepts_the_rendered_config(served: Served) -> None:
    """docs/install.md: `stella config check` on the site's configuration, as mounted."""
    proc = subprocess.run(
        [str(BIN / "stella"), "config", "check", served.env["STELLAOPS_CONFIG"], "--output", "json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [a["name"] for a in report["authorities"]] == ["release-key"]
    assert report["server"]["mtls"] is True
    assert report["importApi"]["tenants"] == ["default"]


def test_validate_manifests_check_config_accepts_the_site(site: Path) -> None:
    """docs/install.md step: `python scripts/validate-manifests.py --check-config ./stellaops-site`."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "validate-manifests.py"), "--check-config", str(site)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok ")


def test_shipped_placeholder_trust_refuses_to_start(rendered: list[dict[str, Any]]) -> None:
    """An install that never configured trust must not run: config check names the file."""
    objs = copy.deepcopy(rendered)
    trust = _obj(objs, "ConfigMap", "stellaops-trust")
    trust["data"] = {"cosign.pub": (ROOT / "deploy/kubernetes/base/trust/cosign.pub").read_text()}
    (problem,) = vm.check_config(objs, "site")
    assert "attestation.authorities[0].key.path" in problem.message
    assert "trust/cosign.pub" in problem.message


def test_check_config_names_a_secret_the_build_lacks(rendered: list[dict[str, Any]]) -> None:
    objs = [o for o in rendered if not (o["kind"] == "Secret" and o["metadata"]["name"].startswith("stellaops-client-ca"))]
    (problem,) = vm.check_config(objs, "site")
    assert "stellaops-client-ca" in problem.message and "not in the build" in problem.message


def _gatekeeper_context(served: Served, client: Path | None) -> ssl.SSLContext:
    """What Gatekeeper's client does: TLS 1.3 only, trust = Provider.spec.caBundle, and its
    webhook certificate as the client certificate."""
    provider = yaml.safe_load((served.site / "provider.yaml").read_text())
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(cadata=base64.b64decode(provider["spec"]["caBundle"]).decode())
    if client is not None:
        ctx.load_cert_chain(client, client.with_suffix(".key"))
    return ctx


def _post(served: Served, ctx: ssl.SSLContext, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str]:
    provider = yaml.safe_load((served.site / "provider.yaml").read_text())
    host = urlsplit(provider["spec"]["url"]).hostname
    assert host == SERVICE_DNS
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=10)
    tls = ctx.wrap_socket(sock, server_hostname=host)  # hostname checked as Gatekeeper does
    conn = http.client.HTTPSConnection(host, served.port, context=ctx, timeout=10)
    conn.sock = tls
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read(), tls.version() or ""
    finally:
        conn.close()


def test_gatekeeper_gets_an_answer_over_mtls(served: Served, inputs: Inputs) -> None:
    provider = yaml.safe_load((served.site / "provider.yaml").read_text())
    request = {
        "apiVersion": "externaldata.gatekeeper.sh/v1beta1",
        "kind": "ProviderRequest",
        "request": {"keys": ["elsewhere.example.org/app:v1"]},  # not in registries.allow: no lookup
    }
    status, body, version = _post(
        served, _gatekeeper_context(served, inputs.gatekeeper_client), urlsplit(provider["spec"]["url"]).path,
        json.dumps(request).encode(), {"Content-Type": "application/json"},
    )  # fmt: skip
    assert version == "TLSv1.3"
    assert status == 200, body
    answer = json.loads(body)
    assert answer["kind"] == "ProviderResponse"
    (item,) = answer["response"]["items"]
    assert item["key"] == "elsewhere.example.org/app:v1"
    assert item["error"].startswith("REGISTRY_NOT_ALLOWED")


@pytest.mark.parametrize("who", ["no certificate", "another CA"])
def test_clients_outside_the_client_cas_are_refused(served: Served, inputs: Inputs, who: str) -> None:
    ctx = _gatekeeper_context(served, None if who == "no certificate" else inputs.other_client)
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)):
        _post(served, ctx, "/gatekeeper/v1/verify", b"{}", {"Content-Type": "application/json"})


def test_import_api_needs_a_client_certificate_and_the_tenant_token(served: Served) -> None:
    ctx = _gatekeeper_context(served, served.site / "certs" / "client-ci.crt")
    token = (served.site / "secrets" / "tokens" / "default").read_text().strip()
    status, body, _ = _post(served, ctx, "/api/v1/attestations/import", b"", {"Content-Type": "application/json"})
    assert status == 401, body
    status, body, _ = _post(
        served, ctx, "/api/v1/attestations/import", b"", {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    )
    assert status != 401, body


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probe_passes_with_the_pods_own_certificate(served: Served, path: str) -> None:
    env = {
        "PATH": served.env["PATH"],
        "STELLAOPS_SERVER__PORT": str(served.port),
        "STELLAOPS_HEALTHCHECK_CERT": str(served.root / "etc/stellaops/tls/tls.crt"),
        "STELLAOPS_HEALTHCHECK_KEY": str(served.root / "etc/stellaops/tls/tls.key"),
    }
    proc = subprocess.run([sys.executable, str(HEALTHCHECK), path], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    assert '"status"' in proc.stdout


def test_probe_fails_without_a_certificate(served: Served, tmp_path: Path) -> None:
    env = {
        "STELLAOPS_SERVER__PORT": str(served.port),
        "STELLAOPS_HEALTHCHECK_CERT": str(tmp_path / "none.crt"),
        "STELLAOPS_HEALTHCHECK_KEY": str(tmp_path / "none.key"),
    }
    proc = subprocess.run([sys.executable, str(HEALTHCHECK), "/healthz"], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 1
    assert "certificate" in proc.stderr.lower()


def test_probe_fails_when_nothing_listens(tmp_path: Path) -> None:
    env = {"STELLAOPS_SERVER__PORT": str(_free_port()), "STELLAOPS_PLAIN_HTTP": "1"}
    proc = subprocess.run([sys.executable, str(HEALTHCHECK), "/healthz"], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 1 and "127.0.0.1" in proc.stderr
