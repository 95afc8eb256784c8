"""Physical limits on this machine: what one signature check, one keyless bundle check and one
loopback round trip cost, so each provider figure can be read against what is possible."""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from .stats import summarize


def _loop(fn: Callable[[], Any], count: int, budget_s: float) -> list[float]:
    out: list[float] = []
    stop = time.monotonic() + budget_s
    for _ in range(count):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
        if time.monotonic() > stop:
            break
    return out


def ecdsa_p256(count: int = 3000) -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    msg = b"DSSEv1 28 application/vnd.in-toto+json 1024 " + b"x" * 1024
    sig = key.sign(msg, ec.ECDSA(hashes.SHA256()))
    pub = key.public_key()
    return {
        "what": "one ECDSA P-256/SHA-256 verify of a 1 KiB PAE (cryptography/OpenSSL)",
        **summarize(_loop(lambda: pub.verify(sig, msg, ec.ECDSA(hashes.SHA256())), count, 5), unit="us"),
    }


def dsse_key_candidate(count: int = 1000) -> dict[str, Any]:
    """Our whole per-attestation check for a key-signed envelope (parse, PAE, verify, statement,
    subject, predicate summary), in-process, no I/O."""
    from stellaops.trust import TrustConfig
    from stellaops.verify.attestation import verify_candidate

    from tests.fixtures.keys import (
        IMAGE_DIGEST,
        candidate,
        envelope_bytes,
        key_authority,
        statement,
    )

    key = ec.generate_private_key(ec.SECP256R1())
    env = envelope_bytes(statement(), [key])
    cand = candidate(env)
    trust = TrustConfig(authorities=(key_authority(key),), require_tlog=False)
    res = verify_candidate(cand, IMAGE_DIGEST, trust)
    ok = res.verified
    return {
        "what": "stellaops verify_candidate: one key-signed DSSE attestation (~0.3 KiB statement), in-process",
        "verified": ok,
        **summarize(_loop(lambda: verify_candidate(cand, IMAGE_DIGEST, trust), count, 5), unit="us"),
    }


def sigstore_bundle(count: int = 200) -> dict[str, Any]:
    """sigstore-python ``Verifier.verify_dsse`` on a keyless bundle from the offline test Sigstore
    (tests/fixtures/sigstore.py), and our full keyless check of the same bundle."""
    import logging

    from sigstore.models import Bundle, TrustedRoot
    from sigstore.verify import Verifier, policy
    from sigstore_models.trustroot import v1 as trustroot_v1
    from stellaops.verify.attestation import verify_candidate

    from tests.fixtures.keys import IMAGE_DIGEST, statement
    from tests.fixtures.sigstore import TestSigstore

    logging.getLogger("sigstore").setLevel(logging.ERROR)  # UnsafeNoOp warns on every call
    ts = TestSigstore()
    att = ts.attest(statement())
    bundle_json = att.bundle_json()
    trusted = TrustedRoot(trustroot_v1.TrustedRoot.from_json(ts.trusted_root_json().decode()))
    verifier = Verifier(trusted_root=trusted)

    def sp() -> None:
        verifier.verify_dsse(Bundle.from_json(bundle_json), policy.UnsafeNoOp())

    sp()
    out: dict[str, Any] = {
        "what": "sigstore-python 4.x Verifier.verify_dsse (Bundle.from_json + chain + SCT + tlog + DSSE), offline test Sigstore",
        "sigstore_python": summarize(_loop(sp, count, 8), unit="us"),
    }
    trust = ts.trust()
    cand = att.bundle()
    res = verify_candidate(cand, IMAGE_DIGEST, trust)
    out["stellaops_keyless"] = {
        "what": "stellaops verify_candidate on the same keyless bundle (own checks + sigstore-python second gate)",
        "verified": res.verified,
        **summarize(_loop(lambda: verify_candidate(cand, IMAGE_DIGEST, trust), count, 8), unit="us"),
    }
    return out


def loopback_registry(registry: str, repo: str, digest: str, count: int = 2000) -> dict[str, Any]:
    host, port = registry.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)

    def v2() -> None:
        conn.request("GET", "/v2/")
        conn.getresponse().read()

    v2()
    raw = summarize(_loop(v2, count, 5), unit="us")
    conn.close()

    import requests

    s = requests.Session()
    s.trust_env = False
    s.get(f"http://{registry}/v2/").close()
    req = summarize(_loop(lambda: s.get(f"http://{registry}/v2/").content, count, 5), unit="us")
    s.close()

    from stellaops.registry import RegistryClient, RegistryPolicy

    from .env import ROOT  # noqa: F401 - sys.path set up by env

    c = RegistryClient(policy=RegistryPolicy(allow_private=True))
    c.get_manifest(registry, repo, digest)
    ours = summarize(_loop(lambda: c.get_manifest(registry, repo, digest), count // 2, 5), unit="us")
    c.close()
    return {
        "what": "one loopback round trip to the ocireg registry",
        "http_client_get_v2": raw,
        "requests_session_get_v2": req,
        "stellaops_registryclient_get_manifest": ours,
    }


def provider_floor(conn: Any, count: int = 1000) -> dict[str, Any]:
    """GET /healthz on a keep-alive connection: gunicorn + Flask with no work."""
    conn.get("/healthz")
    samples = []
    stop = time.monotonic() + 5
    for _ in range(count):
        dt, status, _ = conn.get("/healthz")
        samples.append(dt)
        if time.monotonic() > stop:
            break
    return {"what": "GET /healthz on a keep-alive connection (gunicorn gthread + Flask, no work)", **summarize(samples, unit="us")}


def empty_request(conn: Any, count: int = 1000) -> dict[str, Any]:
    """A ProviderRequest with zero keys: request parsing + response, no verification."""
    from .client import request_body

    body = request_body([])
    conn.post(body)
    samples = []
    status_seen = set()
    stop = time.monotonic() + 5
    for _ in range(count):
        dt, status, _data = conn.post(body)
        status_seen.add(status)
        samples.append(dt)
        if time.monotonic() > stop:
            break
    return {"what": "POST /gatekeeper/v1/verify with zero keys (protocol floor)", "statuses": sorted(status_seen), **summarize(samples, unit="us")}

