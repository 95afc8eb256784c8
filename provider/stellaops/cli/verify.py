"""``stella attest verify`` and ``stella attest verify-blob-attestation`` (cosign's flags).

Both build a :class:`TrustConfig` from the flags (``--key`` or the keyless identity flags, the
trust root, ``--insecure-ignore-tlog``) — or, with none of those flags, take the configured one,
from a configuration the operator named (``--config``/``$STELLAOPS_CONFIG``, never an unnamed
``./stellaops.yaml``: threat T-A12) —
and verify every attestation with :func:`stellaops.verify.attestation.verify_candidate`. Exit 0
only when at least one attestation of the wanted ``--type`` verifies (as cosign). Regexps match
the **whole** value (stricter than cosign, ``docs/verification.md``).

Only the key path is imported eagerly; sigstore-python is loaded only for keyless bundles.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import sys
from dataclasses import replace
from typing import Any

import click

from ..errors import ConfigError, KeyLoadError, RequestError, StellaError, VerificationError
from .common import PREDICATE_TYPE, load_named_config, named_config_option, output_option, progress_option, verbose_option

_HEX = re.compile(r"^[0-9a-f]+$")
_DIGEST_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}


def _trust_options(func: Any) -> Any:
    options = [
        click.option("--key", "key_path", metavar="FILE", help="Public key (PEM SPKI, e.g. cosign.pub) the attestation must be signed with."),
        click.option("--certificate-identity", "identity", metavar="ID", help="Keyless: the exact certificate identity (SAN email or URI)."),
        click.option("--certificate-identity-regexp", "identity_re", metavar="RE", help="Keyless: an RE2 regexp the whole identity must match."),
        click.option("--certificate-oidc-issuer", "issuer", metavar="URL", help="Keyless: the exact OIDC issuer."),
        click.option("--certificate-oidc-issuer-regexp", "issuer_re", metavar="RE", help="Keyless: an RE2 regexp the whole issuer must match."),
        click.option(
            "--type",
            "ptype",
            type=PREDICATE_TYPE,
            default="custom",
            show_default=True,
            help="Predicate type URI or cosign alias (custom, slsaprovenance, slsaprovenance1, spdxjson, cyclonedx, vuln, openvex, link).",
        ),
        click.option("--insecure-ignore-tlog", is_flag=True, help="Do not require a transparency log entry for key signers; a keyless signer then needs a verified RFC 3161 timestamp from a configured TSA instead (as cosign)."),
        click.option("--trusted-root", "trusted_root", metavar="FILE", help="A sigstore trusted_root.json (Fulcio, Rekor, CT log keys)."),
        click.option("--offline", is_flag=True, help="Never go online (no TUF, no Rekor lookups)."),
        click.option(
            "--rekor-url",
            metavar="URL",
            expose_value=False,
            callback=_remember_rekor_url,
            help="Look up in this Rekor the log entry of an attestation that carries none (as cosign); not with --offline.",
        ),
        click.option(
            "--tuf-mirror", "tuf_mirror", metavar="URL",
            help="Fetch Sigstore's trusted_root.json from this TUF repository (cosign initialize --mirror); needs --tuf-root.",
        ),
        click.option(
            "--tuf-root", "tuf_root", metavar="FILE",
            help="The TUF repository's trusted root.json, obtained out of band (cosign initialize --root).",
        ),
        click.option(
            "--timestamp-certificate-chain",
            "timestamp_chain",
            metavar="FILE",
            help="PEM chain (TSA certificate, intermediates, root) of an RFC 3161 timestamp authority: cosign's "
            "dev.sigstore.cosign/rfc3161timestamp annotations are then verified (as cosign).",
        ),
        output_option,
        named_config_option,
        verbose_option,
    ]
    for option in reversed(options):
        func = option(func)
    # cosign's GitHub/Fulcio pins and --insecure-ignore-sct/--use-signed-timestamps (cli/trust_flags.py),
    # handed to the commands as **gh_flags and merged into the trust build_trust made
    from .trust_flags import github_trust_options

    return github_trust_options(func)


def _with_trust_flags(trust: Any, gh_flags: dict[str, Any]) -> Any:
    from .trust_flags import apply_trust_flags, trust_flag_fragment

    return apply_trust_flags(trust, trust_flag_fragment(**gh_flags))


def type_hint(wanted: str, found: list[str], default: str) -> str:
    """The hint for a --type that matched none of the verified types ``found``. cosign's
    ``slsaprovenance`` is SLSA v0.2 (and we follow cosign): when only SLSA v1 provenance was
    found, say so and name ``slsaprovenance1`` (issue 21 item 7)."""
    from ..predicates import SLSA_V02, SLSA_V1

    if wanted == SLSA_V02 and SLSA_V1 in found:
        return (f"--type slsaprovenance is SLSA v0.2 ({SLSA_V02}), as in cosign; the attestation found is SLSA v1 "
                f"({SLSA_V1}): pass --type slsaprovenance1")
    return default


def _remember_rekor_url(ctx: click.Context, _param: Any, value: str | None) -> None:
    # kept in the context, so the commands' signatures stay as they are (read by build_trust)
    if value is not None:
        ctx.meta["stellaops.rekor_url"] = value


def _tlog_lookup(config: Any, *, offline: bool) -> Any:
    """The online Rekor lookup: ``--rekor-url``, else the configuration's ``tlogLookup``; never
    with ``--offline`` (or offline trust roots)."""
    from ..trust import TlogLookup
    from ..verify.rekor_lookup import check_rekor_url

    ctx = click.get_current_context(silent=True)
    url = ctx.meta.get("stellaops.rekor_url") if ctx is not None else None
    configured = config.trust.tlog_lookup
    if url is None:
        return None if offline else configured
    if offline:
        raise RequestError("--rekor-url asks Rekor online and cannot be combined with --offline", hint="drop one of them")
    try:
        url = check_rekor_url(url)
    except ValueError as exc:
        raise RequestError(f"--rekor-url: {exc}", hint="e.g. --rekor-url https://rekor.sigstore.dev") from exc
    # the CLI is not under the provider's admission deadline: give Rekor a few seconds
    timeout = configured.timeout_seconds if configured is not None else 5.0
    return TlogLookup(rekor_url=url, timeout_seconds=timeout)


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise RequestError(f"cannot read {what} {path!r}: {exc.strerror}", hint="check the path") from exc


def build_trust(
    *,
    key_path: str | None,
    identity: str | None,
    identity_re: str | None,
    issuer: str | None,
    issuer_re: str | None,
    insecure_ignore_tlog: bool,
    trusted_root: str | None,
    offline: bool,
    config_path: str | None,
    timestamp_chain: str | None = None,
    tuf_mirror: str | None = None,
    tuf_root: str | None = None,
) -> tuple[Any, Any]:
    """(TrustConfig, Config) from the flags, or from the configuration when no authority flag is given.

    The configuration is only one the operator named (``--config``, ``$STELLAOPS_CONFIG``): a
    ``./stellaops.yaml`` found in the working directory alone is not read (T-A12,
    :func:`.common.load_named_config`). What a named configuration still gives next to the flags
    is listed in ``docs/cli.md`` ("Where verify takes its trust from")."""
    from ..trust import KeyAuthority, KeylessAuthority, SigstoreRoots, TrustConfig
    from ..verify import keys

    config = load_named_config(config_path)
    keyless_flags = any((identity, identity_re, issuer, issuer_re))
    if identity and identity_re:
        raise RequestError("give --certificate-identity or --certificate-identity-regexp, not both")
    if issuer and issuer_re:
        raise RequestError("give --certificate-oidc-issuer or --certificate-oidc-issuer-regexp, not both")
    if keyless_flags and not (identity or identity_re):
        raise RequestError("keyless verification needs --certificate-identity or --certificate-identity-regexp")
    if keyless_flags and not (issuer or issuer_re):
        raise RequestError("keyless verification needs --certificate-oidc-issuer or --certificate-oidc-issuer-regexp")
    if key_path and keyless_flags:
        raise RequestError("give either --key or the --certificate-* identity flags, not both", hint="as cosign")
    for pattern, flag in ((identity_re, "--certificate-identity-regexp"), (issuer_re, "--certificate-oidc-issuer-regexp")):
        if pattern:
            from ..verify.keyless import compile_regexp

            try:
                compile_regexp(pattern)
            except StellaError as exc:
                raise RequestError(f"{flag}: {exc.detail}", hint="RE2 syntax (Go regexp), e.g. '^https://github\\.com/org/.*$'") from exc
            if not (pattern.startswith("^") and pattern.endswith("$")):
                click.echo(
                    f"Note: {flag} {pattern!r} must match the whole value (as if written ^…$); "
                    "cosign would also accept a match anywhere inside it",
                    err=True,
                )

    roots = config.trust.sigstore
    if trusted_root:
        from ..verify import trustroot

        data = _read(trusted_root, "trusted root")
        trustroot.load_trusted_root(data, trusted_root)  # ConfigError names the file
        roots = SigstoreRoots(trusted_root_json=data, trusted_root_source=trusted_root, offline=True)

    if tuf_mirror or tuf_root:
        roots = _tuf_roots(tuf_mirror, tuf_root, trusted_root=trusted_root, offline=offline)

    if key_path:
        try:
            public_key = keys.load_public_key(_read(key_path, "key file"), source=key_path)
        except KeyLoadError as exc:
            raise KeyLoadError(exc.detail, hint=exc.hint) from exc
        authorities: tuple[Any, ...] = (
            KeyAuthority(name=os.path.basename(key_path), public_key=public_key, key_id=keys.key_id(public_key), path=key_path),
        )
        require_tlog = not insecure_ignore_tlog
    elif keyless_flags:
        authorities = (
            KeylessAuthority(
                name="certificate-identity",
                issuer=issuer or "",
                issuer_regexp=issuer_re or "",
                subject=identity or "",
                subject_regexp=identity_re or "",
            ),
        )
        require_tlog = not insecure_ignore_tlog
    else:
        authorities = config.trust.authorities
        require_tlog = config.trust.require_tlog and not insecure_ignore_tlog
        if not authorities:
            raise RequestError(
                "no authority to verify against: give --key, or --certificate-identity[-regexp] with "
                "--certificate-oidc-issuer[-regexp], or name a configuration with attestation.authorities "
                f"(--config FILE or $STELLAOPS_CONFIG; read: {config.source})",
                hint="e.g. stella attest verify IMAGE --key cosign.pub --type TYPE",
            )
    needs_roots = require_tlog or any(isinstance(a, KeylessAuthority) for a in authorities)
    if needs_roots and roots is None:
        if offline:
            raise ConfigError(
                "offline verification of keyless signatures or transparency-log entries needs a trust root",
                hint="pass --trusted-root trusted_root.json, or --config FILE naming attestation.trustRoots "
                "(or --insecure-ignore-tlog for key signatures)",
            )
        roots = SigstoreRoots(public_good=True, offline=False)
    if roots is not None and offline:
        if roots.public_good and not (roots.trusted_root_json or roots.fulcio_roots_pem):
            raise ConfigError("--offline: the only trust root configured is public-good Sigstore (fetched online)", hint="pass --trusted-root")
        roots = replace(roots, offline=True)
    if timestamp_chain:
        from ..verify import trustroot as _tr

        tsa_pem = _read(timestamp_chain, "timestamp certificate chain")
        _tr.load_tsa_chain(tsa_pem, timestamp_chain)  # ConfigError names the file
        roots = replace(roots, tsa_chain_pem=tsa_pem) if roots is not None else SigstoreRoots(tsa_chain_pem=tsa_pem, offline=True)
    lookup = _tlog_lookup(config, offline=offline)
    if lookup is not None and roots is not None and roots.offline:
        # --trusted-root marks its roots offline (no TUF); an asked-for Rekor lookup goes online
        roots = replace(roots, offline=False)
    # --insecure-ignore-tlog keeps cosign's meaning: with a TSA, a keyless signer's verified
    # timestamp replaces its log entry (the provider needs attestation.keylessTimestampWithoutTlog)
    keyless_stamp = insecure_ignore_tlog or (not (key_path or keyless_flags) and config.trust.keyless_timestamp_without_tlog)
    trust = TrustConfig(
        authorities=authorities,
        require_tlog=require_tlog,
        sigstore=roots,
        fingerprint="cli",
        tlog_lookup=lookup,
        keyless_timestamp_without_tlog=keyless_stamp and not require_tlog,
    )
    if needs_roots and roots is not None and roots.tuf is not None:
        from ..verify import trustroot

        trustroot.from_roots(roots)  # fetch now: an unreachable mirror is exit 3, a forged one exit 2
    return trust, config


def _tuf_roots(mirror: str | None, root: str | None, *, trusted_root: str | None, offline: bool) -> Any:
    """SigstoreRoots from --tuf-mirror/--tuf-root (cosign initialize --mirror/--root)."""
    from ..trust import SigstoreRoots, TufMirror
    from ..verify import tuf

    if not (mirror and root):
        raise RequestError("--tuf-mirror and --tuf-root go together", hint="as cosign initialize --mirror URL --root root.json")
    if trusted_root or offline:
        raise RequestError(
            f"--tuf-mirror cannot be combined with {'--trusted-root' if trusted_root else '--offline'}",
            hint="a TUF mirror is read over the network; for offline use pass --trusted-root alone",
        )
    url = tuf.check_mirror_url(mirror, "--tuf-mirror")
    data = _read(root, "TUF root")
    tuf.check_root_metadata(data, root)
    return SigstoreRoots(tuf=TufMirror(url=url, root_json=data, root_source=root))


def _signer_text(s: Any) -> str:
    if s.kind == "keyless":
        return f"keyless {s.authority}: issuer={s.issuer} subject={s.subject}"
    return f"key {s.authority}: keyId={s.key_id}"


def _print_text(header: str, results: list[Any], wanted: str) -> None:
    click.echo(header, err=True)
    for a in results:
        mark = "OK " if a.verified and a.predicate_type == wanted else ("-- " if a.verified else "FAIL")
        click.echo(f"{mark} {a.predicate_type or '(unverified)'}  source={a.source}  envelope={a.envelope_digest}")
        for s in a.signers:
            click.echo(f"     signer  {_signer_text(s)}")
        if a.tlog.verified:
            click.echo(f"     tlog    logIndex={a.tlog.log_index} integratedTime={a.tlog.integrated_time}")
        for t in a.timestamps:
            click.echo(f"     timestamp {t.time} authority={t.authority}")
        if a.created:
            click.echo(f"     created {a.created}{'' if a.created_signed else ' (unsigned)'}")
        for e in a.errors:
            click.echo(f"     error   {e.reason}: {e.message}")


def _finish(results: list[Any], wanted: str, output: str, doc: dict[str, Any], header: str, *, verdict: Any = None) -> None:
    """Print, then exit 0 only when the every-platform rule passes for ``wanted`` (CONTRACTS.md):
    the image's own verified attestation of that type, or for an index one on each platform of
    its own. Without ``verdict`` (a blob), any matching attestation passes."""
    from ..imagecheck import index_gate

    def accepts(a: Any) -> bool:
        return bool(a.verified and a.predicate_type == wanted)

    matching = [a for a in results if accepts(a)]
    gate = index_gate(verdict, accepts) if verdict is not None else None
    passed = gate.passed if gate is not None else bool(matching)
    if output == "json":
        doc["predicateType"] = wanted
        doc["verified"] = passed
        if gate is not None and verdict.platforms:
            doc["missingPlatforms"] = list(gate.missing)
        click.echo(json.dumps(doc, indent=2))
    else:
        _print_text(header, results, wanted)
        if verdict is not None:
            _print_platforms(verdict, gate, wanted)
    if verdict is not None:
        for e in verdict.errors:
            click.echo(f"warning: {e.reason}: {e.message}", err=True)
    if passed:
        return
    if gate is not None and verdict.platforms and matching:
        shown = ", ".join(gate.missing[:5]) + (f" and {len(gate.missing) - 5} more" if len(gate.missing) > 5 else "")
        raise VerificationError(
            f"index {verdict.digest}: {len(gate.missing)} of {len(verdict.platforms)} platform(s) have no verified "
            f"{wanted} attestation of their own: {shown}",
            reason="NO_ATTESTATION",
            hint="attest the index itself, or every platform manifest (an attested platform never vouches for another)",
        )
    if not results:
        raise VerificationError("no attestations found", reason="NO_ATTESTATION", hint="attach one with `stella attest attach` or `cosign attest`")
    verified_types = sorted({a.predicate_type for a in results if a.verified})
    if verified_types and not matching:
        raise VerificationError(
            f"none of the attestations matched the predicate type: {wanted}, found: {', '.join(verified_types)}",
            reason="NO_ATTESTATION",
            hint=type_hint(wanted, verified_types, "pass --type with one of the types found (cosign's default is custom)"),
        )
    if matching:  # verified, of the type, but for another digest than the image's
        raise VerificationError(
            f"no verified {wanted} attestation covers {verdict.digest if verdict is not None else 'the image'} itself",
            reason="NO_ATTESTATION",
            hint="attach an attestation whose subject is the image's digest",
        )
    first = next((a.errors[0] for a in results if a.errors), None)
    raise VerificationError(
        f"no attestation verified ({len(results)} found); first reason: {first.message if first else 'unknown'}",
        reason=first.reason if first else "SIGNATURE_INVALID",
        hint=first.hint if first and first.hint else "see the output above for each attestation's reason",
    )


def _print_platforms(verdict: Any, gate: Any, wanted: str) -> None:
    if not verdict.platforms:
        return
    how = {"index": "the index's own attestation", "platforms": "each platform's own attestation"}.get(gate.covered_by, "")
    click.echo(f"index {verdict.digest}: {len(verdict.platforms)} platform(s){'; covered by ' + how if how else ''}")
    missing = set(gate.missing)
    for d in verdict.platform_details:
        mark = "-- " if gate.covered_by == "index" else ("FAIL" if d.digest in missing else "OK ")
        click.echo(f"{mark} platform {d.platform or '(none named)'}  {d.digest}")


@click.command()
@click.argument("image")
@_trust_options
@click.option(
    "--no-store",
    "no_store",
    is_flag=True,
    help="Leave out attestations imported into the configured store (stella attest import); by default they count, as in admission.",
)
@progress_option
def verify(
    image: str,
    key_path: str | None,
    identity: str | None,
    identity_re: str | None,
    issuer: str | None,
    issuer_re: str | None,
    ptype: str,
    insecure_ignore_tlog: bool,
    trusted_root: str | None,
    offline: bool,
    timestamp_chain: str | None,
    tuf_mirror: str | None,
    tuf_root: str | None,
    output: str,
    config_path: str | None,
    verbose: bool,
    no_store: bool,
    progress: bool | None,
    **gh_flags: Any,
) -> None:
    """Verify the attestations attached to IMAGE (cosign verify-attestation).

    Runs the provider's per-image pipeline (the configured store, every platform of an index,
    the same limits). For an index, exit 0 needs the index's own attestation of --type, or one
    on each platform of its own (an attested platform never vouches for another).

    \b
    Examples:
      stella attest verify registry.example.com/app:v1 --key cosign.pub --insecure-ignore-tlog \\
          --type stellaops.io/predicates/scan-result@v1
      stella attest verify registry.example.com/app:v1 --type slsaprovenance1 --trusted-root trusted_root.json \\
          --certificate-identity-regexp '^https://github\\.com/org/.*$' \\
          --certificate-oidc-issuer https://token.actions.githubusercontent.com
    """
    from ..clients import make_registry_client
    from ..imagecheck import verify_image
    from ..predicates import resolve_predicate_type
    from ..reference import parse_reference
    from .common import Progress, progress_wanted

    trust, config = build_trust(
        key_path=key_path,
        identity=identity,
        identity_re=identity_re,
        issuer=issuer,
        issuer_re=issuer_re,
        insecure_ignore_tlog=insecure_ignore_tlog,
        trusted_root=trusted_root,
        offline=offline,
        config_path=config_path,
        timestamp_chain=timestamp_chain,
        tuf_mirror=tuf_mirror,
        tuf_root=tuf_root,
    )
    trust = _with_trust_flags(trust, gh_flags)
    wanted = resolve_predicate_type(ptype)
    ref = parse_reference(image)
    # The CLI runs for its user (as cosign does): private and loopback registries are allowed.
    client = make_registry_client(config, for_cli=True)
    store = None if no_store else _open_store(config)
    bar: list[Any] = []

    def started(total: int) -> None:
        bar.append(Progress("verifying", total, enabled=progress_wanted(progress) and total > 1).__enter__())

    def verified(c: Any, res: Any) -> None:
        if bar:
            bar[0].advance(f"{c.source}: {'verified' if res.verified else 'not verified'}")

    try:
        verdict = verify_image(
            client,
            ref,
            image,
            trust=trust,
            limits=config.limits,  # the provider's limits: index width and depth, byte budgets
            store=store,
            deadline=None,  # cosign-like: no admission deadline, the CLI waits for its registry
            on_start=started,
            on_result=verified,
        )
    finally:
        if bar:
            bar[0].__exit__(None, None, None)
        if store is not None:
            store.close()
    # cosign-like: the verdict is not cut by bounds.bound_verdict (the provider's answer size
    # limits protect Gatekeeper's memory; the CLI's user wants every detail of every attestation)
    results = list(verdict.attestations)
    results.sort(key=lambda a: (not a.verified, a.predicate_type != wanted))
    verdict = replace(verdict, attestations=tuple(results))
    header = (
        f"Verification for {image} --\nThe following checks were performed on each of these attestations:\n"
        "  - The in-toto statement's subject was checked against the image digest\n"
        + ("  - The transparency log entry was verified offline\n" if trust.require_tlog and trust.tlog_lookup is None else "")
        + (
            f"  - The transparency log entry was verified (a missing one was looked up in Rekor at {trust.tlog_lookup.rekor_url})\n"
            if trust.require_tlog and trust.tlog_lookup is not None
            else ""
        )
        + "  - The signatures were verified against the given authorities\n"
    )
    _finish(results, wanted, output, verdict.to_json(), header, verdict=verdict)


def _open_store(config: Any) -> Any:
    """The store the provider reads (``store.dsn``), or None when there is none to read: the
    default SQLite file is not created just to find it empty (``stella attest import`` creates it)."""
    from ..store import default_dsn, open_store, sqlite_path

    dsn = (config.store.dsn or "").strip() or default_dsn()
    if dsn.startswith("sqlite:"):
        path = sqlite_path(dsn)
        if path != ":memory:" and not os.path.exists(path):
            return None
    return open_store(dsn, rows_per_tenant_digest=config.limits.store_rows_per_tenant_digest)


def _blob_digest(blob: str | None, digest: str | None, digest_alg: str) -> str:
    if blob and digest:
        raise RequestError("give the BLOB file or --digest, not both")
    if blob:
        if digest_alg not in _DIGEST_LEN:
            raise RequestError(f"--digestAlg {digest_alg!r} is not one of {sorted(_DIGEST_LEN)}")
        h = hashlib.new(digest_alg)
        try:
            with open(blob, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        except OSError as exc:
            raise RequestError(f"cannot read blob {blob!r}: {exc.strerror}") from exc
        return f"{digest_alg}:{h.hexdigest()}"
    if not digest:
        raise RequestError("give the BLOB file or --digest HEX (with --digestAlg)", hint="as cosign verify-blob-attestation")
    alg, sep, value = digest.partition(":")
    if not sep:
        alg, value = digest_alg, digest
    value = value.lower()
    if alg not in _DIGEST_LEN or len(value) != _DIGEST_LEN[alg] or not _HEX.match(value):
        raise RequestError(f"--digest {digest!r} is not a {alg} digest ({_DIGEST_LEN.get(alg, 64)} hex digits)")
    return f"{alg}:{value}"


def blob_candidate(bundle: str | None, signature: str | None) -> Any:
    """A candidate from a sigstore bundle, cosign's legacy blob bundle, or a DSSE envelope file."""
    from ..candidate import KIND_BUNDLE, KIND_DSSE, SOURCE_IMPORTED, Candidate, CosignLayerAnnotations

    if bool(bundle) == bool(signature):
        raise RequestError("give exactly one of --bundle FILE or --signature FILE")
    if signature:
        data = _read(signature, "signature").strip()
        if not data.startswith(b"{"):
            try:  # a base64 envelope (as cosign's help text suggests)
                data = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                pass
        return Candidate(kind=KIND_DSSE, data=data, source=SOURCE_IMPORTED, attached_to="", location=signature)
    assert bundle is not None
    data = _read(bundle, "bundle")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise VerificationError(f"{bundle} is not JSON: {exc}", reason="MALFORMED_ENVELOPE") from exc
    if isinstance(doc, dict) and str(doc.get("mediaType", "")).startswith("application/vnd.dev.sigstore.bundle"):
        return Candidate(kind=KIND_BUNDLE, data=data, source=SOURCE_IMPORTED, attached_to="", location=bundle)
    if isinstance(doc, dict) and "base64Signature" in doc:
        # cosign's legacy blob bundle: {"base64Signature","cert","rekorBundle"}
        try:
            envelope = base64.b64decode(doc["base64Signature"], validate=True)
            cert = base64.b64decode(doc["cert"], validate=True).decode() if doc.get("cert") else ""
        except (binascii.Error, ValueError, TypeError) as exc:
            raise VerificationError(f"{bundle}: base64Signature/cert are not base64", reason="MALFORMED_ENVELOPE") from exc
        rekor = json.dumps(doc["rekorBundle"]) if doc.get("rekorBundle") else ""
        return Candidate(
            kind=KIND_DSSE,
            data=envelope,
            source=SOURCE_IMPORTED,
            attached_to="",
            location=bundle,
            cosign=CosignLayerAnnotations(certificate=cert, rekor_bundle=rekor),
        )
    raise VerificationError(
        f"{bundle} is neither a sigstore bundle nor cosign's legacy blob bundle", reason="MALFORMED_ENVELOPE", hint="pass a DSSE envelope with --signature"
    )


def blob_candidates(bundle: str | None, signature: str | None) -> list[Any]:
    """The candidates of --bundle/--signature: one, or one per line of a JSON Lines file of
    sigstore bundles (``gh attestation download``); a bad line is refused with its number."""
    if bundle and not signature:
        from ..verify.bundle_lines import bundle_file_candidates

        lines = bundle_file_candidates(bundle)
        if lines is not None:
            if not lines:  # pragma: no cover - split_bundle_lines gives at least one document
                raise VerificationError(f"{bundle} holds no bundle", reason="MALFORMED_ENVELOPE")
            return lines
    return [blob_candidate(bundle, signature)]


@click.command("verify-blob-attestation")
@click.argument("blob", required=False)
@click.option("--bundle", "bundle", metavar="FILE", help="A sigstore bundle (or cosign's legacy blob bundle) holding the attestation, or a JSON Lines file of bundles (gh attestation download): each is tried.")
@click.option("--signature", "signature", metavar="FILE", help="The DSSE envelope JSON (what cosign attest-blob --output-signature writes).")
@click.option("--digest", "digest", metavar="HEX", help="The blob's digest (HEX or sha256:HEX) when the BLOB is not given.")
@click.option("--digestAlg", "--digest-alg", "digest_alg", default="sha256", show_default=True, help="Algorithm of --digest / for hashing BLOB.")
@_trust_options
def verify_blob_attestation(
    blob: str | None,
    bundle: str | None,
    signature: str | None,
    digest: str | None,
    digest_alg: str,
    key_path: str | None,
    identity: str | None,
    identity_re: str | None,
    issuer: str | None,
    issuer_re: str | None,
    ptype: str,
    insecure_ignore_tlog: bool,
    trusted_root: str | None,
    offline: bool,
    timestamp_chain: str | None,
    tuf_mirror: str | None,
    tuf_root: str | None,
    output: str,
    config_path: str | None,
    verbose: bool,
    **gh_flags: Any,
) -> None:
    """Verify an attestation about BLOB (or --digest) that is not in a registry.

    \b
    Examples:
      stella attest verify-blob-attestation app.tar --bundle app.att.json --key cosign.pub --type slsaprovenance1
      stella attest verify-blob-attestation --digest sha256:HEX --signature env.json --key cosign.pub \\
          --insecure-ignore-tlog --type stellaops.io/predicates/scan-result@v1
    """
    from ..predicates import resolve_predicate_type
    from ..verify.attestation import verify_candidate
    from ..verify.bundle_lines import pick_result

    trust, _config = build_trust(
        key_path=key_path,
        identity=identity,
        identity_re=identity_re,
        issuer=issuer,
        issuer_re=issuer_re,
        insecure_ignore_tlog=insecure_ignore_tlog,
        trusted_root=trusted_root,
        offline=offline,
        config_path=config_path,
        timestamp_chain=timestamp_chain,
        tuf_mirror=tuf_mirror,
        tuf_root=tuf_root,
    )
    trust = _with_trust_flags(trust, gh_flags)
    wanted = resolve_predicate_type(ptype)
    image_digest = _blob_digest(blob, digest, digest_alg)
    cands = blob_candidates(bundle, signature)
    results = [verify_candidate(cand, image_digest, trust) for cand in cands]  # every bundle is tried
    result = pick_result(results, wanted)
    if len(cands) > 1 and output != "json":
        for cand, r in zip(cands, results):
            state = ("OK " + r.predicate_type) if r.verified else f"FAIL {r.errors[0].reason}: {r.errors[0].message}" if r.errors else "FAIL"
            click.echo(f"{cand.location}: {state}", err=True)
    if output == "json":
        doc = result.to_json()
        doc["predicateType"] = result.predicate_type
        out = {"digest": image_digest, "verified": result.verified and result.predicate_type == wanted, "attestation": doc}
        if len(cands) > 1:  # a JSON Lines file: what each line gave, in the file's order
            out["bundles"] = [{"location": c.location, **r.to_json(), "predicateType": r.predicate_type} for c, r in zip(cands, results)]
        click.echo(json.dumps(out, indent=2))
    if not result.verified:
        err = result.errors[0]
        if len(cands) > 1:  # name the file and the line whose reason is reported
            where = cands[results.index(result)].location
            raise VerificationError(f"none of the {len(cands)} bundles in {bundle} verified; {where}: {err.message}", reason=err.reason, hint=err.hint)
        raise VerificationError(err.message, reason=err.reason, hint=err.hint)
    if result.predicate_type != wanted:
        raise VerificationError(
            f"invalid predicate type, expected {wanted} got {result.predicate_type}",
            reason="NO_ATTESTATION",
            hint=type_hint(wanted, [result.predicate_type], "pass --type with the attestation's predicate type (cosign's default is custom)"),
        )
    if output != "json":
        for s in result.signers:
            click.echo(f"signer  {_signer_text(s)}")
        if result.tlog.verified:
            click.echo(f"tlog    logIndex={result.tlog.log_index} integratedTime={result.tlog.integrated_time}")
        for t in result.timestamps:
            click.echo(f"timestamp {t.time} authority={t.authority}")
    click.echo("Verified OK", err=True)
    sys.stdout.flush()
