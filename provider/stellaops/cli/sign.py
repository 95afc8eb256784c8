"""``stella attest sign``: make and sign an in-toto attestation for an image (cosign ``attest``
semantics), printing the DSSE envelope. cosign cannot attest the StellaOps predicate types
(``stellaops.io/predicates/…`` is not an absolute URI to Go's parser); this command can."""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from datetime import datetime, timezone
from typing import Any

import click

from .common import config_option, load_signing_key, verbose_option


@click.command()
@click.option("--predicate", "predicate_path", required=True, metavar="FILE", help="The predicate JSON file ('-' for stdin).")
@click.option(
    "--type",
    "ptype",
    default="custom",
    show_default=True,
    help="Predicate type URI, or one of cosign's aliases (custom, slsaprovenance, slsaprovenance1, spdxjson, cyclonedx, vuln, openvex, link).",
)
@click.option("--image", "image", required=True, metavar="REF", help="The image the attestation is about (tag or digest).")
@click.option("--digest", "digest", metavar="sha256:HEX", help="The image digest, to sign without asking the registry.")
@click.option("--key", "key_path", required=True, metavar="FILE", help="Private key: cosign.key (COSIGN_PASSWORD) or PKCS#8 PEM.")
@click.option("--bundle", "bundle_path", metavar="FILE", help="Also write a sigstore bundle (v0.3) of the attestation here.")
@click.option("--output-file", "output_file", metavar="FILE", help="Write the envelope here instead of stdout.")
@click.option("--statement-version", type=click.Choice(["v1", "v0.1"]), default="v1", show_default=True, help="in-toto Statement version.")
@click.option("--no-validate", is_flag=True, help="Do not validate StellaOps predicates against their JSON Schema.")
@click.option("--identity-token", metavar="TOKEN", help="Keyless signing (not available in this release: use --key).")
@config_option
@verbose_option
def sign(
    predicate_path: str,
    ptype: str,
    image: str,
    digest: str | None,
    key_path: str,
    bundle_path: str | None,
    output_file: str | None,
    statement_version: str,
    no_validate: bool,
    identity_token: str | None,
    config_path: str | None,
    verbose: bool,
) -> None:
    """Sign an in-toto attestation about IMAGE and print the DSSE envelope.

    \b
    Examples:
      stella attest sign --predicate scan.json --type stellaops.io/predicates/scan-result@v1 \\
          --image registry.example.com/app:v1.0.0 --key cosign.key > scan.dsse.json
      stella attest attach --image registry.example.com/app:v1.0.0 --attestation scan.dsse.json
    """
    from ..dsse import STATEMENT_V01, STATEMENT_V1, Envelope, PAYLOAD_TYPE_INTOTO, Signature, make_statement, pae
    from ..errors import StellaError
    from ..predicates import resolve_predicate_type, validate_predicate
    from ..reference import parse_reference
    from ..verify import keys

    if identity_token:
        raise StellaError(
            "keyless signing (--identity-token) is not available in this release",
            reason="REQUEST_INVALID",
            hint="sign with --key; keyless attestations made by cosign are verified normally",
        )
    ref = parse_reference(image)
    if digest is None:
        digest = ref.digest
    if digest is None:
        from ..config import load_config
        from ..clients import make_registry_client

        digest = make_registry_client(load_config(config_path), for_cli=True).resolve(ref).digest
    if ref.digest and digest != ref.digest:
        raise StellaError(f"--digest {digest} disagrees with the image reference's digest {ref.digest}", reason="REQUEST_INVALID")
    predicate_type = resolve_predicate_type(ptype)
    raw = sys.stdin.read() if predicate_path == "-" else _read(predicate_path)
    if ptype == "custom":
        # cosign's `custom` type wraps the file's text (cosign attest --type custom)
        predicate: Any = {"Data": raw, "Timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    else:
        try:
            predicate = json.loads(raw)
        except ValueError as exc:
            raise StellaError(f"{predicate_path}: the predicate is not JSON: {exc}", reason="PREDICATE_INVALID") from exc
        if not no_validate:
            validate_predicate(predicate_type, predicate)
    statement = make_statement(
        ref.name, digest, predicate_type, predicate, statement_type=STATEMENT_V1 if statement_version == "v1" else STATEMENT_V01
    )
    private_key = load_signing_key(key_path)
    sig = keys.sign(private_key, pae(PAYLOAD_TYPE_INTOTO, statement))
    envelope = Envelope(payload_type=PAYLOAD_TYPE_INTOTO, payload=statement, signatures=(Signature(sig=sig),))
    out = envelope.to_bytes()
    if output_file:
        with open(output_file, "wb") as fh:
            fh.write(out + b"\n")
    else:
        click.echo(out.decode())
    if bundle_path:
        public = private_key.public_key()
        hint = base64.b64encode(hashlib.sha256(keys.public_key_der(public)).digest()).decode()
        bundle = {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"publicKey": {"hint": hint}},
            "dsseEnvelope": envelope.to_json(),
        }
        with open(bundle_path, "w", encoding="utf-8") as fh:
            json.dump(bundle, fh, separators=(",", ":"))
            fh.write("\n")


def _read(path: str) -> str:
    from ..errors import StellaError

    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise StellaError(f"cannot read predicate file {path!r}: {exc}", reason="REQUEST_INVALID") from exc
