"""Issue 17 item 5: exact-match GitHub identity checks on the certificate's Fulcio extensions —
cosign's ``--certificate-github-workflow-{trigger,sha,name,repository,ref}`` (the deprecated
``….1.2``–``….1.6``, raw strings, as cosign reads them; their DER successors, when present,
must agree) and the source-repository extensions (``….1.9``, ``.12``, ``.13``, ``.14``, ``.16``,
DER UTF8String) — as ``authorities[].keyless`` keys. Every way to fool them is refused:
a missing extension, another value, the wrong encoding, a deprecated extension and its
successor that disagree, bytes that are not UTF-8, trailing bytes after the DER string."""

from __future__ import annotations

from typing import Any

import pytest
from stellaops.errors import ConfigError
from stellaops.trust import KeylessAuthority
from stellaops.verify.attestation import verify_candidate

from tests.fixtures.keys import IMAGE_DIGEST, statement
from tests.fixtures.sigstore import GITHUB_CLAIMS, IDENTITY, ISSUER, TestSigstore, der_utf8, github_extensions

# config key -> (the value the GitHub certificate carries, the claim name in GITHUB_CLAIMS)
PINS = {
    "githubWorkflowTrigger": "trigger",
    "githubWorkflowSha": "sha",
    "githubWorkflowName": "name",
    "githubWorkflowRepository": "repository",
    "githubWorkflowRef": "ref",
    "buildSignerUri": "build_signer_uri",
    "sourceRepositoryUri": "source_repository_uri",
    "sourceRepositoryDigest": "sha",
    "sourceRepositoryRef": "ref",
    "sourceRepositoryOwnerUri": "source_repository_owner_uri",
}
# config key -> the OIDs that carry it (deprecated raw, DER successor)
OIDS = {
    "githubWorkflowTrigger": ("1.3.6.1.4.1.57264.1.2", "1.3.6.1.4.1.57264.1.20"),
    "githubWorkflowSha": ("1.3.6.1.4.1.57264.1.3", "1.3.6.1.4.1.57264.1.13"),
    "githubWorkflowName": ("1.3.6.1.4.1.57264.1.4",),
    "githubWorkflowRepository": ("1.3.6.1.4.1.57264.1.5",),
    "githubWorkflowRef": ("1.3.6.1.4.1.57264.1.6", "1.3.6.1.4.1.57264.1.14"),
    "buildSignerUri": ("1.3.6.1.4.1.57264.1.9",),
    "sourceRepositoryUri": ("1.3.6.1.4.1.57264.1.12",),
    "sourceRepositoryDigest": ("1.3.6.1.4.1.57264.1.13",),
    "sourceRepositoryRef": ("1.3.6.1.4.1.57264.1.14",),
    "sourceRepositoryOwnerUri": ("1.3.6.1.4.1.57264.1.16",),
}
DEPRECATED = {f"1.3.6.1.4.1.57264.1.{n}" for n in range(2, 7)}


def _authority(**pins: str) -> KeylessAuthority:
    return KeylessAuthority(name="gh", issuer=ISSUER, subject=IDENTITY, extensions=tuple(pins.items()))


def _verify(ts: TestSigstore, exts: tuple[tuple[str, bytes], ...], authority: KeylessAuthority) -> Any:
    att = ts.attest(statement(), extensions=exts)
    return verify_candidate(att.bundle(), IMAGE_DIGEST, ts.trust(authority))


def _without(exts: tuple[tuple[str, bytes], ...], *oids: str) -> tuple[tuple[str, bytes], ...]:
    return tuple((o, v) for o, v in exts if o not in oids)


def _replaced(exts: tuple[tuple[str, bytes], ...], oid: str, value: bytes) -> tuple[tuple[str, bytes], ...]:
    return tuple((o, value if o == oid else v) for o, v in exts)


def test_every_pin_together_verifies(test_sigstore: TestSigstore) -> None:
    pins = {key: GITHUB_CLAIMS[claim] for key, claim in PINS.items()}
    res = _verify(test_sigstore, github_extensions(), _authority(**pins))
    assert res.verified, res.errors
    assert res.signers[0].authority == "gh"


@pytest.mark.parametrize("key", sorted(PINS))
def test_each_pin_verifies_on_its_own(test_sigstore: TestSigstore, key: str) -> None:
    res = _verify(test_sigstore, github_extensions(), _authority(**{key: GITHUB_CLAIMS[PINS[key]]}))
    assert res.verified, res.errors


@pytest.mark.parametrize("key", sorted(PINS))
def test_a_different_value_is_refused(test_sigstore: TestSigstore, key: str) -> None:
    res = _verify(test_sigstore, github_extensions(), _authority(**{key: GITHUB_CLAIMS[PINS[key]] + "-evil"}))
    assert not res.verified and res.errors[0].reason == "IDENTITY_MISMATCH", res.errors
    assert key in res.errors[0].message


@pytest.mark.parametrize("key", sorted(PINS))
def test_a_prefix_or_case_variant_is_refused(test_sigstore: TestSigstore, key: str) -> None:
    value = GITHUB_CLAIMS[PINS[key]]
    for other in (value[:-1], value.upper() if value.upper() != value else value.lower() + "x"):
        res = _verify(test_sigstore, github_extensions(), _authority(**{key: other}))
        assert not res.verified and res.errors[0].reason == "IDENTITY_MISMATCH", (other, res.errors)


@pytest.mark.parametrize("key", sorted(PINS))
def test_a_missing_extension_is_refused(test_sigstore: TestSigstore, key: str) -> None:
    res = _verify(test_sigstore, _without(github_extensions(), *OIDS[key]), _authority(**{key: GITHUB_CLAIMS[PINS[key]]}))
    assert not res.verified and res.errors[0].reason == "IDENTITY_MISMATCH", res.errors
    assert "has no extension" in res.errors[0].message


def test_a_certificate_without_any_github_extension_is_refused(test_sigstore: TestSigstore) -> None:
    res = _verify(test_sigstore, (), _authority(githubWorkflowRepository="acme/app"))
    assert not res.verified and res.errors[0].reason == "IDENTITY_MISMATCH"


@pytest.mark.parametrize("key", sorted(PINS))
def test_the_wrong_encoding_is_refused(test_sigstore: TestSigstore, key: str) -> None:
    """A deprecated extension holding a DER string, or a DER one holding a raw string."""
    oid = OIDS[key][0]
    value = GITHUB_CLAIMS[PINS[key]]
    wrong = der_utf8(value) if oid in DEPRECATED else value.encode()
    exts = _replaced(_without(github_extensions(), *OIDS[key][1:]), oid, wrong)
    res = _verify(test_sigstore, exts, _authority(**{key: value}))
    assert not res.verified and res.errors[0].reason == "IDENTITY_MISMATCH", res.errors


@pytest.mark.parametrize("key", ["githubWorkflowTrigger", "githubWorkflowSha", "githubWorkflowRef"])
def test_a_deprecated_extension_and_its_successor_must_agree(test_sigstore: TestSigstore, key: str) -> None:
    raw_oid, der_oid = OIDS[key]
    value = GITHUB_CLAIMS[PINS[key]]
    # the deprecated one (what cosign reads) matches, its successor says otherwise
    exts = _replaced(github_extensions(), der_oid, der_utf8(value + "-other"))
    res = _verify(test_sigstore, exts, _authority(**{key: value}))
    assert not res.verified and res.errors[0].reason == "IDENTITY_MISMATCH" and der_oid in res.errors[0].message, res.errors
    # and the other way round
    exts = _replaced(github_extensions(), raw_oid, (value + "-other").encode())
    res = _verify(test_sigstore, exts, _authority(**{key: value}))
    assert not res.verified and res.errors[0].reason == "IDENTITY_MISMATCH" and raw_oid in res.errors[0].message, res.errors


@pytest.mark.parametrize("key", ["githubWorkflowTrigger", "githubWorkflowSha", "githubWorkflowRef"])
def test_the_successor_alone_does_not_satisfy_a_github_workflow_pin(test_sigstore: TestSigstore, key: str) -> None:
    """cosign reads the deprecated extension for --certificate-github-workflow-*: a certificate
    with only the successor (a GitLab certificate's Source Repository Ref, say) is refused, as
    by cosign (test_verify_cosign_github.py); the successor is pinned by its own key."""
    value = GITHUB_CLAIMS[PINS[key]]
    res = _verify(test_sigstore, github_extensions(deprecated=False), _authority(**{key: value}))
    assert not res.verified and res.errors[0].reason == "IDENTITY_MISMATCH" and OIDS[key][0] in res.errors[0].message
    successor = {"githubWorkflowTrigger": None, "githubWorkflowSha": "sourceRepositoryDigest", "githubWorkflowRef": "sourceRepositoryRef"}[key]
    if successor:
        assert _verify(test_sigstore, github_extensions(deprecated=False), _authority(**{successor: value})).verified


def test_bytes_that_are_not_utf8_are_refused(test_sigstore: TestSigstore) -> None:
    exts = _replaced(github_extensions(), "1.3.6.1.4.1.57264.1.5", b"acme/\xffapp")
    res = _verify(test_sigstore, exts, _authority(githubWorkflowRepository="acme/\ufffdapp"))
    assert not res.verified and res.errors[0].reason == "IDENTITY_MISMATCH"
    exts = _replaced(github_extensions(), "1.3.6.1.4.1.57264.1.12", b"\x0c\x04\xff\xfe\xfd\xfc")
    res = _verify(test_sigstore, exts, _authority(sourceRepositoryUri="\ufffd\ufffd"))
    assert not res.verified and res.errors[0].reason == "IDENTITY_MISMATCH"


def test_der_string_with_trailing_bytes_or_another_tag_is_refused(test_sigstore: TestSigstore) -> None:
    uri = GITHUB_CLAIMS["source_repository_uri"]
    for bad in (der_utf8(uri) + b"\x00", b"\x16" + der_utf8(uri)[1:], b"\x13" + der_utf8(uri)[1:]):  # trailing byte, IA5String, PrintableString
        exts = _replaced(github_extensions(), "1.3.6.1.4.1.57264.1.12", bad)
        res = _verify(test_sigstore, exts, _authority(sourceRepositoryUri=uri))
        assert not res.verified and res.errors[0].reason == "IDENTITY_MISMATCH", (bad, res.errors)


def test_pins_do_not_replace_issuer_and_subject(test_sigstore: TestSigstore) -> None:
    """An authority still needs its issuer and subject: pins only narrow it."""
    att = test_sigstore.attest(statement(), identity="https://github.com/evil/app/.github/workflows/x.yml@refs/heads/main",
                               extensions=github_extensions())  # fmt: skip
    res = verify_candidate(att.bundle(), IMAGE_DIGEST, test_sigstore.trust(_authority(githubWorkflowRepository="acme/app")))
    assert not res.verified and res.errors[0].reason == "IDENTITY_MISMATCH"


def test_a_second_authority_without_pins_still_admits_its_signer(test_sigstore: TestSigstore) -> None:
    att = test_sigstore.attest(statement(), extensions=github_extensions(ref="refs/heads/dev"))
    strict = _authority(githubWorkflowRef="refs/heads/main")
    loose = KeylessAuthority(name="any-ref", issuer=ISSUER, subject_regexp=".*")
    res = verify_candidate(att.bundle(), IMAGE_DIGEST, test_sigstore.trust(strict, loose))
    assert res.verified and [s.authority for s in res.signers] == ["any-ref"]


def test_legacy_layer_is_checked_the_same_way(test_sigstore: TestSigstore) -> None:
    att = test_sigstore.attest(statement(), extensions=github_extensions())
    assert verify_candidate(att.legacy(), IMAGE_DIGEST, test_sigstore.trust(_authority(githubWorkflowRef="refs/heads/main"))).verified
    res = verify_candidate(att.legacy(), IMAGE_DIGEST, test_sigstore.trust(_authority(githubWorkflowRef="refs/heads/dev")))
    assert res.errors[0].reason == "IDENTITY_MISMATCH"


# --------------------------------------------------------------------------- configuration


def _config(tmp_path: Any, ts: TestSigstore, keyless: str) -> Any:
    from stellaops.config import parse_config

    (tmp_path / "trusted_root.json").write_bytes(ts.trusted_root_json())
    return parse_config(
        "attestation:\n"
        f"  trustRoots: {{offline: true, bundlePath: {tmp_path / 'trusted_root.json'}}}\n"
        f"  authorities: [{{name: gh, keyless: {{issuer: '{ISSUER}', subject: '{IDENTITY}', {keyless}}}}}]\n",
        env={},
    )


def test_config_keys_pin_the_extensions(test_sigstore: TestSigstore, tmp_path: Any) -> None:
    cfg = _config(tmp_path, test_sigstore, "githubWorkflowRepository: acme/app, sourceRepositoryRef: refs/heads/main")
    (auth,) = cfg.trust.keyless_authorities
    assert dict(auth.extensions) == {"githubWorkflowRepository": "acme/app", "sourceRepositoryRef": "refs/heads/main"}
    att = test_sigstore.attest(statement(), extensions=github_extensions())
    assert verify_candidate(att.bundle(), IMAGE_DIGEST, cfg.trust).verified
    other = _config(tmp_path, test_sigstore, "githubWorkflowRepository: acme/other")
    assert verify_candidate(att.bundle(), IMAGE_DIGEST, other.trust).errors[0].reason == "IDENTITY_MISMATCH"
    assert other.trust.fingerprint != cfg.trust.fingerprint


@pytest.mark.parametrize("value", ["''", "' acme/app'", "1234", "[acme/app]"])
def test_config_refuses_an_empty_padded_or_non_string_pin(test_sigstore: TestSigstore, tmp_path: Any, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        _config(tmp_path, test_sigstore, f"githubWorkflowRepository: {value}")
    assert "authorities[0].keyless" in str(info.value)


def test_config_refuses_an_unknown_keyless_key(test_sigstore: TestSigstore, tmp_path: Any) -> None:
    with pytest.raises(ConfigError) as info:
        _config(tmp_path, test_sigstore, "githubWorkflowBranch: main")
    assert "unknown key" in str(info.value)
