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

# Set while the command line is parsed (``-v``/``--verbose``, ``-d``/``--debug`` however they
# are typed: see common.verbose_option); read when an error is reported.
FLAGS: dict[str, bool] = {}


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
    "version": "stellaops.cli.version:version",
    "completion": "stellaops.cli.version:completion",
    "rego": "stellaops.cli.rego:rego",
}


def _group_flags(func: Any) -> Any:
    """``-v``/``-d`` before the command too (``stella -d attest oci-list IMAGE``, as cosign's
    persistent ``-d``); the commands take them as well (common.verbose_option)."""

    def on_verbose(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if value:
            FLAGS["verbose"] = True

    def on_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if value:
            from .common import _set_debug

            _set_debug(ctx, param, value)

    func = click.option("--debug", "-d", is_flag=True, expose_value=False, is_eager=True, callback=on_debug,
                        help="Trace every HTTP request on stderr (method, URL, status); implies --verbose.")(func)
    return click.option("--verbose", "-v", is_flag=True, expose_value=False, is_eager=True, callback=on_verbose,
                        help="Show tracebacks on errors.")(func)


@click.group(cls=_LazyGroup, lazy=ATTEST_COMMANDS)
@_group_flags
def attest() -> None:
    """Sign, attach, import, list and verify attestations (cosign-compatible)."""


@click.group(cls=_LazyGroup, lazy={k: v for k, v in TOP_COMMANDS.items() if k != "attest"})
@click.version_option(package_name="stellaops-attest", prog_name="stella")
@_group_flags
def cli() -> None:
    """StellaOps Attest: verify signed supply-chain attestations for Gatekeeper and CI.

    Configuration comes from --config FILE, else $STELLAOPS_CONFIG, else ./stellaops.yaml,
    else built-in defaults. A ./stellaops.yaml found only in the working directory (in CI, the
    checkout) is not read by `attest verify` and `verify-blob-attestation`; `attest sign`,
    `attach`, `import`, `oci-list` and `download` read it without its attestation section (trust,
    Fulcio/Rekor), registries.insecure, registries.allowPrivate, registries.auth and a non-sqlite
    store.dsn (a note on stderr names what was left out). Name it (--config ./stellaops.yaml)
    to use it whole.
    """


cli.add_command(attest)


def _reset_flags() -> None:
    FLAGS.clear()
    trace = sys.modules.get("stellaops.cli.trace")
    if trace is not None:  # a previous in-process run (tests) turned the trace on
        trace.disable_http_trace()


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI, mapping errors to one line and an exit code."""
    _reset_flags()
    try:
        _run(argv)
    finally:  # in-process callers (tests) get a clean state: no verbose flag, no HTTP trace
        _reset_flags()


def _run(argv: list[str] | None) -> None:
    from ..errors import StellaError

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
        if FLAGS.get("verbose"):
            import traceback

            traceback.print_exc()
        sys.exit(exit_code_for(exc))
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - a bug: one line and exit 4, the traceback with -v
        click.echo(f"Error: INTERNAL_ERROR: {exc.__class__.__name__}: {exc}", err=True)
        click.echo("Hint: this is a bug in stella; please report it with the output of the same command with --verbose", err=True)
        if FLAGS.get("verbose"):
            import traceback

            traceback.print_exc()
        sys.exit(EXIT_INTERNAL)
    sys.exit(rc if isinstance(rc, int) else EXIT_OK)


def exit_code_for(exc: Exception) -> int:
    from ..errors import StellaError

    if not isinstance(exc, StellaError):
        return EXIT_INTERNAL
    fixed = getattr(exc, "exit_code", None)  # e.g. common.InputError: bad input is a usage error
    if isinstance(fixed, int):
        return fixed
    if exc.transient:
        return EXIT_TRANSIENT
    if exc.reason in ("CONFIG_INVALID", "KEY_INVALID", "INVALID_REFERENCE", "REQUEST_INVALID"):
        return EXIT_USAGE
    return EXIT_FAILED
