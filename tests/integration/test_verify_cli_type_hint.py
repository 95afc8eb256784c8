"""``stella attest verify IMAGE --type slsaprovenance`` on an image whose only provenance is SLSA
v1 (issue 21 item 7): cosign's ``slsaprovenance`` is SLSA v0.2, so nothing matches, and the
error says to pass ``--type slsaprovenance1``. Through the real CLI and a loopback registry."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from stellaops.cli import cli, exit_code_for
from stellaops.errors import StellaError
from stellaops.predicates import SLSA_V1
from tests.fixtures.images import loopback_client, push_test_image
from tests.hardening._support import new_key, push_att, sign_envelope, statement, write_public_key
from tests.unit.test_verify_cli_flags import SLSA_V1_PREDICATE


def _verify(image: str, pub: Path, ptype: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, ["attest", "verify", image, "--key", str(pub), "--insecure-ignore-tlog", "--no-store", "--type", ptype],
                             env={"STELLAOPS_CONFIG": ""})  # fmt: skip
    if isinstance(res.exception, StellaError):
        return exit_code_for(res.exception), res.exception.reason, f"{res.output}{res.exception} hint: {res.exception.hint}"
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, "", res.output


def test_slsaprovenance_on_an_image_with_slsa_v1_only_hints_slsaprovenance1(ocireg: str, tmp_path: Path) -> None:
    key = new_key()
    client = loopback_client()
    digest = push_test_image(ocireg, "hint/app", "v1", client=client)
    push_att(client, ocireg, "hint/app", digest, [sign_envelope(statement(digest, predicate_type=SLSA_V1, predicate=SLSA_V1_PREDICATE), [key])])
    client.close()
    pub = write_public_key(key, tmp_path / "cosign.pub")
    image = f"{ocireg}/hint/app:v1"
    assert _verify(image, pub, "slsaprovenance1")[0] == 0  # the control: the attestation verifies
    rc, reason, out = _verify(image, pub, "slsaprovenance")
    assert (rc, reason) == (1, "NO_ATTESTATION"), out
    assert "pass --type slsaprovenance1" in out, out
    rc, reason, out = _verify(image, pub, "spdxjson")  # another type: the plain hint
    assert (rc, reason) == (1, "NO_ATTESTATION") and "slsaprovenance1" not in out, out
