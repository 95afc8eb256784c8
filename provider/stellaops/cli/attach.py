"""``stella attest attach``: push a signed attestation to the image's registry in the forms
cosign, Kyverno and StellaOps read (``docs/discovery.md``, DESIGN.md §4)."""

from __future__ import annotations

import click

from .common import config_option, image_argument, output_option, progress_option, verbose_option


def _parse_annotations(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="--annotation")
        if key in out:
            raise click.BadParameter(f"annotation {key!r} is given more than once", param_hint="--annotation")
        out[key] = value
    return out


@click.command()
@image_argument("The image to attach to (tag or digest)")
@click.option(
    "--attestation", "attestation", required=True, metavar="FILE",
    help="A signed DSSE envelope or sigstore bundle JSON ('-' for stdin); a file of several, one per line, attaches each.",
)
@click.option("--annotation", "annotations", multiple=True, metavar="KEY=VALUE", help="Extra annotation (repeatable).")
@click.option("--tenant", metavar="T", help="Tenant recorded as dev.stellaops/tenant.")
@click.option("--scan-id", "scan_id", metavar="ID", help="Scan id recorded as dev.stellaops/scan-id.")
@click.option(
    "--format", "formats", default="bundle,legacy", show_default=True, metavar="LIST",
    help="Comma-separated: bundle (sigstore bundle referrer, cosign v3), legacy (cosign .att tag: cosign v2, "
    "Kyverno), dsse (plain DSSE referrer).",
)
@click.option("--created", metavar="RFC3339", help="org.opencontainers.image.created (default: now).")
@output_option
@config_option
@progress_option
@verbose_option
def attach(
    image: str,
    attestation: str,
    annotations: tuple[str, ...],
    tenant: str | None,
    scan_id: str | None,
    formats: str,
    created: str | None,
    output: str,
    config_path: str | None,
    progress: bool | None,
    verbose: bool,
) -> None:
    """Attach a signed attestation to IMAGE.

    The file is checked first (DSSE shape, in-toto payload, the statement's subject must be the
    image's digest); nothing is pushed if a check fails. By default it is written both as a
    sigstore bundle referrer (what cosign v3 reads) and as a layer on cosign's legacy
    sha256-<digest>.att tag (what cosign v2 and Kyverno read). Registries without the OCI 1.1
    referrers API get the sha256-<digest> referrers index tag instead.

    \b
    Examples:
      stella attest attach \\
        --image registry.example.com/app:v1.0.0 \\
        --attestation scan.json \\
        --annotation "org.example/team=security" \\
        --annotation "org.example/policy-version=2.0"
      stella attest attach registry.example.com/app:v1.0.0 --attestation scan.json \\
        --tenant acme --scan-id scan-42 --format bundle,legacy,dsse --output json
      cosign verify-attestation --key cosign.pub --insecure-ignore-tlog \\
        --type stellaops.io/predicates/scan-result@v1 registry.example.com/app:v1.0.0
    """
    from ..attach import attach as do_attach
    from ..attach import split_documents
    from ..errors import StellaError
    from ..reference import parse_reference
    from .common import InputError, Progress, emit_json, progress_wanted
    from .oci import make_cli_client

    ann = _parse_annotations(annotations)
    show = progress_wanted(progress)
    fmt_list = tuple(f.strip() for f in formats.split(",") if f.strip())
    try:
        with click.open_file(attestation, "rb") as fh:  # '-' is stdin
            data = fh.read()
    except OSError as exc:
        raise StellaError(f"cannot read --attestation {attestation!r}: {exc.strerror}", reason="REQUEST_INVALID") from exc
    ref = parse_reference(image)
    try:
        docs = split_documents(data)
    except StellaError as exc:  # not JSON (or not UTF-8): bad input, exit 2 as in sign and import
        raise InputError(f"--attestation {attestation!r}: {exc.detail}", reason=exc.reason, hint=exc.hint or
                         "pass the DSSE envelope or sigstore bundle JSON that `stella attest sign` or cosign wrote") from exc
    if not docs:
        raise StellaError(f"--attestation {attestation!r} holds no JSON document", reason="MALFORMED_ENVELOPE")
    results = []
    with make_cli_client(config_path) as client, Progress("attaching", len(docs), enabled=show and len(docs) > 1) as bar:
        for i, doc in enumerate(docs, 1):
            results.extend(
                do_attach(client, ref, doc, formats=fmt_list, annotations=ann, created=created, tenant=tenant, scan_id=scan_id)
            )
            bar.advance(f"document {i} ({', '.join(fmt_list)})")
    if output == "json":
        emit_json([r.to_json() for r in results])
        return
    for r in results:
        what = {"bundle": "sigstore bundle referrer", "legacy": "cosign .att layer", "dsse": "DSSE referrer"}[r.format]
        state = " (already there)" if r.unchanged else ""
        click.echo(f"{what}{state}: {r.location} (layer {r.layer_digest}, {r.predicate_type})")
        if r.fallback_tag:
            click.echo(f"  registry has no referrers API: updated the referrers tag {r.image.split('@')[0]}:{r.fallback_tag}")
    if len(docs) > 1:  # one summary line for a file of several (stderr: stdout lists each)
        unchanged = sum(1 for r in results if r.unchanged)
        click.echo(f"{len(docs)} attestations attached: {len(results) - unchanged} written, {unchanged} already there", err=True)
