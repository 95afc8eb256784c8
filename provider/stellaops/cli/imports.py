"""``stella attest import``: store what ``cosign download attestation`` printed.

Writes into the configured store (``store.dsn``), the one the provider reads, so an imported
attestation is found at admission with ``source: imported`` and verified there like any other.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from .common import Progress, config_option, emit_json, load_cli_config, image_argument, output_option, progress_option, progress_wanted, verbose_option

DEFAULT_TENANT = "default"


@click.command("import")
@click.option(
    "--envelope", "envelope_path", required=True, metavar="FILE",
    help="What `cosign download attestation` printed: DSSE envelopes and/or sigstore bundles, one JSON per line ('-' for stdin).",
)  # fmt: skip
@image_argument(
    "The image the attestations are about: each statement must name its digest. Without it, each is stored under its own subjects",
    required=False,
)
@click.option("--digest", "digest", metavar="sha256:HEX", help="The image digest, to check subjects without asking the registry.")
@click.option(
    "--tenant", "tenant", default=DEFAULT_TENANT, show_default=True, metavar="T",
    help="Tenant to record (the API takes it from the token; the CLI writes the store directly).",
)  # fmt: skip
@config_option
@output_option
@progress_option
@verbose_option
def import_(
    envelope_path: str,
    image: str | None,
    digest: str | None,
    tenant: str,
    config_path: str | None,
    output: str,
    progress: bool | None,
    verbose: bool,
) -> None:
    """Import attestations downloaded with cosign into the StellaOps store.

    Signatures are not checked here: the provider verifies imported attestations at
    admission exactly like those found in a registry. Every document must still be a
    well-formed in-toto DSSE envelope (or a sigstore bundle holding one), and with --image
    its statement must name the image's digest. Importing the same envelope again is a no-op.

    Exit codes: 0 all imported or already present; 1 some document was refused
    (or the file holds none); 2 the file is not JSON or a usage/configuration error;
    3 the store or registry is unavailable.

    \b
    Examples:
      cosign download attestation registry.example.com/app:v1.0.0 > attestation.json
      stella attest import --envelope attestation.json --image registry.example.com/app:v1.0.0
      stella attest import --envelope attestation.json --digest sha256:… --output json
    """
    from ..errors import RequestError
    from ..importer import ImportReport, import_items, resolve_image
    from ..importapi import ANNOTATION_SOURCE
    from ..store import check_tenant, open_store

    check_tenant(tenant)
    show = progress_wanted(progress)
    data = _read(envelope_path)
    config = load_cli_config(config_path)
    items = _parse(data, envelope_path)

    def client() -> Any:
        from ..clients import make_registry_client

        return make_registry_client(config, for_cli=True)

    image, image_digest = resolve_image(image, digest, client)
    store = open_store(config.store.dsn, rows_per_tenant_digest=config.limits.store_rows_per_tenant_digest)
    report = ImportReport(tenant=tenant, image=image, digest=image_digest)
    try:
        # one item at a time (import_items is one transaction per item anyway) to count progress
        with Progress("importing", len(items), enabled=show) as bar:
            for item in items:
                one = import_items(store, tenant, [item], image=image, image_digest=image_digest, annotations={ANNOTATION_SOURCE: "cli"})
                report.results.extend(one.results)
                bar.advance(f"line {item.line}: {one.results[0]['status']}")
    finally:
        store.close()
    if output == "json":
        emit_json(report.to_json())
    else:
        _print_text(report, envelope_path)
    if report.errors:
        if output == "json":
            sys.exit(1)
        raise RequestError(
            f"{report.errors} of {len(report.results)} attestation(s) were not imported",
            reason=_first_reason(report),
            hint="see the lines above; fix or drop those documents and import again (already stored ones are kept)",
        )


def _parse(data: bytes, source: str) -> list[Any]:
    """The documents of the input; a syntax error names every bad line (``FILE:LINE: not
    JSON: …``) on stderr before the one-line error (exit 2)."""
    from ..errors import RequestError
    from ..importer import ImportSyntaxError, parse_cosign_download

    try:
        return parse_cosign_download(data)
    except ImportSyntaxError as exc:
        name = "<stdin>" if source == "-" else source
        for problem in exc.problems:
            click.echo(f"{name}:{problem['line']}: not JSON: {problem['message']}", err=True)
        if exc.reason == "REQUEST_INVALID" and exc.problems:
            raise RequestError(
                exc.detail,
                hint="give what `cosign download attestation` or `gh attestation download` wrote: one JSON document "
                "(DSSE envelope or sigstore bundle) per line",
            ) from exc
        raise


def _first_reason(report: Any) -> str:
    for r in report.results:
        if r["status"] == "error":
            return str(r["error"]["reason"])
    return "REQUEST_INVALID"  # pragma: no cover


def _read(path: str) -> bytes:
    from ..errors import RequestError

    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise RequestError(f"cannot read {path!r}: {exc.strerror}", hint="pass the file `cosign download attestation` wrote") from exc


def _print_text(report: Any, source: str) -> None:
    for r in report.results:
        where = f"{source}:{r['line']}"
        if r["status"] == "error":
            click.echo(f"{where}: error: {r['error']['reason']}: {r['error']['message']}", err=True)
            continue
        subjects = ", ".join(r.get("subjects", []))
        click.echo(f"{where}: {r['status']} {r['kind']} {r['predicateType']} for {subjects} (id {r['id']})")
    click.echo(
        f"{report.imported} imported, {report.duplicates} already present, {report.errors} refused"
        f" (tenant {report.tenant})",
        err=True,
    )
