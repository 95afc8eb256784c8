"""``stella attest sign``: make and sign an in-toto attestation for an image (cosign ``attest``
semantics), printing the DSSE envelope; keylessly (``--identity-token``: Fulcio + Rekor through
sigstore-python, :mod:`stellaops.keyless_sign`) it prints a sigstore bundle instead. cosign
cannot attest the StellaOps predicate types (``stellaops.io/predicates/…`` is not an absolute URI
to Go's parser); this command can."""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from datetime import datetime, timezone
from typing import Any

import click

from .common import PREDICATE_TYPE, InputError, config_option, image_argument, load_cli_config, load_signing_key, verbose_option


@click.command()
@click.option("--predicate", "predicate_path", required=True, metavar="FILE", help="The predicate JSON file ('-' for stdin).")
@click.option(
    "--type",
    "ptype",
    type=PREDICATE_TYPE,
    default="custom",
    show_default=True,
    help="Predicate type URI, or one of cosign's aliases (custom, slsaprovenance, slsaprovenance1, spdxjson, cyclonedx, vuln, openvex, link).",
)
@image_argument("The image the attestation is about (tag or digest)")
@click.option("--digest", "digest", metavar="sha256:HEX", help="The image digest, to sign without asking the registry.")
@click.option("--key", "key_path", metavar="FILE", help="Private key: cosign.key (COSIGN_PASSWORD) or PKCS#8 PEM.")
@click.option("--bundle", "bundle_path", metavar="FILE", help="Also write a sigstore bundle (v0.3) of the attestation here.")
@click.option("--output-file", "output_file", metavar="FILE", help="Write the envelope (keyless: the bundle) here instead of stdout.")
@click.option("--statement-version", type=click.Choice(["v1", "v0.1"]), default="v1", show_default=True, help="in-toto Statement version.")
@click.option("--no-validate", is_flag=True, help="Do not validate StellaOps predicates against their JSON Schema.")
@click.option(
    "--identity-token", metavar="TOKEN",
    help="Keyless: an OIDC ID token (or a file holding it; default $SIGSTORE_ID_TOKEN) exchanged at Fulcio for a certificate.",
)
@click.option(
    "--fulcio-url", metavar="URL",
    help="Keyless: Fulcio (default: attestation.trustRoots.sigstore.fulcioUrl of a named config, never of an unnamed ./stellaops.yaml).",
)
@click.option(
    "--rekor-url", metavar="URL",
    help="Keyless: Rekor v1 (default: attestation.trustRoots.sigstore.rekorUrl of a named config, never of an unnamed ./stellaops.yaml).",
)
@click.option(
    "--trusted-root", "trusted_root", metavar="FILE",
    help="Keyless: sigstore trusted_root.json (default: the trustRoots of a named config).",
)
@click.option(
    "--timestamp-server-url", "timestamp_url", metavar="URL",
    help="An RFC 3161 timestamp authority (e.g. http://tsa/api/v1/timestamp); its token over the "
    "signature goes into the bundle's timestampVerificationData, as cosign does (with --key: needs --bundle).",
)
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
    fulcio_url: str | None,
    rekor_url: str | None,
    trusted_root: str | None,
    timestamp_url: str | None,
    config_path: str | None,
    verbose: bool,
) -> None:
    """Sign an in-toto attestation about IMAGE and print the DSSE envelope.

    With --identity-token (keyless, as cosign) the signing key is ephemeral: Fulcio certifies
    it for the token's identity, the envelope is entered in Rekor, and the output is a sigstore
    bundle (v0.3) holding certificate, envelope and Rekor entry. The token is never printed.
    Fulcio, Rekor and the trusted root come from the flags or a named configuration (--config,
    $STELLAOPS_CONFIG), never from a ./stellaops.yaml found only in the working directory: in CI
    that is the checkout, which could otherwise send the job's identity token to its own Fulcio.

    \b
    Examples:
      stella attest sign --predicate scan.json --type stellaops.io/predicates/scan-result@v1 \\
          --image registry.example.com/app:v1.0.0 --key cosign.key > scan.dsse.json
      stella attest attach --image registry.example.com/app:v1.0.0 --attestation scan.dsse.json
      stella attest sign --predicate scan.json --type https://example.com/scan/v1 \\
          --image registry.example.com/app:v1.0.0 --identity-token "$(cat id-token)" \\
          --fulcio-url https://fulcio.example.com --rekor-url https://rekor.example.com > scan.sigstore.json
    """
    from ..dsse import STATEMENT_V01, STATEMENT_V1, Envelope, PAYLOAD_TYPE_INTOTO, Signature, make_statement, pae
    from ..errors import StellaError
    from ..predicates import resolve_predicate_type, validate_predicate
    from ..reference import parse_reference
    from ..verify import keys

    keyless = _keyless_wanted(key_path, identity_token, statement_version)
    if timestamp_url and not keyless and not bundle_path:  # keyless output is a bundle anyway
        raise click.UsageError(
            "--timestamp-server-url needs --key and --bundle FILE: the token is stored in the bundle "
            "(timestampVerificationData); `stella attest attach` takes the bundle"
        )
    ref = parse_reference(image)
    if digest is None:
        digest = ref.digest
    config = None  # loaded once, when needed (the note on an unnamed ./stellaops.yaml is printed once)
    if digest is None or keyless:
        config = load_cli_config(config_path)
    if digest is None:
        from ..clients import make_registry_client

        digest = make_registry_client(config, for_cli=True).resolve(ref).digest
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
        except (ValueError, RecursionError) as exc:
            raise InputError(
                f"{predicate_path}: the predicate is not JSON: {exc}", reason="PREDICATE_INVALID",
                hint="give the predicate as a JSON file, or --type custom to wrap any text as cosign does",
            ) from exc
        if not no_validate:
            try:
                validate_predicate(predicate_type, predicate)
            except StellaError as exc:  # not valid against its schema: bad input, exit 2
                raise InputError(f"{predicate_path}: {exc.detail}", reason=exc.reason, hint=exc.hint) from exc
    statement = make_statement(
        ref.name, digest, predicate_type, predicate, statement_type=STATEMENT_V1 if statement_version == "v1" else STATEMENT_V01
    )
    if keyless:
        from ..keyless_sign import sign_from_cli

        out = sign_from_cli(
            statement, token_arg=identity_token, fulcio_url=fulcio_url, rekor_url=rekor_url,
            trusted_root_path=trusted_root, config=config,
            timestamp_urls=(timestamp_url,) if timestamp_url else (),
        )
        for path in (output_file, bundle_path):
            if path:
                with open(path, "wb") as fh:
                    fh.write(out + b"\n")
        if not output_file:
            click.echo(out.decode())
        return
    assert key_path is not None  # _keyless_wanted refuses neither
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
        material: dict[str, Any] = {"publicKey": {"hint": hint}}
        if timestamp_url:
            material["timestampVerificationData"] = {"rfc3161Timestamps": [{"signedTimestamp": _timestamp(timestamp_url, sig)}]}
        bundle = {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": material,
            "dsseEnvelope": envelope.to_json(),
        }
        with open(bundle_path, "w", encoding="utf-8") as fh:
            json.dump(bundle, fh, separators=(",", ":"))
            fh.write("\n")


def _keyless_wanted(key_path: str | None, identity_token: str | None, statement_version: str) -> bool:
    """--key signs with a key; --identity-token (or $SIGSTORE_ID_TOKEN without --key) keylessly."""
    import os

    from ..keyless_sign import TOKEN_ENV

    if key_path and identity_token:
        raise click.UsageError("give either --key or --identity-token, not both")
    if key_path:
        return False
    if not identity_token and not os.environ.get(TOKEN_ENV):
        raise click.UsageError(f"give --key FILE, or --identity-token TOKEN (or ${TOKEN_ENV}) for keyless signing")
    if statement_version != "v1":
        raise click.UsageError("keyless signing makes in-toto Statement v1 only (sigstore-python signs no v0.1 statement)")
    return True


def _timestamp(url: str, signature: bytes) -> str:
    """An RFC 3161 token over the raw signature bytes (what sigstore-go and cosign v3 timestamp),
    from the TSA at ``url``; checked to be granted and to cover the signature. Base64 of the DER
    TimeStampResp, as a bundle's ``signedTimestamp``."""
    import requests
    from rfc3161_client import (
        HashAlgorithm,
        PKIStatus,
        TimestampRequestBuilder,
        decode_timestamp_response,
    )

    from ..errors import StellaError
    from ..verify.timestamp import TimestampInvalid

    request = TimestampRequestBuilder().data(signature).hash_algorithm(HashAlgorithm.SHA256).cert_request(cert_request=True).build()
    try:
        resp = requests.post(url, data=request.as_bytes(), headers={"Content-Type": "application/timestamp-query"}, timeout=30)
    except requests.RequestException as exc:
        raise StellaError(f"the timestamp authority {url} could not be reached: {exc}", reason="REQUEST_INVALID", hint="check --timestamp-server-url") from exc
    if resp.status_code not in (200, 201):
        raise TimestampInvalid(f"the timestamp authority {url} answered HTTP {resp.status_code}: {resp.text[:200]}")
    try:
        token = decode_timestamp_response(resp.content)
        granted = token.status == PKIStatus.GRANTED and token.tst_info.message_imprint.message == hashlib.sha256(signature).digest()
    except Exception as exc:  # noqa: BLE001 - the decoder raises several types
        raise TimestampInvalid(f"the timestamp authority {url} did not answer with an RFC 3161 TimeStampResp: {exc}") from exc
    if not granted:
        raise TimestampInvalid(f"the timestamp authority {url} refused the request or timestamped other data")
    return base64.b64encode(resp.content).decode()


def _read(path: str) -> str:
    from ..errors import StellaError

    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise StellaError(f"cannot read predicate file {path!r}: {exc}", reason="REQUEST_INVALID") from exc
