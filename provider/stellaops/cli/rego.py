"""``stella rego path``: where this installation keeps the Rego library, the OPA bundles and
the Gatekeeper templates (shipped in the wheel, :mod:`stellaops.bundled`); ``stella rego input``:
manifest files as one JSON ``kind: List`` for ``opa eval --input`` (:mod:`.rego_input`)."""

from __future__ import annotations

import click

from ..bundled import LOCATIONS


@click.group()
def rego() -> None:
    """The Rego library, OPA bundles and Gatekeeper templates shipped with stella."""


@rego.command("path")
@click.argument("what", type=click.Choice(sorted(LOCATIONS)), default="pipeline", required=False)
def path(what: str) -> None:
    """Print the installed path of WHAT (default: pipeline, the OPA bundle for `opa eval`).

    \b
    pipeline      OPA bundle: the library, the http transport and every policy
    seed          OPA bundle: the seed guide's Rego v0 snippet (load it with pipeline)
    library       the library's source (package lib.stellaops)
    transport     the Gatekeeper and http transports
    policies      each policy's constraint.tmpl, src.rego, suite.yaml and samples
    templates     the generated Gatekeeper ConstraintTemplates, samples and provider manifests
    capabilities  opa capabilities.json (opa v1.17.1 + Gatekeeper's external_data)

    \b
    Examples:
      stella rego input deployment.yaml > input.json
      opa eval --fail-defined --format raw --bundle "$(stella rego path pipeline)" \\
        --data constraint.yaml --input input.json \\
        'data.stellaopsscanthresholds.violation[_].msg with input as {"review": {"object": input}, "parameters": data.spec.parameters}'
      kubectl apply -f "$(stella rego path templates)/requiresbom/template.yaml"
    """
    from ..bundled import shared_path

    click.echo(str(shared_path(what)))


@rego.command("input")
@click.argument("files", nargs=-1, metavar="FILE...")
def input_(files: tuple[str, ...]) -> None:
    """Print every document of every FILE (YAML or JSON; - for standard input) as one JSON
    `kind: List`, for `opa eval --input`.

    `opa eval --input file.yaml` reads only the FIRST document of a YAML file: a gate run on a
    multi-document file judges one object and passes the rest. Convert first:

    \b
      stella rego input manifests/*.yaml > input.json
      opa eval --fail-defined --format raw --bundle "$(stella rego path pipeline)" \\
        --data constraint.yaml --input input.json \\
        'data.stellaopsscanthresholds.violation[_].msg with input as {"review": {"object": input}, "parameters": data.spec.parameters}'

    Exits 2, printing nothing, on input it cannot convert unchanged: no documents, a document
    that is not an object, a duplicate key, invalid YAML, values JSON cannot hold.
    """
    from .rego_input import manifest_list_json

    click.echo(manifest_list_json(files))
