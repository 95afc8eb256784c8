"""Issue 17 item 4: gh's files. ``gh attestation trusted-root`` writes JSON Lines of several
trusted roots: ``--trusted-root FILE`` and ``trustRoots.bundlePath`` accept that, every root
merged. ``gh attestation download`` writes JSON Lines of bundles: ``bundle_lines`` splits them
for ``verify-blob-attestation --bundle`` (every bundle tried). A bad line is refused with its
number, never skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stellaops.errors import ConfigError, StellaError
from stellaops.trust import SigstoreRoots
from stellaops.verify import trustroot
from stellaops.verify.attestation import verify_candidate
from stellaops.verify.bundle_lines import bundle_file_candidates, pick_result, split_bundle_lines

from tests.fixtures.keys import IMAGE_DIGEST, statement
from tests.fixtures.sigstore import TestSigstore


@pytest.fixture(scope="module")
def two() -> tuple[TestSigstore, TestSigstore]:
    return TestSigstore(), TestSigstore()


def _jsonl(*roots: TestSigstore, blank: bool = True) -> bytes:
    lines = [json.dumps(r.trusted_root()) for r in roots]
    return ("\n".join(lines) + ("\n\n" if blank else "")).encode()


def test_jsonl_of_trusted_roots_is_merged(two: tuple[TestSigstore, TestSigstore]) -> None:
    a, b = two
    material = trustroot.load_trusted_root(_jsonl(a, b), "trusted_root.jsonl")
    assert len(material.fulcio) == 2 and len(material.rekor) == 2 and len(material.ctlogs) == 2
    assert "line 1" in material.source and "line 2" in material.source
    # the merged document is what sigstore-python gets: it holds both instances too
    doc = json.loads(material.document)
    assert len(doc["certificateAuthorities"]) == 2 and len(doc["tlogs"]) == 2


def test_attestations_of_each_instance_verify_through_the_merged_roots(two: tuple[TestSigstore, TestSigstore]) -> None:
    """Before: a JSONL trusted root was 'not a JSON trusted_root document' (CONFIG_INVALID)."""
    a, b = two
    roots = SigstoreRoots(trusted_root_json=_jsonl(a, b), trusted_root_source="trusted_root.jsonl", offline=True)
    for ts in (a, b):
        trust = ts.trust()
        trust = type(trust)(authorities=trust.authorities, require_tlog=True, sigstore=roots)
        for cand in (ts.attest(statement()).bundle(), ts.attest(statement()).legacy()):
            res = verify_candidate(cand, IMAGE_DIGEST, trust)
            assert res.verified, res.errors


def test_one_line_jsonl_and_pretty_printed_json_still_load(two: tuple[TestSigstore, TestSigstore]) -> None:
    a, _ = two
    assert len(trustroot.load_trusted_root(_jsonl(a), "one.jsonl").fulcio) == 1
    assert len(trustroot.load_trusted_root(a.trusted_root_json(), "pretty.json").fulcio) == 1


@pytest.mark.parametrize(
    "bad,words",
    [
        (b"{not json", "line 2: not a JSON trusted root"),
        (b'{"mediaType": "application/json"}', "line 2: mediaType"),
        (b"[1, 2]", "line 2: a trusted root must be a JSON object"),
        (b'{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}', "line 2: the trusted root has neither"),
    ],
)
def test_a_bad_line_is_refused_with_its_number(two: tuple[TestSigstore, TestSigstore], bad: bytes, words: str) -> None:
    a, _ = two
    data = json.dumps(a.trusted_root()).encode() + b"\n" + bad + b"\n"
    with pytest.raises(ConfigError) as info:
        trustroot.load_trusted_root(data, "roots.jsonl")
    assert f"roots.jsonl {words}" in info.value.detail, info.value.detail


def test_too_many_roots_are_refused(two: tuple[TestSigstore, TestSigstore]) -> None:
    a, _ = two
    line = json.dumps(a.trusted_root()).encode()
    with pytest.raises(ConfigError) as info:
        trustroot.load_trusted_root(b"\n".join([line] * (trustroot.MAX_ROOTS_PER_FILE + 1)), "many.jsonl")
    assert "more than" in info.value.detail


def test_config_bundle_path_accepts_jsonl(two: tuple[TestSigstore, TestSigstore], tmp_path: Path) -> None:
    from stellaops.config import parse_config

    a, b = two
    (tmp_path / "roots.jsonl").write_bytes(_jsonl(a, b))
    cfg = parse_config(
        f"attestation:\n  trustRoots: {{offline: true, bundlePath: {tmp_path / 'roots.jsonl'}}}\n"
        "  authorities: [{name: ci, keyless: {issuer: 'https://token.actions.githubusercontent.com', subjectRegExp: '.*'}}]\n",
        env={},
    )
    assert verify_candidate(b.attest(statement()).bundle(), IMAGE_DIGEST, cfg.trust).verified
    (tmp_path / "bad.jsonl").write_bytes(_jsonl(a) + b"garbage\n")
    with pytest.raises(ConfigError) as info:
        parse_config(f"attestation:\n  trustRoots: {{offline: true, bundlePath: {tmp_path / 'bad.jsonl'}}}\n", env={})
    assert "attestation.trustRoots.bundlePath" in str(info.value) and "line 3" in str(info.value)


# --------------------------------------------------------------------------- bundles (gh attestation download)


def test_bundle_jsonl_gives_one_candidate_per_line_and_every_one_is_tried(two: tuple[TestSigstore, TestSigstore], tmp_path: Path) -> None:
    a, b = two
    other = a.attest(statement(digest="sha256:" + "cd" * 32))  # about another artifact
    mine = a.attest(statement())
    path = tmp_path / "attestations.jsonl"
    path.write_bytes(other.bundle_json() + b"\n" + mine.bundle_json() + b"\n")
    cands = bundle_file_candidates(str(path))
    assert cands is not None and [c.location for c in cands] == [f"{path} line 1", f"{path} line 2"]
    results = [verify_candidate(c, IMAGE_DIGEST, a.trust()) for c in cands]
    assert [r.verified for r in results] == [False, True]
    assert pick_result(results, "stellaops.io/predicates/scan-result@v1") is results[1]
    # nothing verifies: the first reason is reported
    results = [verify_candidate(c, IMAGE_DIGEST, b.trust()) for c in cands]
    assert pick_result(results, "x") is results[0] and not results[0].verified


def test_a_single_bundle_file_is_left_to_the_existing_reader(two: tuple[TestSigstore, TestSigstore], tmp_path: Path) -> None:
    a, _ = two
    path = tmp_path / "one.json"
    path.write_text(json.dumps(json.loads(a.attest(statement()).bundle_json()), indent=2))
    assert bundle_file_candidates(str(path)) is None


@pytest.mark.parametrize(
    "bad,words",
    [(b"{broken", "line 2: not a JSON bundle"), (b"[]", "line 2: a bundle must be a JSON object"), (b'{"a": 1}', "line 2 is not a sigstore bundle")],
)
def test_a_bad_bundle_line_is_refused_with_its_number(two: tuple[TestSigstore, TestSigstore], tmp_path: Path, bad: bytes, words: str) -> None:
    a, _ = two
    path = tmp_path / "bad.jsonl"
    path.write_bytes(a.attest(statement()).bundle_json() + b"\n" + bad + b"\n")
    with pytest.raises(StellaError) as info:
        bundle_file_candidates(str(path))
    assert info.value.reason == "MALFORMED_ENVELOPE" and words in info.value.detail, info.value.detail


def test_not_json_at_all_is_refused() -> None:
    with pytest.raises(StellaError) as info:
        split_bundle_lines(b"\xff\xfe", "x.json")
    assert info.value.reason == "MALFORMED_ENVELOPE"


def test_an_unreadable_bundle_file_is_a_request_error(tmp_path: Path) -> None:
    with pytest.raises(StellaError) as info:
        bundle_file_candidates(str(tmp_path / "missing.jsonl"))
    assert info.value.reason == "REQUEST_INVALID"
