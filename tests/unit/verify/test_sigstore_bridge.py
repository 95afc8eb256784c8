"""sigstore-python as the second gate for keyless bundles: it accepts the test Sigstore's
bundles and its refusals map to our reasons."""

from __future__ import annotations

import pytest

from stellaops.errors import VerificationError
from stellaops.verify import sigstore_bridge, trustroot
from tests.fixtures.keys import statement
from tests.fixtures.sigstore import FulcioCA, TestSigstore


def _root(ss: TestSigstore) -> trustroot.TrustedRootMaterial:
    return trustroot.load_trusted_root(ss.trusted_root_json(), "test")


def _verify(ss: TestSigstore, bundle: bytes, authorities=None) -> None:  # type: ignore[no-untyped-def]
    sigstore_bridge.verify_bundle(bundle, _root(ss), authorities or ss.trust().keyless_authorities)


def test_sigstore_python_accepts_the_test_sigstore_bundle(test_sigstore: TestSigstore) -> None:
    _verify(test_sigstore, test_sigstore.attest(statement()).bundle_json())


@pytest.mark.parametrize(
    "knobs,reason",
    [
        ({"sct": "forged"}, "SCT_INVALID"),
        ({"ca": "rogue"}, "CERTIFICATE_INVALID"),
        ({"forge_set": True}, "TLOG_INVALID"),
        ({"entry_payload": b"{}"}, "TLOG_INVALID"),
        ({"tamper_payload": b"{}"}, "SIGNATURE_INVALID"),
        ({"identity": "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main-evil"}, "IDENTITY_MISMATCH"),
        ({"issuer_ext": "v2", "issuer": "https://evil.example"}, "IDENTITY_MISMATCH"),
    ],
)
def test_sigstore_python_refusals_map_to_reasons(test_sigstore: TestSigstore, knobs: dict, reason: str) -> None:
    if knobs.get("ca") == "rogue":
        knobs = {"ca": FulcioCA.create("rogue")}
    att = test_sigstore.attest(statement(), **knobs)
    with pytest.raises(VerificationError) as err:
        _verify(test_sigstore, att.bundle_json())
    assert err.value.reason == reason, err.value
