"""The optional online Rekor lookup (``attestation.tlogLookup``, ``stella attest verify
--rekor-url``) against the real Rekor of the ``rekor_server`` fixture.

The attestation under test is one ``cosign attest`` uploaded to that Rekor, re-attached to a
copy of the image *without* its ``dev.sigstore.cosign/bundle`` annotation (the same envelope
bytes, through ``stella attest attach --format legacy``). Between the verifier and the real
Rekor sits :class:`RekorFront`, a loopback HTTP front that forwards to it and counts requests,
or plays a Rekor that is down, slow, or that answers with something else (a real entry of
another attestation, a real entry under a wrong UUID, a tampered one): what comes back from
Rekor is untrusted input.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from stellaops.candidate import SOURCE_COSIGN_TAG, Candidate, CosignLayerAnnotations
from stellaops.config import parse_config
from stellaops.errors import ConfigError
from stellaops.verify import rekor_lookup
from stellaops.verify.attestation import verify_candidate

from tests.fixtures.images import loopback_client, push_test_image
from tests.fixtures.rekor import RekorServer
from tests.fixtures.services import free_port
from tests.fixtures.tools import tool

pytestmark = pytest.mark.cosign

STELLA = str(Path(sys.executable).with_name("stella"))
PREDICATE = {"buildDefinition": {"buildType": "https://example.com/build@v1"}, "runDetails": {"builder": {"id": "https://example.com/b"}}}


# -- a loopback front for the real Rekor --------------------------------------------------------
@dataclass
class RekorFront:
    """Forwards to the real Rekor (``mode = "forward"``), or answers 503 (``"down"``), waits
    ``delay`` seconds first (``"slow"``), or answers every search with ``replay`` (``"replay"``)."""

    upstream: str
    mode: str = "forward"
    replay: bytes = b"[]"
    delay: float = 0.0
    seen: list[str] = field(default_factory=list)
    url: str = ""
    hung_up: threading.Event = field(default_factory=threading.Event)  # "slow": the client left before the delay ended

    def reset(self, mode: str = "forward", **kw: Any) -> None:
        self.mode, self.replay, self.delay = mode, kw.get("replay", b"[]"), kw.get("delay", 0.0)
        self.seen.clear()
        self.hung_up.clear()


def _handler(front: RekorFront) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (deadline, size limit): nothing more to say

        def _client_left_within(self, seconds: float) -> bool:
            """Wait ``seconds``, watching the connection: True as soon as the client closes it."""
            end = time.monotonic() + seconds
            while (left := end - time.monotonic()) > 0:
                readable, _, _ = select.select([self.connection], [], [], min(left, 0.05))
                if readable:
                    try:
                        if not self.connection.recv(1, socket.MSG_PEEK):
                            return True
                    except OSError:
                        return True
            return False

        def _serve(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            front.seen.append(f"{method} {self.path}")
            if front.mode == "down":
                return self._answer(503, b'{"code":503,"message":"down"}')
            if front.mode == "slow" and self._client_left_within(front.delay):
                front.hung_up.set()
                return None
            if front.mode == "replay":
                return self._answer(200, front.replay)
            session = requests.Session()
            session.trust_env = False
            resp = session.request(method, front.upstream + self.path, data=body or None,
                                   headers={"Content-Type": "application/json"}, timeout=10)  # fmt: skip
            self._answer(resp.status_code, resp.content)

        def do_POST(self) -> None:
            self._serve("POST")

        def do_GET(self) -> None:
            self._serve("GET")

    return Handler


@pytest.fixture(scope="module")
def front(rekor_server: RekorServer) -> Iterator[RekorFront]:
    f = RekorFront(upstream=rekor_server.url)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(f))
    server.daemon_threads = True
    f.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest) -> Iterator[None]:
    rekor_lookup.CACHE.clear()
    if "front" in request.fixturenames:
        request.getfixturevalue("front").reset()
    yield


# -- the attestations ---------------------------------------------------------------------------
def _env(tmp: Path) -> dict[str, str]:
    dead = "http://127.0.0.1:9"
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp), "COSIGN_PASSWORD": "pw", "TUF_ROOT": str(tmp / "tuf"),
            "HTTPS_PROXY": dead, "HTTP_PROXY": dead, "NO_PROXY": "127.0.0.1,localhost"}  # fmt: skip


def run(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=tmp, env=_env(tmp), capture_output=True, text=True, timeout=120, check=False)


@dataclass
class Att:
    image: str  # repository@digest
    digest: str
    layer: bytes  # the envelope bytes (as uploaded to Rekor when logged)
    annotations: dict[str, str]


@dataclass
class World:
    tmp: Path
    registry: str
    rekor: RekorServer
    logged: Att  # cosign attest → Rekor, with its bundle annotation
    stripped: Att  # the same envelope bytes on a copy of the image, no annotation
    other: Att  # another cosign attestation in the same Rekor
    unlogged: Att  # cosign attest --tlog-upload=false: in no log

    def pub(self) -> str:
        return str(self.tmp / "cosign.pub")


def _att_layer(registry: str, repo: str, digest: str) -> tuple[bytes, dict[str, str]]:
    with loopback_client() as client:
        manifest = client.get_manifest(registry, repo, f"sha256-{digest[7:]}.att")
        [layer] = manifest.layers
        return client.get_blob(registry, repo, layer.digest), layer.annotations


def _cosign_attest(w_tmp: Path, registry: str, repo: str, *extra: str) -> Att:
    digest = push_test_image(registry, repo, "v1")
    image = f"{registry}/{repo}@{digest}"
    proc = run(w_tmp, tool("cosign"), "attest", "--yes", "--key", "cosign.key", "--type", "slsaprovenance1", "--predicate",
               "slsa.json", "--use-signing-config=false", "--new-bundle-format=false", *extra, image)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    layer, ann = _att_layer(registry, repo, digest)
    return Att(image, digest, layer, ann)


def _copy_image(registry: str, src: str, dst: str, digest: str) -> None:
    with loopback_client() as client:
        manifest = client.get_manifest(registry, src, digest)
        for desc in [manifest.config, *manifest.layers]:
            assert desc is not None
            client.put_blob(registry, dst, client.get_blob(registry, src, desc.digest))
        assert client.put_manifest(registry, dst, "v1", manifest.raw, manifest.media_type) == digest


@pytest.fixture(scope="module")
def world(rekor_server: RekorServer, ocireg: str, tmp_path_factory: pytest.TempPathFactory) -> World:
    tmp = tmp_path_factory.mktemp("tlog-lookup")
    assert run(tmp, tool("cosign"), "generate-key-pair").returncode == 0
    (tmp / "slsa.json").write_text(json.dumps(PREDICATE))
    rekor = ["--rekor-url", rekor_server.url]
    logged = _cosign_attest(tmp, ocireg, "lookup/src", *rekor)
    assert "dev.sigstore.cosign/bundle" in logged.annotations
    other = _cosign_attest(tmp, ocireg, "lookup/other", *rekor)
    unlogged = _cosign_attest(tmp, ocireg, "lookup/unlogged", "--tlog-upload=false")
    assert "dev.sigstore.cosign/bundle" not in unlogged.annotations
    # the stripped copy: same image digest elsewhere, the same envelope bytes re-attached bare
    _copy_image(ocireg, "lookup/src", "lookup/stripped", logged.digest)
    (tmp / "logged.dsse.json").write_bytes(logged.layer)
    stripped_image = f"{ocireg}/lookup/stripped@{logged.digest}"
    proc = run(tmp, STELLA, "attest", "attach", "--image", stripped_image, "--attestation", "logged.dsse.json", "--format", "legacy")
    assert proc.returncode == 0, proc.stderr
    layer, ann = _att_layer(ocireg, "lookup/stripped", logged.digest)
    assert layer == logged.layer and "dev.sigstore.cosign/bundle" not in ann  # verbatim bytes, no entry
    rekor_server.write_trusted_root(tmp / "trusted_root.json")
    return World(tmp, ocireg, rekor_server, logged, Att(stripped_image, logged.digest, layer, ann), other, unlogged)


def _bundle_payload(att: Att) -> dict[str, Any]:
    return dict(json.loads(att.annotations["dev.sigstore.cosign/bundle"])["Payload"])


# -- the CLI ------------------------------------------------------------------------------------
def _verify(w: World, image: str, *args: str) -> tuple[int, dict[str, Any] | None, str]:
    proc = run(w.tmp, STELLA, "attest", "verify", image, "--type", "slsaprovenance1", "--output", "json", "--key", "cosign.pub", *args)
    try:
        return proc.returncode, json.loads(proc.stdout), proc.stderr
    except ValueError:
        return proc.returncode, None, proc.stderr


def test_stripped_attestation_is_tlog_missing_without_lookup(world: World) -> None:
    rc, doc, err = _verify(world, world.stripped.image, "--trusted-root", "trusted_root.json")
    assert rc == 1, err
    assert doc is not None
    [att] = doc["attestations"]
    assert att["verified"] is False and att["errors"][0]["reason"] == "TLOG_MISSING"


def test_cli_rekor_url_finds_the_entry_online(world: World, front: RekorFront) -> None:
    rc, doc, err = _verify(world, world.stripped.image, "--trusted-root", "trusted_root.json", "--rekor-url", front.url)
    assert rc == 0, err
    assert doc is not None
    [att] = doc["attestations"]
    payload = _bundle_payload(world.logged)
    assert att["tlog"] == {"verified": True, "required": True, "origin": "rekor-lookup", "logIndex": payload["logIndex"],
                           "integratedTime": payload["integratedTime"]}  # fmt: skip
    assert front.seen == ["POST /api/v1/log/entries/retrieve"]  # cosign's search, once


def test_cli_does_not_look_up_an_attached_entry(world: World, front: RekorFront) -> None:
    rc, doc, err = _verify(world, world.logged.image, "--trusted-root", "trusted_root.json", "--rekor-url", front.url)
    assert rc == 0, err
    assert doc is not None and "origin" not in doc["attestations"][0]["tlog"]
    assert front.seen == []


def test_cli_rekor_down_is_a_clear_transient_error(world: World) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    rc, _doc, err = _verify(world, world.stripped.image, "--trusted-root", "trusted_root.json", "--rekor-url", dead)
    assert rc == 3, err  # transient: retry
    assert f"Error: TLOG_UNREACHABLE: Rekor at {dead} cannot be reached" in err
    assert "Hint: check that Rekor" in err


def test_cli_rekor_url_and_offline_are_refused_together(world: World, front: RekorFront) -> None:
    rc, _doc, err = _verify(world, world.stripped.image, "--trusted-root", "trusted_root.json", "--offline", "--rekor-url", front.url)
    assert rc == 2 and "--rekor-url asks Rekor online and cannot be combined with --offline" in err
    assert front.seen == []


def test_cli_offline_makes_no_request_even_when_the_config_enables_lookup(world: World, front: RekorFront) -> None:
    cfg = world.tmp / "lookup-on.yaml"
    cfg.write_text(_config(world, front.url))
    rc, doc, err = _verify(world, world.stripped.image, "--config", str(cfg), "--offline")
    assert rc == 1, err
    assert doc is not None and doc["attestations"][0]["errors"][0]["reason"] == "TLOG_MISSING"
    assert front.seen == []  # a Rekor that would have answered was not asked
    rc, doc, err = _verify(world, world.stripped.image, "--config", str(cfg))  # the control: online, it is asked
    assert rc == 0, err
    assert front.seen == ["POST /api/v1/log/entries/retrieve"]


# -- the provider -------------------------------------------------------------------------------
def _config(w: World, rekor_url: str, *, lookup: str = "{enabled: true, timeoutSeconds: 2}", extra: str = "") -> str:
    return (
        "attestation:\n"
        f"  trustRoots: {{bundlePath: {w.tmp / 'trusted_root.json'}, sigstore: {{rekorUrl: '{rekor_url}'}}}}\n"
        f"  authorities: [{{name: release, key: {{path: {w.pub()}}}}}]\n"
        "  requireTlog: true\n"
        f"  tlogLookup: {lookup}\n"
        "registries: {allowPrivate: true}\n"
        f"store: {{dsn: 'sqlite:///{w.tmp}/store.db'}}\n" + extra
    )


def _ask(app: Any, key: str) -> dict[str, Any]:
    request = {"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderRequest", "request": {"keys": [key]}}
    resp = app.test_client().post("/gatekeeper/v1/verify", json=request)
    assert resp.status_code == 200
    return dict(resp.get_json()["response"])


@pytest.fixture()
def provider(world: World, front: RekorFront) -> Iterator[Any]:
    from stellaops.app import create_app

    # transientMemorySeconds 0: a test that takes Rekor down and brings it back must not be answered
    # from the transient memory (the same systemError for 5 s) after Rekor is back
    app = create_app(parse_config(_config(world, front.url, extra="server: {transientMemorySeconds: 0}\n"), source="stellaops.yaml", env={}))
    yield app
    app.extensions["stellaops.store"].close()


def test_provider_lookup_verifies_and_says_the_entry_came_from_rekor(world: World, provider: Any, front: RekorFront) -> None:
    body = _ask(provider, world.stripped.image)
    assert body["systemError"] == ""
    [item] = body["items"]
    [att] = item["value"]["attestations"]
    assert att["verified"] is True, att["errors"]
    assert att["tlog"]["origin"] == "rekor-lookup" and att["tlog"]["logIndex"] == _bundle_payload(world.logged)["logIndex"]
    assert front.seen == ["POST /api/v1/log/entries/retrieve"]


def test_provider_rekor_down_is_a_system_error_and_not_cached(world: World, provider: Any, front: RekorFront) -> None:
    front.reset("down")
    body = _ask(provider, world.stripped.image)
    assert body["items"] == []  # no per-key item: Gatekeeper caches none
    assert world.stripped.image in body["systemError"] and "TLOG_UNREACHABLE" in body["systemError"]
    front.reset("forward")  # Rekor is back: the same provider asks again and verifies
    [item] = _ask(provider, world.stripped.image)["items"]
    assert item["value"]["attestations"][0]["verified"] is True
    assert front.seen == ["POST /api/v1/log/entries/retrieve"]


def test_provider_lookup_stays_within_the_request_deadline(world: World, front: RekorFront) -> None:
    """A Rekor slower than the provider deadline: a transient outcome, not a late answer."""
    from stellaops.app import create_app

    cfg = _config(world, front.url, lookup="{enabled: true, timeoutSeconds: 30}", extra="server: {deadlineSeconds: 1.5}\n")
    app = create_app(parse_config(cfg, source="stellaops.yaml", env={}))
    try:
        front.reset("slow", delay=6.0)
        body = _ask(app, world.stripped.image)
        assert body["items"] == []
        assert any(r in body["systemError"] for r in ("TLOG_UNREACHABLE", "DEADLINE_EXCEEDED")), body["systemError"]
        # DEADLINE_EXCEEDED comes from the engine even if the lookup went on waiting: what shows
        # that the lookup itself was cut is Rekor's side, which sees the client hang up before
        # its 6 s delay ends (a lookup that ignored the deadline would wait for 30 s)
        assert front.hung_up.wait(timeout=4.0), "the Rekor lookup was not cut at the request deadline"
    finally:
        app.extensions["stellaops.store"].close()


def test_provider_entry_not_in_rekor_is_tlog_missing(world: World, provider: Any, front: RekorFront) -> None:
    [item] = _ask(provider, world.unlogged.image)["items"]
    [att] = item["value"]["attestations"]
    assert att["verified"] is False and att["errors"][0]["reason"] == "TLOG_MISSING"
    assert "or found by the online Rekor lookup" in att["errors"][0]["message"]
    assert front.seen == ["POST /api/v1/log/entries/retrieve"]


# -- untrusted answers, fed to the verifier (unit level) ----------------------------------------
def _trust(w: World, rekor_url: str, *, offline: bool = False) -> Any:
    trust = parse_config(_config(w, rekor_url), source="stellaops.yaml", env={}).trust
    if offline:
        trust = replace(trust, sigstore=replace(trust.sigstore, offline=True))
    return trust


def _candidate(att: Att) -> Candidate:
    return Candidate(kind="dsse", data=att.layer, source=SOURCE_COSIGN_TAG, attached_to=att.digest, cosign=CosignLayerAnnotations())


def _real_answer(w: World, att: Att) -> bytes:
    """The real Rekor's answer to cosign's search for ``att`` (its entry, with inclusion proof)."""
    pem = (w.tmp / "cosign.pub").read_bytes()
    from cryptography.hazmat.primitives import serialization

    der = serialization.load_pem_public_key(pem).public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    query = {"entries": rekor_lookup.proposed_entries(att.layer, [der])}
    resp = requests.post(f"{w.rekor.url}/api/v1/log/entries/retrieve", json=query, timeout=10)
    assert resp.status_code == 200 and len(resp.json()) == 1, resp.text
    return resp.content


def test_offline_trust_makes_no_request(world: World, front: RekorFront) -> None:
    res = verify_candidate(_candidate(world.stripped), world.stripped.digest, _trust(world, front.url, offline=True))
    assert res.errors[0].reason == "TLOG_MISSING" and front.seen == []
    res = verify_candidate(_candidate(world.stripped), world.stripped.digest, _trust(world, front.url))
    assert res.verified and res.tlog.looked_up and front.seen == ["POST /api/v1/log/entries/retrieve"]


def test_found_entry_is_cached(world: World, front: RekorFront) -> None:
    trust = _trust(world, front.url)
    for _ in range(3):
        assert verify_candidate(_candidate(world.stripped), world.stripped.digest, trust).verified
    assert len(front.seen) == 1


def test_rejects_a_real_entry_of_another_attestation(world: World, front: RekorFront) -> None:
    front.reset("replay", replay=_real_answer(world, world.other))
    res = verify_candidate(_candidate(world.stripped), world.stripped.digest, _trust(world, front.url))
    assert not res.verified
    assert res.errors[0].reason == "TLOG_INVALID" and "another" in res.errors[0].message


def test_rejects_the_right_entry_under_another_uuid(world: World, front: RekorFront) -> None:
    [doc] = json.loads(_real_answer(world, world.stripped))
    [(_uuid, entry)] = doc.items()
    wrong = hashlib.sha256(b"not the leaf").hexdigest()
    front.reset("replay", replay=json.dumps([{wrong: entry}]).encode())
    res = verify_candidate(_candidate(world.stripped), world.stripped.digest, _trust(world, front.url))
    assert res.errors[0].reason == "TLOG_MISSING"  # dropped, as cosign drops it


def test_rejects_the_right_entry_with_a_forged_integrated_time(world: World, front: RekorFront) -> None:
    [doc] = json.loads(_real_answer(world, world.stripped))
    [(uuid, entry)] = doc.items()
    entry["integratedTime"] -= 3600
    front.reset("replay", replay=json.dumps([{uuid: entry}]).encode())
    res = verify_candidate(_candidate(world.stripped), world.stripped.digest, _trust(world, front.url))
    assert res.errors[0].reason == "TLOG_INVALID" and "SignedEntryTimestamp" in res.errors[0].message


def test_rejects_the_right_entry_with_a_forged_inclusion_proof(world: World, front: RekorFront) -> None:
    [doc] = json.loads(_real_answer(world, world.stripped))
    [(uuid, entry)] = doc.items()
    proof = entry["verification"]["inclusionProof"]
    proof["rootHash"] = hashlib.sha256(b"another tree").hexdigest()
    front.reset("replay", replay=json.dumps([{uuid: entry}]).encode())
    res = verify_candidate(_candidate(world.stripped), world.stripped.digest, _trust(world, front.url))
    assert res.errors[0].reason == "TLOG_INVALID" and "inclusion proof" in res.errors[0].message


def test_requires_an_inclusion_proof_on_a_looked_up_entry(world: World, front: RekorFront) -> None:
    [doc] = json.loads(_real_answer(world, world.stripped))
    [(uuid, entry)] = doc.items()
    del entry["verification"]["inclusionProof"]
    front.reset("replay", replay=json.dumps([{uuid: entry}]).encode())
    res = verify_candidate(_candidate(world.stripped), world.stripped.digest, _trust(world, front.url))
    assert res.errors[0].reason == "TLOG_INVALID" and "inclusion proof" in res.errors[0].message


def test_refuses_an_answer_over_the_size_limit(world: World, front: RekorFront) -> None:
    front.reset("replay", replay=b"[" + b" " * (2 << 20) + b"]")
    res = verify_candidate(_candidate(world.stripped), world.stripped.digest, _trust(world, front.url))
    assert res.errors[0].reason == "LIMIT_EXCEEDED"


# -- configuration ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("trust_roots", "lookup", "path", "message"),
    [
        ("{offline: true, bundlePath: BUNDLE, sigstore: {rekorUrl: 'http://127.0.0.1:1'}}", "{enabled: true}",
         "attestation.tlogLookup.enabled", "cannot be enabled with attestation.trustRoots.offline: true"),
        ("{bundlePath: BUNDLE}", "{enabled: true}", "attestation.tlogLookup.enabled", "needs attestation.trustRoots.sigstore.rekorUrl"),
        ("{bundlePath: BUNDLE, sigstore: {rekorUrl: 'ftp://rekor'}}", "{enabled: true}",
         "attestation.trustRoots.sigstore.rekorUrl", "is not an http(s) URL"),
        ("{bundlePath: BUNDLE, sigstore: {rekorUrl: 'https://u:p@rekor'}}", "{enabled: true}",
         "attestation.trustRoots.sigstore.rekorUrl", "must not carry credentials"),
        ("{bundlePath: BUNDLE}", "{enabled: false, timeoutSeconds: 0}", "attestation.tlogLookup.timeoutSeconds", "greater than zero"),
        ("{bundlePath: BUNDLE}", "{enabled: true, timeout: 3}", "attestation.tlogLookup.timeout", ""),
    ],
)  # fmt: skip
def test_config_is_checked_at_start_up(world: World, trust_roots: str, lookup: str, path: str, message: str) -> None:
    text = (
        f"attestation:\n  trustRoots: {trust_roots.replace('BUNDLE', str(world.tmp / 'trusted_root.json'))}\n"
        f"  tlogLookup: {lookup}\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="stellaops.yaml", env={})
    assert path in str(info.value) and message in str(info.value)


def test_lookup_is_off_by_default_and_part_of_the_trust_fingerprint(world: World) -> None:
    base = f"attestation:\n  trustRoots: {{bundlePath: {world.tmp / 'trusted_root.json'}, sigstore: {{rekorUrl: 'http://127.0.0.1:1/'}}}}\n"
    off = parse_config(base, env={}).trust
    on = parse_config(base + "  tlogLookup: {enabled: true}\n", env={}).trust
    assert off.tlog_lookup is None
    assert on.tlog_lookup is not None and on.tlog_lookup.rekor_url == "http://127.0.0.1:1" and on.tlog_lookup.timeout_seconds == 1.0
    assert on.fingerprint != off.fingerprint  # verdicts cached with lookup off are not served with it on


def test_refuses_a_rekor_url_on_the_cloud_metadata_address(world: World) -> None:
    """The registry client's connection guard: resolved, classified and refused before any
    connection is opened (so nothing is sent to the metadata address)."""
    trust = _trust(world, "http://169.254.169.254")
    res = verify_candidate(_candidate(world.stripped), world.stripped.digest, trust)
    assert res.errors[0].reason == "TLOG_MISSING"
    assert "is refused" in res.errors[0].message and "metadata" in res.errors[0].message


# -- review findings: hostile answers, caching, one attestation's transient failure ---------------
def test_refuses_a_deeply_nested_answer_without_an_internal_error(world: World, front: RekorFront) -> None:
    """A hostile Rekor answering with JSON nested deeper than Python's recursion limit: a
    LIMIT_EXCEEDED refusal, not INTERNAL_ERROR with a RecursionError."""
    front.reset("replay", replay=b"[" * 100_000 + b"]" * 100_000)
    res = verify_candidate(_candidate(world.stripped), world.stripped.digest, _trust(world, front.url))
    assert not res.verified and res.errors[0].reason == "LIMIT_EXCEEDED", res.errors
    assert "nests deeper" in res.errors[0].message


def test_drops_an_entry_whose_body_is_deeply_nested(world: World, front: RekorFront) -> None:
    """The same inside an entry: a body (whose UUID is its real leaf hash) nested too deep is a
    malformed entry, dropped as cosign drops it, not a RecursionError."""
    import base64

    from stellaops.verify.tlog import leaf_hash

    body = b"[" * 100_000 + b"]" * 100_000
    [doc] = json.loads(_real_answer(world, world.stripped))
    [(_uuid, entry)] = doc.items()
    entry["body"] = base64.b64encode(body).decode()
    front.reset("replay", replay=json.dumps([{leaf_hash(body).hex(): entry}]).encode())
    res = verify_candidate(_candidate(world.stripped), world.stripped.digest, _trust(world, front.url))
    assert not res.verified and res.errors[0].reason == "TLOG_MISSING", res.errors


def test_an_answer_that_fails_verification_is_cached_only_briefly(world: World, front: RekorFront, monkeypatch: pytest.MonkeyPatch) -> None:
    """A forged answer is refused, and kept only for the short "not found" time (re-verified on
    each use, so refused again without a request per admission); once that time is over and
    Rekor answers truthfully the next verification asks again and verifies (before the first
    fix, the forgery was served from the cache for an hour)."""
    [doc] = json.loads(_real_answer(world, world.stripped))
    [(uuid, entry)] = doc.items()
    entry["integratedTime"] -= 3600
    front.reset("replay", replay=json.dumps([{uuid: entry}]).encode())
    trust = _trust(world, front.url)
    for _ in range(2):
        assert verify_candidate(_candidate(world.stripped), world.stripped.digest, trust).errors[0].reason == "TLOG_INVALID"
    assert front.seen == ["POST /api/v1/log/entries/retrieve"]
    front.reset("forward")
    base = time.monotonic
    monkeypatch.setattr(rekor_lookup, "time", type("Later", (), {"monotonic": staticmethod(lambda: base() + rekor_lookup.NOT_FOUND_TTL + 1)}))
    res = verify_candidate(_candidate(world.stripped), world.stripped.digest, trust)
    assert res.verified and res.tlog.looked_up, res.errors
    assert front.seen == ["POST /api/v1/log/entries/retrieve"]


def test_provider_one_attestation_rekor_down_is_a_system_error_for_the_key(world: World, provider: Any, front: RekorFront) -> None:
    """An image with a logged attestation (entry attached) and an unlogged one (needs the lookup):
    Rekor down makes the second uncheckable, so the key is a systemError (DESIGN §2: a verdict that
    leaves one attestation unchecked would be cached by Gatekeeper as if it were complete), and
    nothing is cached: once Rekor answers, the next admission gets the full verdict."""
    digest = push_test_image(world.registry, "lookup/mixed", "v1")
    image = f"{world.registry}/lookup/mixed@{digest}"
    for extra in (["--rekor-url", world.rekor.url], ["--tlog-upload=false"]):
        proc = run(world.tmp, tool("cosign"), "attest", "--yes", "--key", "cosign.key", "--type", "slsaprovenance1", "--predicate",
                   "slsa.json", "--use-signing-config=false", "--new-bundle-format=false", *extra, image)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    front.reset("down")
    body = _ask(provider, image)
    assert body["items"] == [] and "TLOG_UNREACHABLE" in body["systemError"], body
    front.reset("forward")  # not cached: asked again; Rekor has no entry for the unlogged one
    [item] = _ask(provider, image)["items"]
    reasons = sorted(a["errors"][0]["reason"] if a["errors"] else "VERIFIED" for a in item["value"]["attestations"])
    assert reasons == ["TLOG_MISSING", "VERIFIED"] and item["value"]["errors"] == []
    assert front.seen == ["POST /api/v1/log/entries/retrieve"]
