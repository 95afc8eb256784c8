"""Timestamp authorities in the configuration and on the command line: ``tsaCertChain`` is
validated at start-up (missing / unparsable / not a TSA chain → an error naming the field and the
file), ``--timestamp-certificate-chain`` likewise, and both reach the verifier."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from stellaops.cli import cli
from stellaops.config import load_config
from stellaops.errors import ConfigError
from stellaops.verify import trustroot

from tests.fixtures.sigstore import TestSigstore, pem
from tests.fixtures.tsa import TsaServer


def _config(tmp_path: Path, tsa_line: str, extra: str = "") -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = tmp_path / "cosign.pub"
    if not key.exists():
        public = ec.generate_private_key(ec.SECP256R1()).public_key()
        key.write_bytes(public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    p = tmp_path / "stellaops.yaml"
    p.write_text(
        "attestation:\n"
        "  trustRoots:\n"
        "    sigstore:\n"
        f"      {tsa_line}\n"
        f"{extra}"
        "  authorities:\n"
        "    - name: release-key\n"
        f"      key: {{path: {key}}}\n"
        "  requireTlog: false\n"
    )
    return p


def test_tsa_cert_chain_loads_without_switching_on_public_good(tmp_path: Path, tsa: TsaServer, other_tsa: TsaServer) -> None:
    (tmp_path / "tsa.pem").write_bytes(tsa.chain_pem)
    cfg = load_config(str(_config(tmp_path, "tsaCertChain: tsa.pem")), env={})
    roots = cfg.trust.sigstore
    assert roots is not None and roots.tsa_chain_pem == tsa.chain_pem and not roots.public_good
    material = trustroot.from_roots(roots)
    assert len(material.tsas) == 1 and material.tsas[0].certificates[0] == tsa.chain[0]
    # the chain is part of the trust fingerprint (cached verdicts change with it)
    (tmp_path / "other.pem").write_bytes(other_tsa.chain_pem)
    assert load_config(str(_config(tmp_path, "tsaCertChain: other.pem")), env={}).trust.fingerprint != cfg.trust.fingerprint
    assert load_config(str(_config(tmp_path, "tsaCertChain: tsa.pem")), env={}).trust.fingerprint == cfg.trust.fingerprint


def test_tsa_cert_chain_missing_file_names_field_and_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(str(_config(tmp_path, "tsaCertChain: nope.pem")), env={})
    assert "attestation.trustRoots.sigstore.tsaCertChain" in err.value.detail and "nope.pem" in err.value.detail


def test_tsa_cert_chain_unparsable_names_field_and_file(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("not a certificate")
    with pytest.raises(ConfigError) as err:
        load_config(str(_config(tmp_path, "tsaCertChain: bad.pem")), env={})
    assert "attestation.trustRoots.sigstore.tsaCertChain" in err.value.detail and "bad.pem" in err.value.detail


def test_tsa_cert_chain_refuses_a_chain_without_timestamping_certificate(tmp_path: Path, test_sigstore: TestSigstore) -> None:
    leaf = test_sigstore.issue()  # a code-signing (Fulcio) chain, not a TSA
    (tmp_path / "fulcio.pem").write_text(pem(leaf.cert) + "".join(pem(c) for c in leaf.chain))
    with pytest.raises(ConfigError, match="timeStamping"):
        load_config(str(_config(tmp_path, "tsaCertChain: fulcio.pem")), env={})


def test_tsa_cert_chain_refuses_certificates_that_do_not_form_one_chain(tmp_path: Path, tsa: TsaServer, other_tsa: TsaServer) -> None:
    mixed = tsa.chain[:1] + other_tsa.chain[1:]
    from cryptography.hazmat.primitives import serialization

    (tmp_path / "mixed.pem").write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in mixed))
    with pytest.raises(ConfigError, match="is not issued by"):
        load_config(str(_config(tmp_path, "tsaCertChain: mixed.pem")), env={})


def test_tsa_chain_is_written_into_the_merged_trusted_root(tsa: TsaServer, test_sigstore: TestSigstore) -> None:
    """trusted_root.json + tsaCertChain: the document handed to sigstore-python lists the TSA too."""
    from stellaops.trust import SigstoreRoots

    roots = SigstoreRoots(trusted_root_json=test_sigstore.trusted_root_json(), tsa_chain_pem=tsa.chain_pem, offline=True)
    material = trustroot.from_roots(roots)
    doc = json.loads(material.document)
    assert len(doc["timestampAuthorities"]) == 1
    again = trustroot.load_trusted_root(material.document, "merged")
    assert again.tsas[0].certificates == material.tsas[0].certificates and again.fulcio


def test_cli_timestamp_certificate_chain_errors_name_the_file(tmp_path: Path, tsa: TsaServer) -> None:
    from cryptography.hazmat.primitives import serialization

    from tests.fixtures.keys import (
        IMAGE_DIGEST,
        envelope_bytes,
        make_private_key,
        statement,
    )

    key = make_private_key("p256")
    (tmp_path / "k.pub").write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (tmp_path / "env.json").write_bytes(envelope_bytes(statement(), [key]))
    (tmp_path / "bad.pem").write_text("junk")
    (tmp_path / "tsa.pem").write_bytes(tsa.chain_pem)
    base = ["attest", "verify-blob-attestation", "--digest", IMAGE_DIGEST, "--signature", str(tmp_path / "env.json"),
            "--key", str(tmp_path / "k.pub"), "--insecure-ignore-tlog", "--type", "stellaops.io/predicates/scan-result@v1"]
    assert CliRunner().invoke(cli, [*base, "--timestamp-certificate-chain", str(tmp_path / "tsa.pem")]).exit_code == 0
    for name in ("bad.pem", "missing.pem"):
        res = CliRunner().invoke(cli, [*base, "--timestamp-certificate-chain", str(tmp_path / name)])
        assert res.exit_code != 0 and name in (res.output + str(res.exception)), res.output
