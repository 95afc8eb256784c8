"""Issue 17 item 3: GitHub's own Sigstore instance (attestations of private repositories): no CT
log, no transparency log; the certificate has no SCT and the time of signing comes from one
RFC 3161 timestamp. Verified only by explicit configuration — ``insecureIgnoreSct`` and
``useSignedTimestamps`` on the keyless authority with ``requireTlog: false`` (CLI:
``--insecure-ignore-sct --use-signed-timestamps --insecure-ignore-tlog``) — against a
GitHub-instance-shaped trusted root built offline (its own Fulcio CA and TSA, no tlogs, no
ctlogs) with a real timestamp from the real timestamp-server. ``docs/verification.md`` §4b
shows the same recipe; these tests run it."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from stellaops.candidate import SOURCE_BUNDLE, Candidate
from stellaops.cli.trust_flags import apply_trust_flags, github_trust_options, trust_flag_fragment
from stellaops.errors import RequestError
from stellaops.trust import KeylessAuthority, SigstoreRoots, TrustConfig
from stellaops.verify.attestation import verify_candidate

from tests.fixtures.keys import IMAGE_DIGEST, statement
from tests.fixtures.sigstore import IDENTITY, ISSUER, FulcioCA, TestSigstore, github_extensions
from tests.fixtures.tsa import TsaServer
from tests.unit.verify.test_timestamp import tsa_entry

REPO = "https://github.com/acme/app"
NO_SIGNED_TIME = {"predicate_type": "https://slsa.dev/provenance/v1", "predicate": {"buildDefinition": {}}}


@pytest.fixture(scope="module")
def github_ca() -> FulcioCA:
    return FulcioCA.create("fulcio.githubapp.test")


def github_root(ca: FulcioCA, tsa: TsaServer | None) -> dict[str, Any]:
    """What GitHub's trusted root looks like: a Fulcio CA and a TSA, no tlogs, no ctlogs."""
    return {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [],
        "certificateAuthorities": [
            {
                "subject": {"organization": "GitHub, Inc.", "commonName": "Internal Services Root"},
                "uri": "fulcio.githubapp.test",
                "certChain": {"certificates": [{"rawBytes": base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()} for c in (ca.inter, ca.root)]},
                "validFor": {"start": "2020-01-01T00:00:00Z"},
            }
        ],
        "ctlogs": [],
        "timestampAuthorities": [tsa_entry(tsa)] if tsa is not None else [],
    }


def github_attestation(ts: TestSigstore, ca: FulcioCA, tsa: TsaServer, *, timestamped: bool = True, **issue: Any) -> Candidate:
    """A v0.3 bundle as GitHub's instance writes it: certificate without SCT, no tlogEntries,
    one RFC 3161 timestamp over the signature."""
    leaf = ts.issue(ca=ca, sct="none", extensions=github_extensions(), **issue)
    att = ts.attest(statement(**NO_SIGNED_TIME), leaf=leaf)
    stamps = (tsa.timestamp(att.signature),) if timestamped else ()
    return Candidate(kind="bundle", data=att.bundle_json(with_entry=False, timestamps=stamps), source=SOURCE_BUNDLE, attached_to="")


def _trust(ca: FulcioCA, tsa: TsaServer | None, *, require_tlog: bool = False, **opts: Any) -> TrustConfig:
    opts = {"insecure_ignore_sct": True, "use_signed_timestamps": True, **opts}
    authority = KeylessAuthority(name="acme-release", issuer=ISSUER, subject=IDENTITY, extensions=(("sourceRepositoryUri", REPO),), **opts)
    roots = SigstoreRoots(trusted_root_json=json.dumps(github_root(ca, tsa)).encode(), trusted_root_source="github trusted_root.json", offline=True)
    return TrustConfig(authorities=(authority,), require_tlog=require_tlog, sigstore=roots)


def test_github_instance_attestation_verifies_with_the_explicit_opt_ins(test_sigstore: TestSigstore, github_ca: FulcioCA, tsa: TsaServer) -> None:
    res = verify_candidate(github_attestation(test_sigstore, github_ca, tsa), IMAGE_DIGEST, _trust(github_ca, tsa))
    assert res.verified, res.errors
    assert [(s.kind, s.authority, s.subject) for s in res.signers] == [("keyless", "acme-release", IDENTITY)]
    assert len(res.timestamps) == 1 and res.created == res.timestamps[0].time and res.created_signed
    assert res.tlog.to_json() == {"verified": False, "required": False}


def test_without_insecure_ignore_sct_it_is_sct_invalid(test_sigstore: TestSigstore, github_ca: FulcioCA, tsa: TsaServer) -> None:
    res = verify_candidate(github_attestation(test_sigstore, github_ca, tsa), IMAGE_DIGEST, _trust(github_ca, tsa, insecure_ignore_sct=False))
    assert res.errors[0].reason == "SCT_INVALID"


def test_without_use_signed_timestamps_it_is_tlog_missing_with_a_true_hint(test_sigstore: TestSigstore, github_ca: FulcioCA, tsa: TsaServer) -> None:
    """Before: TLOG_MISSING whose hint told the user to do what they had done (a TSA in the
    root, --insecure-ignore-tlog): the certificate-signed bundle's timestamp was never verified."""
    res = verify_candidate(github_attestation(test_sigstore, github_ca, tsa), IMAGE_DIGEST, _trust(github_ca, tsa, use_signed_timestamps=False))
    assert res.errors[0].reason == "TLOG_MISSING"
    assert "no verified RFC 3161 timestamp may replace it" in res.errors[0].message
    assert "useSignedTimestamps" in res.errors[0].hint and "--use-signed-timestamps" in res.errors[0].hint


def test_require_tlog_still_wins(test_sigstore: TestSigstore, github_ca: FulcioCA, tsa: TsaServer) -> None:
    res = verify_candidate(github_attestation(test_sigstore, github_ca, tsa), IMAGE_DIGEST, _trust(github_ca, tsa, require_tlog=True))
    assert res.errors[0].reason == "TLOG_MISSING" and "requireTlog is true" in res.errors[0].hint


def test_without_a_tsa_in_the_root_it_is_timestamp_invalid(test_sigstore: TestSigstore, github_ca: FulcioCA, tsa: TsaServer) -> None:
    res = verify_candidate(github_attestation(test_sigstore, github_ca, tsa), IMAGE_DIGEST, _trust(github_ca, None))
    assert res.errors[0].reason == "TIMESTAMP_INVALID" and "no timestamp authority is configured" in res.errors[0].message


def test_without_any_timestamp_it_is_timestamp_invalid(test_sigstore: TestSigstore, github_ca: FulcioCA, tsa: TsaServer) -> None:
    res = verify_candidate(github_attestation(test_sigstore, github_ca, tsa, timestamped=False), IMAGE_DIGEST, _trust(github_ca, tsa))
    assert res.errors[0].reason == "TIMESTAMP_INVALID" and "carries none" in res.errors[0].message


def test_a_timestamp_from_another_tsa_is_refused(test_sigstore: TestSigstore, github_ca: FulcioCA, tsa: TsaServer, other_tsa: TsaServer) -> None:
    res = verify_candidate(github_attestation(test_sigstore, github_ca, other_tsa), IMAGE_DIGEST, _trust(github_ca, tsa))
    assert res.errors[0].reason == "TIMESTAMP_INVALID"


def test_a_timestamp_after_the_certificate_expired_is_refused(test_sigstore: TestSigstore, github_ca: FulcioCA, tsa: TsaServer) -> None:
    old = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)
    res = verify_candidate(github_attestation(test_sigstore, github_ca, tsa, not_before=old), IMAGE_DIGEST, _trust(github_ca, tsa))
    assert res.errors[0].reason == "TIMESTAMP_INVALID" and "outside the signing certificate's validity" in res.errors[0].message


def test_a_certificate_of_another_ca_is_refused(test_sigstore: TestSigstore, github_ca: FulcioCA, tsa: TsaServer) -> None:
    res = verify_candidate(github_attestation(test_sigstore, FulcioCA.create("evil"), tsa), IMAGE_DIGEST, _trust(github_ca, tsa))
    assert res.errors[0].reason == "CERTIFICATE_INVALID"


def test_the_sct_waiver_is_per_authority(test_sigstore: TestSigstore, github_ca: FulcioCA, tsa: TsaServer) -> None:
    """Only the authority that says insecureIgnoreSct waives it: a certificate without SCT whose
    identity matches only an authority without the waiver stays SCT_INVALID."""
    trust = _trust(github_ca, tsa)
    other = KeylessAuthority(name="other", issuer=ISSUER, subject_regexp="https://github\\.com/evil/.*", use_signed_timestamps=True)
    trust = TrustConfig(authorities=(trust.authorities[0], other), require_tlog=False, sigstore=trust.sigstore)
    cand = github_attestation(test_sigstore, github_ca, tsa, identity="https://github.com/evil/app/.github/workflows/x.yml@refs/heads/main")
    assert verify_candidate(cand, IMAGE_DIGEST, trust).errors[0].reason == "SCT_INVALID"


def test_the_config_recipe_of_the_docs(test_sigstore: TestSigstore, github_ca: FulcioCA, tsa: TsaServer, tmp_path: Path) -> None:
    """docs/verification.md §4b, stellaops.yaml form: requireTlog false, a keyless authority with
    insecureIgnoreSct and useSignedTimestamps, GitHub's trusted root."""
    from stellaops.config import parse_config

    (tmp_path / "github_trusted_root.json").write_text(json.dumps(github_root(github_ca, tsa)))
    cfg = parse_config(
        f"""
attestation:
  requireTlog: false
  trustRoots:
    offline: true
    bundlePath: {tmp_path / 'github_trusted_root.json'}
  authorities:
    - name: acme-release
      keyless:
        issuer: {ISSUER}
        subject: {IDENTITY}
        sourceRepositoryUri: {REPO}
        insecureIgnoreSct: true
        useSignedTimestamps: true
""",
        env={},
    )
    cand = github_attestation(test_sigstore, github_ca, tsa)
    res = verify_candidate(cand, IMAGE_DIGEST, cfg.trust)
    assert res.verified and res.timestamps, res.errors
    plain = parse_config(
        f"attestation:\n  requireTlog: false\n  trustRoots: {{offline: true, bundlePath: {tmp_path / 'github_trusted_root.json'}}}\n"
        f"  authorities: [{{name: acme-release, keyless: {{issuer: '{ISSUER}', subject: '{IDENTITY}'}}}}]\n",
        env={},
    )
    assert plain.trust.fingerprint != cfg.trust.fingerprint  # verdicts under the opt-ins are never served without them
    from stellaops.config import describe

    (shown,) = describe(cfg)["authorities"]
    assert shown["insecureIgnoreSct"] and shown["useSignedTimestamps"] and shown["extensions"] == {"sourceRepositoryUri": REPO}
    assert "insecureIgnoreSct" not in describe(plain)["authorities"][0]
    assert verify_candidate(cand, IMAGE_DIGEST, plain.trust).errors[0].reason == "SCT_INVALID"


# --------------------------------------------------------------------------- the CLI recipe (cli/trust_flags.py)


def _cli_flags(*argv: str) -> dict[str, Any]:
    """The keyword arguments github_trust_options hands a command, from real click parsing."""
    seen: dict[str, Any] = {}

    @click.command()
    @github_trust_options
    def cmd(**kwargs: Any) -> None:
        seen.update(kwargs)

    result = CliRunner().invoke(cmd, list(argv))
    assert result.exit_code == 0, result.output
    return seen


def _cli_trust(ca: FulcioCA, tsa: TsaServer, roots_file: bytes) -> TrustConfig:
    """What build_trust makes of --certificate-identity/--certificate-oidc-issuer
    --insecure-ignore-tlog --trusted-root FILE (require_tlog off, keyless timestamps allowed)."""
    return TrustConfig(
        authorities=(KeylessAuthority(name="certificate-identity", issuer=ISSUER, subject=IDENTITY),),
        require_tlog=False,
        sigstore=SigstoreRoots(trusted_root_json=roots_file, trusted_root_source="trusted_root.jsonl", offline=True),
        fingerprint="cli",
        keyless_timestamp_without_tlog=True,
    )


def test_the_cli_recipe_with_gh_attestation_trusted_root_jsonl(test_sigstore: TestSigstore, github_ca: FulcioCA, tsa: TsaServer) -> None:
    """stella attest verify-blob-attestation --trusted-root trusted_root.jsonl (public-good and
    GitHub, as `gh attestation trusted-root` writes) --insecure-ignore-tlog --insecure-ignore-sct
    --use-signed-timestamps --certificate-identity … --certificate-oidc-issuer …
    --certificate-source-repository-uri …"""
    jsonl = (json.dumps(test_sigstore.trusted_root()) + "\n" + json.dumps(github_root(github_ca, tsa)) + "\n").encode()
    flags = _cli_flags("--insecure-ignore-sct", "--use-signed-timestamps", "--certificate-source-repository-uri", REPO,
                       "--certificate-github-workflow-ref", "refs/heads/main")  # fmt: skip
    fragment = trust_flag_fragment(**flags)
    assert fragment == {"keyless": {"sourceRepositoryUri": REPO, "githubWorkflowRef": "refs/heads/main", "insecureIgnoreSct": True, "useSignedTimestamps": True}}
    trust = apply_trust_flags(_cli_trust(github_ca, tsa, jsonl), fragment)
    cand = github_attestation(test_sigstore, github_ca, tsa)
    res = verify_candidate(cand, IMAGE_DIGEST, trust)
    assert res.verified and res.timestamps, res.errors
    # without the flags: the SCT is missing
    assert verify_candidate(cand, IMAGE_DIGEST, _cli_trust(github_ca, tsa, jsonl)).errors[0].reason == "SCT_INVALID"
    # a public-good-style attestation (SCT, log entry, no timestamp) verifies through the same
    # merged roots with the pins alone; --use-signed-timestamps demands a timestamp it lacks
    att = test_sigstore.attest(statement(), extensions=github_extensions())
    pins = trust_flag_fragment(**_cli_flags("--certificate-source-repository-uri", REPO))
    assert verify_candidate(att.bundle(), IMAGE_DIGEST, apply_trust_flags(_cli_trust(github_ca, tsa, jsonl), pins)).verified
    res = verify_candidate(att.bundle(), IMAGE_DIGEST, trust)
    assert res.errors[0].reason == "TIMESTAMP_INVALID" and "useSignedTimestamps" in res.errors[0].message
    # a pin the certificate does not satisfy
    wrong = apply_trust_flags(_cli_trust(github_ca, tsa, jsonl), trust_flag_fragment(**_cli_flags("--insecure-ignore-sct",
                              "--use-signed-timestamps", "--certificate-github-workflow-repository", "acme/other")))  # fmt: skip
    assert verify_candidate(cand, IMAGE_DIGEST, wrong).errors[0].reason == "IDENTITY_MISMATCH"


def test_no_flags_give_an_empty_fragment_and_leave_trust_alone(github_ca: FulcioCA, tsa: TsaServer) -> None:
    assert trust_flag_fragment(**_cli_flags()) == {}
    trust = _cli_trust(github_ca, tsa, json.dumps(github_root(github_ca, tsa)).encode())
    assert apply_trust_flags(trust, {}) is trust


def test_flags_without_a_keyless_authority_are_refused() -> None:
    with pytest.raises(RequestError) as info:
        apply_trust_flags(TrustConfig(), trust_flag_fragment(gh_workflow_ref="refs/heads/main"))
    assert "--certificate-github-workflow-ref" in info.value.detail and "no keyless authority" in info.value.detail


@pytest.mark.parametrize("value", ["", " refs/heads/main"])
def test_an_empty_or_padded_flag_value_is_refused(github_ca: FulcioCA, tsa: TsaServer, value: str) -> None:
    trust = _cli_trust(github_ca, tsa, json.dumps(github_root(github_ca, tsa)).encode())
    with pytest.raises(RequestError) as info:
        apply_trust_flags(trust, trust_flag_fragment(gh_workflow_ref=value))
    assert info.value.detail.startswith("--certificate-github-workflow-ref:")


def test_a_flag_contradicting_a_configured_pin_is_refused() -> None:
    trust = TrustConfig(authorities=(KeylessAuthority(name="cfg", issuer=ISSUER, subject=IDENTITY, extensions=(("githubWorkflowRef", "refs/heads/main"),)),))
    with pytest.raises(RequestError) as info:
        apply_trust_flags(trust, trust_flag_fragment(gh_workflow_ref="refs/heads/dev"))
    assert "contradicts" in info.value.detail
    same = apply_trust_flags(trust, trust_flag_fragment(gh_workflow_ref="refs/heads/main", gh_insecure_ignore_sct=True))
    assert same.keyless_authorities[0].insecure_ignore_sct and dict(same.keyless_authorities[0].extensions) == {"githubWorkflowRef": "refs/heads/main"}
    assert same.fingerprint != trust.fingerprint


def test_unknown_fragment_arguments_are_a_wiring_error() -> None:
    with pytest.raises(TypeError):
        trust_flag_fragment(certificate_identity="x")
