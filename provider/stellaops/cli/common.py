"""Helpers shared by the ``stella`` commands (kept import-light)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from ..errors import KeyLoadError, StellaError

config_option = click.option(
    "--config",
    "config_path",
    metavar="FILE",
    help="stellaops.yaml (default: $STELLAOPS_CONFIG, then ./stellaops.yaml without its attestation section, "
    "registries.insecure/allowPrivate/auth and a network store.dsn: name it to use those).",
)
# the verify commands: their exit code is a security gate, so no ./stellaops.yaml fallback (T-A12)
named_config_option = click.option(
    "--config",
    "config_path",
    metavar="FILE",
    help="stellaops.yaml to read (default: $STELLAOPS_CONFIG; ./stellaops.yaml is read only when named, e.g. --config ./stellaops.yaml).",
)

NOT_READ_NOTE = (
    "Note: ./stellaops.yaml was not read: verify reads a configuration only when it is named "
    "(--config ./stellaops.yaml or $STELLAOPS_CONFIG), so a file in the working directory cannot change what is trusted"
)


def load_named_config(config_path: str | None) -> Any:
    """The configuration of a verify command: the file named by ``--config`` or
    ``$STELLAOPS_CONFIG``, else the built-in defaults — never ``./stellaops.yaml`` found only in
    the working directory (in CI that is the checkout, which whoever controls the repository
    writes). When such a file is there, one line on stderr says it was not read and how to use it."""
    from ..config import load_config, unnamed_working_directory_config

    if unnamed_working_directory_config(config_path) is not None:
        click.echo(NOT_READ_NOTE, err=True)
    return load_config(config_path, named_only=True)


def ignored_note(ignored: tuple[str, ...]) -> str:
    """The one line saying which keys of an unnamed ``./stellaops.yaml`` were not used (T-A13)."""
    return (
        f"Note: ./stellaops.yaml is not named (--config ./stellaops.yaml or $STELLAOPS_CONFIG), so {', '.join(ignored)} "
        "in it were not used: a file found only in the working directory cannot change trust, signing endpoints, "
        "transport security or credentials"
    )


def load_cli_config(config_path: str | None) -> Any:
    """The configuration of ``sign``, ``attach``, ``import``, ``oci-list`` and ``download``:
    ``--config``, else ``$STELLAOPS_CONFIG``, else ``./stellaops.yaml`` without the keys of
    :data:`stellaops.config.UNNAMED_IGNORED` (trust and Sigstore endpoints, plain HTTP, private
    addresses, credentials, a network store), else the defaults. When the file set any of those,
    one line on stderr names them and how to use them (name the file)."""
    from ..config import load_config

    config = load_config(config_path, unnamed_limits=True)
    if config.ignored:
        click.echo(ignored_note(config.ignored), err=True)
    return config
output_option = click.option(
    "--output", "-o", "output", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Output format."
)


def _set_verbose(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    """``-v``/``--verbose`` however typed (``-v``, ``--verbose``, ``-vo json``): ``main`` reads
    the flag to add the traceback to an error."""
    if value:
        from . import FLAGS

        FLAGS["verbose"] = True
    return value


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        from . import FLAGS

        FLAGS["verbose"] = True
        if not FLAGS.get("debug"):
            FLAGS["debug"] = True
            from .trace import enable_http_trace

            enable_http_trace()


def verbose_option(func: Any) -> Any:
    """``-v/--verbose`` (tracebacks on errors) and ``-d/--debug`` (cosign's ``-d``: a trace of
    every HTTP request on stderr, method, URL and status, never a header or a credential)."""
    func = click.option(
        "--debug", "-d", is_flag=True, expose_value=False, is_eager=True, callback=_set_debug,
        help="Trace every registry (and other HTTP) request on stderr: method, URL, status; implies --verbose.",
    )(func)
    return click.option(
        "--verbose", "-v", is_flag=True, is_eager=True, callback=_set_verbose, help="Show details (tracebacks) on errors."
    )(func)


def image_argument(help_text: str, *, required: bool = True) -> Any:
    """The image as a positional argument (as ``cosign`` and ``stella attest verify`` take it)
    or as ``--image REF`` (kept working); the command receives it as ``image``. Giving both with
    different values, or neither when required, is a usage error."""

    def decorate(func: Any) -> Any:
        import functools

        @functools.wraps(func)
        def wrapper(*args: Any, image_pos: str | None = None, image_opt: str | None = None, **kwargs: Any) -> Any:
            if image_pos is not None and image_opt is not None and image_pos != image_opt:
                raise click.UsageError(f"the image is given twice, as {image_pos!r} and --image {image_opt!r}: give it once")
            image = image_pos if image_pos is not None else image_opt
            if image is not None and not image.strip():
                raise click.UsageError("the image reference is empty")
            if image is None and required:
                raise click.UsageError("Missing argument 'IMAGE' (the image reference, e.g. registry.example.com/app:v1; --image REF works too).")
            return func(*args, image=image, **kwargs)

        wrapper = click.option("--image", "image_opt", metavar="REF", help=f"{help_text} (the same as the IMAGE argument).")(wrapper)
        return click.argument("image_pos", metavar="IMAGE" if required else "[IMAGE]", required=False)(wrapper)

    return decorate


class PredicateTypeParam(click.ParamType):
    """A predicate type as typed: a cosign alias or a URI. Empty is a usage error (cosign
    would silently take its default; an empty type never matches anything)."""

    name = "TYPE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if not text.strip():
            self.fail("the predicate type is empty: give a URI or one of cosign's aliases (custom, slsaprovenance, "
                      "slsaprovenance1, spdxjson, cyclonedx, vuln, openvex, link)", param, ctx)
        if text != text.strip():
            self.fail(f"{text!r} has leading or trailing spaces", param, ctx)
        return text


PREDICATE_TYPE = PredicateTypeParam()


class InputError(StellaError):
    """The user's input file is unusable (not JSON, not valid against its schema): a usage
    error, exit 2, keeping the specific reason code (``PREDICATE_INVALID`` …)."""

    exit_code = 2


def read_password(prompt: str = "Enter password for private key") -> bytes:
    """COSIGN_PASSWORD (empty allowed), else a prompt on a terminal, as cosign does."""
    if "COSIGN_PASSWORD" in os.environ:
        return os.environ["COSIGN_PASSWORD"].encode()
    if sys.stdin.isatty():
        return click.prompt(prompt, hide_input=True, default="", show_default=False).encode()
    raise KeyLoadError(
        "the private key is encrypted and no password was given",
        hint="set COSIGN_PASSWORD (it may be empty) or run on a terminal to be prompted",
    )


def load_signing_key(path: str) -> Any:
    from ..verify import keys

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise KeyLoadError(f"cannot read key file {path!r}: {exc.strerror}") from exc
    password = read_password() if b"ENCRYPTED" in data else None
    try:
        return keys.load_private_key(data, password)
    except KeyLoadError as exc:
        raise KeyLoadError(f"{path}: {exc.detail}", hint=exc.hint) from exc


def emit_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, sort_keys=False))


# --------------------------------------------------------------------------- progress
# Progress goes to stderr only (stdout carries --output json and `download`'s documents). By
# default it is drawn only when stderr is a terminal; --progress/--no-progress or STELLA_PROGRESS
# force it either way. Hand-written (not click.progressbar) because click's bar prints only its
# label when stderr is not a terminal, and a forced bar in a CI log must show counts.

PROGRESS_ENV = "STELLA_PROGRESS"
_ON = ("1", "true", "yes", "on", "always")
_OFF = ("0", "false", "no", "off", "never")

progress_option = click.option(
    "--progress/--no-progress",
    "progress",
    default=None,
    help=f"Show progress on stderr (default: only when stderr is a terminal; ${PROGRESS_ENV}=1|0|auto sets the default).",
)


def progress_wanted(flag: bool | None) -> bool:
    """The flag if given, else ``$STELLA_PROGRESS``, else whether stderr is a terminal."""
    if flag is not None:
        return flag
    raw = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if raw in _ON:
        return True
    if raw in _OFF:
        return False
    if raw not in ("", "auto"):
        raise click.UsageError(f"{PROGRESS_ENV}={raw!r} is not one of 1, 0, auto")
    return _stderr().isatty()


def _stderr() -> Any:
    return sys.stderr


class Progress:
    """A counted operation, drawn on stderr: redrawn in place on a terminal (at most 10 times a
    second, the last state left on screen), else one line per second at most plus the last one.
    Disabled, it does nothing."""

    def __init__(self, label: str, total: int, *, enabled: bool) -> None:
        self.label, self.total, self.enabled = label, total, enabled
        self.done = 0
        self._stream = _stderr() if enabled else None
        self._tty = bool(self._stream is not None and self._stream.isatty())
        self._last = 0.0
        self._drawn = False

    def __enter__(self) -> Progress:
        if self.enabled and self._tty:
            self._draw("")
        return self

    def advance(self, note: str = "") -> None:
        self.done += 1
        if not self.enabled:
            return
        import time

        now = time.monotonic()
        if self.done >= self.total or now - self._last >= (0.1 if self._tty else 1.0):
            self._last = now
            self._draw(note)

    def _draw(self, note: str) -> None:
        assert self._stream is not None
        count = f"{self.done}/{self.total}"
        if not self._tty:
            self._stream.write(f"{self.label}: {count}{' ' + note if note else ''}\n")
            self._stream.flush()
            return
        import shutil

        width = shutil.get_terminal_size((80, 24)).columns
        filled = (20 * self.done) // self.total if self.total else 20
        line = f"{self.label} [{'#' * filled}{'.' * (20 - filled)}] {count} {note}"
        self._stream.write("\r\x1b[K" + line[: max(width - 1, 10)])
        self._stream.flush()
        self._drawn = True

    def __exit__(self, *exc: object) -> None:
        if self._stream is not None and self._tty and self._drawn:
            self._stream.write("\n")  # the last state stays on screen
            self._stream.flush()
