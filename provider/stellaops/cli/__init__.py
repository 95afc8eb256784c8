"""The ``stella`` command line.

Start-up is kept lean: this module imports only click. Each command lives in its own module,
imported only when that command runs (``_LazyGroup``), so ``stella attest verify`` never pays
for Flask, gunicorn or sigstore unless it needs them. Commands raise :class:`StellaError`;
``main`` turns it into one clear line on stderr and an exit code (``docs/cli.md``):

- 0 success; 1 verification failed / nothing verified; 2 usage or configuration error;
- 3 registry or network failure (transient: retry); 4 internal error (a bug: report it).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TRANSIENT = 3
EXIT_INTERNAL = 4


class _LazyGroup(click.Group):
    """A click group whose commands are ``module:attr`` strings, imported on first use."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._lazy))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self._lazy:
            module_name, attr = self._lazy[name].split(":")
            module = importlib.import_module(module_name)
            return getattr(module, attr)
        return super().get_command(ctx, name)


# Command name -> "module:attribute". Each module owns its commands.
ATTEST_COMMANDS = {
    "sign": "stellaops.cli.sign:sign",
    "attach": "stellaops.cli.attach:attach",
    "import": "stellaops.cli.imports:import_",
    "oci-list": "stellaops.cli.oci:oci_list",
    "download": "stellaops.cli.oci:download",
    "verify": "stellaops.cli.verify:verify",
    "verify-blob-attestation": "stellaops.cli.verify:verify_blob_attestation",
}
TOP_COMMANDS = {
    "attest": "stellaops.cli:attest",
    "key": "stellaops.cli.key:key",
    "serve": "stellaops.cli.serve:serve",
    "config": "stellaops.cli.config:config",
}


@click.group(cls=_LazyGroup, lazy=ATTEST_COMMANDS)
def attest() -> None:
    """Sign, attach, import, list and verify attestations (cosign-compatible)."""


@click.group(cls=_LazyGroup, lazy={k: v for k, v in TOP_COMMANDS.items() if k != "attest"})
@click.version_option(package_name="stellaops-attest", prog_name="stella")
def cli() -> None:
    """StellaOps Attest: verify signed supply-chain attestations for Gatekeeper and CI.

    Configuration comes from --config FILE, else $STELLAOPS_CONFIG, else ./stellaops.yaml,
    else built-in defaults.
    """


cli.add_command(attest)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI, mapping errors to one line and an exit code."""
    from ..errors import StellaError

    verbose = "--verbose" in (argv if argv is not None else sys.argv[1:])
    try:
        rc = cli.main(args=argv, prog_name="stella", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except StellaError as exc:
        click.echo(f"Error: {exc}", err=True)
        if exc.hint:
            click.echo(f"Hint: {exc.hint}", err=True)
        if verbose:
            import traceback

            traceback.print_exc()
        sys.exit(exit_code_for(exc))
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else EXIT_OK)


def exit_code_for(exc: Exception) -> int:
    from ..errors import StellaError

    if not isinstance(exc, StellaError):
        return EXIT_INTERNAL
    if exc.transient:
        return EXIT_TRANSIENT
    if exc.reason in ("CONFIG_INVALID", "KEY_INVALID", "INVALID_REFERENCE", "REQUEST_INVALID"):
        return EXIT_USAGE
    return EXIT_FAILED
