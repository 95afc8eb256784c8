"""Verification: keys, keyless Fulcio identities, Rekor entries, trust roots, and the whole
check of one attestation (:func:`stellaops.verify.attestation.verify_candidate`).

Submodules are imported explicitly (``from stellaops.verify import keys``) so that the key-only
path never imports sigstore-python.
"""
