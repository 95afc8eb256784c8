"""The online Rekor lookup for keyless attestations, against a loopback Rekor that answers with
entries made by the offline test Sigstore (real SETs, Merkle proofs and checkpoints), or that
only listens: what comes back from Rekor is untrusted, and what an attacker attaches must not
make the verifier talk to Rekor at all.

- a junk keyless attestation (certificate of an untrusted CA, of another identity, without SCT)
  is refused before any lookup: no connection reaches Rekor, so a slow or dead Rekor cannot turn
  it into a transient error (review M1);
- every entry Rekor returns is tried; the first that verifies in full counts (review M2), for
  looked-up and for attached entries;
- only entries that verified are cached for long; other answers for a minute (review L3, review 3).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from stellaops.trust import TlogLookup, TrustConfig
from stellaops.verify import rekor_lookup
from stellaops.verify.attestation import verify_candidate
from stellaops.verify.tlog import leaf_hash

from tests.fixtures.keys import IMAGE_DIGEST, statement
from tests.fixtures.sigstore import BUNDLE_V03, LogEntryParts, TestSigstore, pem


def rekor_answer(*entries: LogEntryParts) -> bytes:
    """Rekor v1's answer to ``POST /api/v1/log/entries/retrieve`` for these entries."""
    out = []
    for e in entries:
        uuid = leaf_hash(e.body).hex()
        out.append(
            {
                uuid: {
                    "body": base64.b64encode(e.body).decode(),
                    "integratedTime": e.integrated_time,
                    "logID": e.log_id.hex(),
                    "logIndex": e.log_index,
                    "verification": {
                        "signedEntryTimestamp": base64.b64encode(e.set_).decode(),
                        "inclusionProof": {
                            "logIndex": e.log_index,
                            "treeSize": e.tree_size,
                            "rootHash": e.root_hash.hex(),
                            "hashes": [h.hex() for h in e.proof],
                            "checkpoint": e.checkpoint,
                        },
                    },
                }
            }
        )
    return json.dumps(out).encode()


class FakeRekorFront:
    """A loopback HTTP server that answers every entry search with ``answer`` and counts them."""

    def __init__(self) -> None:
        self.answer = b"[]"
        self.seen = 0
        front = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_a: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                front.seen += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(front.answer)))
                self.end_headers()
                self.wfile.write(front.answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def rekor() -> Iterator[FakeRekorFront]:
    rekor_lookup.CACHE.clear()
    front = FakeRekorFront()
    yield front
    front.close()
    rekor_lookup.CACHE.clear()


def online(trust: TrustConfig, url: str, timeout: float = 2.0) -> TrustConfig:
    assert trust.sigstore is not None
    return dataclasses.replace(
        trust, sigstore=dataclasses.replace(trust.sigstore, offline=False), tlog_lookup=TlogLookup(rekor_url=url, timeout_seconds=timeout)
    )


# --------------------------------------------------------------------------- M1: no lookup for junk


@pytest.fixture()
def silent_rekor() -> Iterator[socket.socket]:
    """A socket that listens and never answers: a lookup would connect (the kernel completes
    the handshake) and then wait; ``accept`` tells whether anything connected."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    s.setblocking(False)
    yield s
    s.close()


def _connected(s: socket.socket) -> bool:
    try:
        conn, _ = s.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda victim, attacker: attacker.attest(statement()), "CERTIFICATE_INVALID"),  # another (untrusted) Fulcio
        (lambda victim, attacker: victim.attest(statement(), identity="https://evil.example/ci"), "IDENTITY_MISMATCH"),
        (lambda victim, attacker: victim.attest(statement(), issuer="https://evil.example"), "IDENTITY_MISMATCH"),
        (lambda victim, attacker: victim.attest(statement(), sct="none"), "SCT_INVALID"),
        (lambda victim, attacker: victim.attest(statement(), sct="unknown-log"), "SCT_INVALID"),
    ],
    ids=["untrusted-ca", "other-identity", "other-issuer", "no-sct", "sct-of-unknown-log"],
)
def test_junk_keyless_without_entry_is_refused_before_any_lookup(
    test_sigstore: TestSigstore, silent_rekor: socket.socket, make: Any, reason: str
) -> None:
    """Reviewer's reproduction: before, the lookup ran first and Rekor being slow or down made
    the whole key a systemError (TLOG_UNREACHABLE raised); now the certificate is refused on
    what needs no time, and Rekor is never contacted."""
    rekor_lookup.CACHE.clear()
    url = f"http://127.0.0.1:{silent_rekor.getsockname()[1]}"
    trust = online(test_sigstore.trust(require_tlog=True), url, timeout=0.5)
    junk = make(test_sigstore, TestSigstore()).legacy(with_bundle=False)
    res = verify_candidate(junk, IMAGE_DIGEST, trust)  # raised TLOG_UNREACHABLE before the fix
    assert not res.verified and res.errors[0].reason == reason, res.errors
    assert not _connected(silent_rekor)


def test_genuine_keyless_without_entry_still_looks_up_and_reports_rekor_unreachable(
    test_sigstore: TestSigstore, silent_rekor: socket.socket
) -> None:
    """The control: a certificate that passes the time-free checks is looked up, and a Rekor
    that does not answer is transient (raised), not a verdict."""
    rekor_lookup.CACHE.clear()
    url = f"http://127.0.0.1:{silent_rekor.getsockname()[1]}"
    trust = online(test_sigstore.trust(require_tlog=True), url, timeout=0.3)
    cand = test_sigstore.attest(statement()).legacy(with_bundle=False)
    with pytest.raises(rekor_lookup.RekorUnreachable):
        verify_candidate(cand, IMAGE_DIGEST, trust)
    assert _connected(silent_rekor)


def test_lookup_found_entry_is_rechecked_at_its_integrated_time(test_sigstore: TestSigstore, rekor: FakeRekorFront) -> None:
    """The certificate passes at its own start, but Rekor's (validly signed) entry was made after
    it expired: CERTIFICATE_INVALID at the entry's time."""
    old = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)
    att = test_sigstore.attest(statement(), not_before=old)  # logged now: 2 hours after expiry
    rekor.answer = rekor_answer(att.entry)
    res = verify_candidate(att.legacy(with_bundle=False), IMAGE_DIGEST, online(test_sigstore.trust(), rekor.url))
    assert res.errors[0].reason == "CERTIFICATE_INVALID" and "not valid at the verified time" in res.errors[0].message


# --------------------------------------------------------------------------- M2: every entry is tried


def _intoto(test_sigstore: TestSigstore, att: Any, when: int) -> LogEntryParts:
    """``att`` logged (validly) as an ``intoto`` 0.0.1 entry at ``when``: the second kind cosign
    proposes in its search, so a real Rekor can return both entries for one attestation. Our
    checks are the only ones for this kind (sigstore-python does not read it)."""
    import hashlib

    env = json.loads(att.envelope)
    payload = base64.b64decode(env["payload"])
    body = rfc8785.dumps(
        {
            "apiVersion": "0.0.1",
            "kind": "intoto",
            "spec": {
                "content": {
                    "hash": {"algorithm": "sha256", "value": hashlib.sha256(att.envelope).hexdigest()},
                    "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
                },
                "publicKey": base64.b64encode(pem(att.leaf.cert).encode()).decode(),
            },
        }
    )
    return test_sigstore.rekor.add(body, when)


def _forged(test_sigstore: TestSigstore, parts: LogEntryParts) -> LogEntryParts:
    """The entry with a SET over another integrated time (a forged time)."""
    return dataclasses.replace(parts, set_=test_sigstore.rekor.sign_set(parts.body, parts.integrated_time + 1, parts.log_index))


def test_lookup_tries_each_entry_first_one_logged_after_expiry(test_sigstore: TestSigstore, rekor: FakeRekorFront) -> None:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    att = test_sigstore.attest(statement())
    late = _intoto(test_sigstore, att, now + 3 * 3600)  # the certificate had expired by then
    rekor.answer = rekor_answer(late, att.entry)
    res = verify_candidate(att.legacy(with_bundle=False), IMAGE_DIGEST, online(test_sigstore.trust(), rekor.url))
    assert res.verified, res.errors  # before: the first entry dated the certificate → CERTIFICATE_INVALID
    assert res.tlog.looked_up and res.tlog.log_index == att.entry.log_index


def test_lookup_tries_each_entry_first_one_with_a_forged_set(test_sigstore: TestSigstore, rekor: FakeRekorFront) -> None:
    att = test_sigstore.attest(statement())
    forged = _forged(test_sigstore, att.entry)
    good = _intoto(test_sigstore, att, att.entry.integrated_time)
    rekor.answer = rekor_answer(forged, good)
    res = verify_candidate(att.legacy(with_bundle=False), IMAGE_DIGEST, online(test_sigstore.trust(), rekor.url))
    assert res.verified, res.errors  # before: only the first entry was verified → TLOG_INVALID
    assert res.tlog.log_index == good.log_index
    # and with only the forged entry: refused
    rekor_lookup.CACHE.clear()
    rekor.answer = rekor_answer(forged)
    res = verify_candidate(att.legacy(with_bundle=False), IMAGE_DIGEST, online(test_sigstore.trust(), rekor.url))
    assert res.errors[0].reason == "TLOG_INVALID" and "SignedEntryTimestamp" in res.errors[0].message


def test_lookup_refuses_when_no_entry_passes_every_check(test_sigstore: TestSigstore, rekor: FakeRekorFront) -> None:
    """One entry is validly signed but logged after expiry, the other in time but forged: each
    passes some check, none passes all."""
    now = int(dt.datetime.now(dt.UTC).timestamp())
    att = test_sigstore.attest(statement())
    late = _intoto(test_sigstore, att, now + 3 * 3600)
    forged = _forged(test_sigstore, att.entry)
    rekor.answer = rekor_answer(late, forged)
    res = verify_candidate(att.legacy(with_bundle=False), IMAGE_DIGEST, online(test_sigstore.trust(), rekor.url))
    assert not res.verified and res.errors[0].reason == "TLOG_INVALID", res.errors


def test_attached_entries_are_each_tried(test_sigstore: TestSigstore) -> None:
    """A bundle whose first entry was logged after the certificate expired and whose second is
    in time: the second counts (before, the first dated the certificate and was the only one
    verified)."""
    now = int(dt.datetime.now(dt.UTC).timestamp())
    att = test_sigstore.attest(statement())
    late, good = _intoto(test_sigstore, att, now + 3 * 3600).bundle_entry(), _intoto(test_sigstore, att, now).bundle_entry()
    cert = base64.b64encode(att.leaf.cert.public_bytes(serialization.Encoding.DER)).decode()

    def bundle(*entries: dict[str, Any]) -> Any:
        doc = {"mediaType": BUNDLE_V03, "verificationMaterial": {"certificate": {"rawBytes": cert}, "tlogEntries": list(entries)},
               "dsseEnvelope": json.loads(att.envelope)}  # fmt: skip
        return dataclasses.replace(att.bundle(), data=json.dumps(doc).encode())

    trust = test_sigstore.trust()
    res = verify_candidate(bundle(late, good), IMAGE_DIGEST, trust)
    assert res.verified, res.errors
    assert res.tlog.log_index == int(good["logIndex"])
    res = verify_candidate(bundle(late), IMAGE_DIGEST, trust)
    assert res.errors[0].reason == "CERTIFICATE_INVALID"


# --------------------------------------------------------------------------- L3: cache only what verified


def _later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """The lookup cache's clock moved ``seconds`` ahead (its TTLs are on time.monotonic)."""
    import time as real_time
    import types

    base = real_time.monotonic
    monkeypatch.setattr(rekor_lookup, "time", types.SimpleNamespace(monotonic=lambda: base() + seconds))


def test_an_answer_that_does_not_verify_is_cached_only_briefly(
    test_sigstore: TestSigstore, rekor: FakeRekorFront, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forged (or otherwise unusable) answer is kept for the short "not found" time only, and
    re-verified on each use: it is refused again, without a request per admission (review 3,
    M4), and once that time has passed Rekor is asked again."""
    att = test_sigstore.attest(statement())
    forged = _forged(test_sigstore, att.entry)
    trust = online(test_sigstore.trust(), rekor.url)
    cand = att.legacy(with_bundle=False)
    rekor.answer = rekor_answer(forged)
    for _ in range(3):
        assert verify_candidate(cand, IMAGE_DIGEST, trust).errors[0].reason == "TLOG_INVALID"
    assert rekor.seen == 1  # before: one request per verification
    rekor.answer = rekor_answer(att.entry)  # Rekor answers correctly now: asked again once the short TTL is over
    _later(monkeypatch, rekor_lookup.NOT_FOUND_TTL + 1)
    res = verify_candidate(cand, IMAGE_DIGEST, trust)
    assert res.verified, res.errors
    assert rekor.seen == 2
    for _ in range(2):  # the entry that verified is cached
        assert verify_candidate(cand, IMAGE_DIGEST, trust).verified
    assert rekor.seen == 2


def test_no_entry_answers_are_cached_briefly(test_sigstore: TestSigstore, rekor: FakeRekorFront) -> None:
    """Rekor has no entry: asked once, then answered from the short "not found" cache."""
    att = test_sigstore.attest(statement())
    trust = online(test_sigstore.trust(), rekor.url)
    for _ in range(3):
        res = verify_candidate(att.legacy(with_bundle=False), IMAGE_DIGEST, trust)
        assert res.errors[0].reason == "TLOG_MISSING"
    assert rekor.seen == 1
    assert rekor_lookup.NOT_FOUND_TTL <= 60


def test_no_keyless_authority_is_untrusted_signer_without_lookup(test_sigstore: TestSigstore, silent_rekor: socket.socket) -> None:
    url = f"http://127.0.0.1:{silent_rekor.getsockname()[1]}"
    trust = online(dataclasses.replace(test_sigstore.trust(), authorities=()), url, timeout=0.5)
    res = verify_candidate(test_sigstore.attest(statement()).legacy(with_bundle=False), IMAGE_DIGEST, trust)
    assert res.errors[0].reason == "UNTRUSTED_SIGNER" and not _connected(silent_rekor)


# --------------------------------------------------------------------------- review 3: lookup order, transient errors


def test_keyless_attestation_of_another_image_never_costs_a_lookup(test_sigstore: TestSigstore, silent_rekor: socket.socket) -> None:
    """Reviewer's repro A1: a genuine keyless attestation of ANOTHER image, stripped of its entry
    and attached here. Before: the lookup ran before the subject check, so a silent Rekor raised
    TLOG_UNREACHABLE (the key → systemError). Now: SUBJECT_MISMATCH, and nothing connects."""
    from tests.fixtures.keys import OTHER_DIGEST

    rekor_lookup.CACHE.clear()
    url = f"http://127.0.0.1:{silent_rekor.getsockname()[1]}"
    cand = test_sigstore.attest(statement(OTHER_DIGEST)).legacy(with_bundle=False)
    res = verify_candidate(cand, IMAGE_DIGEST, online(test_sigstore.trust(require_tlog=True), url, timeout=0.3))
    assert not res.verified and res.errors[0].reason == "SUBJECT_MISMATCH", res.errors
    assert not _connected(silent_rekor)


def test_keyless_attestation_of_another_image_is_not_looked_up_on_every_admission(
    test_sigstore: TestSigstore, rekor: FakeRekorFront
) -> None:
    """Reviewer's repro A2: Rekor has the entry, yet the attestation is about another image.
    Before: one Rekor request per verification. Now: none."""
    from tests.fixtures.keys import OTHER_DIGEST

    att = test_sigstore.attest(statement(OTHER_DIGEST))
    rekor.answer = rekor_answer(att.entry)
    trust = online(test_sigstore.trust(require_tlog=True), rekor.url)
    for _ in range(3):
        assert verify_candidate(att.legacy(with_bundle=False), IMAGE_DIGEST, trust).errors[0].reason == "SUBJECT_MISMATCH"
    assert rekor.seen == 0


def test_rekor_unreachable_on_the_keyless_branch_is_raised_even_when_a_key_signer_verified(
    test_sigstore: TestSigstore, silent_rekor: socket.socket
) -> None:
    """Reviewer's repro D: an envelope signed by a configured key and by a genuine keyless
    identity, no entry attached, requireTlog false, Rekor silent. Before: the keyless branch's
    TLOG_UNREACHABLE was swallowed and the verdict (key signer only) cached. Now it is raised."""
    from stellaops import dsse
    from stellaops.candidate import Candidate, CosignLayerAnnotations
    from stellaops.trust import KeylessAuthority
    from stellaops.verify import keys

    from tests.fixtures.keys import key_authority, make_private_key
    from tests.fixtures.sigstore import IDENTITY, ISSUER

    rekor_lookup.CACHE.clear()
    rk, leaf, payload = make_private_key("p256"), test_sigstore.issue(), statement()
    pae = dsse.pae(dsse.PAYLOAD_TYPE_INTOTO, payload)
    sigs = [{"sig": base64.b64encode(keys.sign(k, pae)).decode()} for k in (rk, leaf.key)]
    env = json.dumps({"payload": base64.b64encode(payload).decode(), "payloadType": dsse.PAYLOAD_TYPE_INTOTO, "signatures": sigs},
                     separators=(",", ":")).encode()  # fmt: skip
    cand = Candidate(kind="dsse", data=env, source="cosign-tag", attached_to="",
                     cosign=CosignLayerAnnotations(certificate=pem(leaf.cert), chain="".join(pem(c) for c in leaf.chain)))  # fmt: skip
    url = f"http://127.0.0.1:{silent_rekor.getsockname()[1]}"
    trust = online(test_sigstore.trust(key_authority(rk), KeylessAuthority(name="ci", issuer=ISSUER, subject=IDENTITY), require_tlog=False),
                   url, timeout=0.3)  # fmt: skip
    with pytest.raises(rekor_lookup.RekorUnreachable):
        verify_candidate(cand, IMAGE_DIGEST, trust)
    assert _connected(silent_rekor)
