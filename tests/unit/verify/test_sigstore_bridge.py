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


def test_sigstore_python_accepts_the_test_sigstore_bundle(test_sigstore: TestSigstore) -> None:
    sigstore_bridge.verify_bundle(test_sigstore.attest(statement()).bundle_json(), _root(test_sigstore))


@pytest.mark.parametrize(
    "knobs,reason",
    [
        ({"sct": "forged"}, "SCT_INVALID"),
        ({"ca": "rogue"}, "CERTIFICATE_INVALID"),
        ({"forge_set": True}, "TLOG_INVALID"),
        ({"entry_payload": b"{}"}, "TLOG_INVALID"),
        ({"tamper_payload": b"{}"}, "SIGNATURE_INVALID"),
    ],
)
def test_sigstore_python_refusals_map_to_reasons(test_sigstore: TestSigstore, knobs: dict, reason: str) -> None:
    if knobs.get("ca") == "rogue":
        knobs = {"ca": FulcioCA.create("rogue")}
    att = test_sigstore.attest(statement(), **knobs)
    with pytest.raises(VerificationError) as err:
        sigstore_bridge.verify_bundle(att.bundle_json(), _root(test_sigstore))
    assert err.value.reason == reason, err.value
