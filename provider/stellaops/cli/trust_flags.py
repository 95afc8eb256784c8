"""cosign's GitHub-oriented trust flags for ``stella attest verify`` and
``verify-blob-attestation`` (issue 17, items 3 and 5), kept apart from ``cli/verify.py``.

- :func:`github_trust_options` adds the flags to a click command:
  ``--certificate-github-workflow-{trigger,sha,name,repository,ref}`` (cosign's), the
  Fulcio source-repository pins ``--certificate-build-signer-uri``,
  ``--certificate-source-repository-{uri,digest,ref,owner-uri}``, and
  ``--insecure-ignore-sct`` / ``--use-signed-timestamps`` (cosign's).
- :func:`trust_flag_fragment` turns their values into a configuration fragment with the keys
  of ``stellaops.yaml``'s ``authorities[].keyless`` (``{"keyless": {...}}``; empty when no flag
  was given), validated by the same code as the configuration file.
- :func:`apply_trust_flags` merges that fragment into every keyless authority of a
  :class:`TrustConfig` (the one built from ``--certificate-identity``/``--certificate-oidc-issuer``,
  or the configured ones) — ``--use-signed-timestamps`` into key authorities too, as cosign
  applies it with ``--key`` — and refuses pins that no keyless authority would use.

The options are exposed under their own parameter names (``gh_*``), so a command takes them
as ``**gh_flags`` and passes them on unchanged::

    trust = apply_trust_flags(trust, trust_flag_fragment(**gh_flags))
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import click

from ..errors import ConfigError, RequestError
from ..trust import KeyAuthority, KeylessAuthority, TrustConfig

# click parameter name -> (flag, stellaops.yaml authorities[].keyless key, help)
_PINS: tuple[tuple[str, str, str, str], ...] = (
    ("gh_workflow_trigger", "--certificate-github-workflow-trigger", "githubWorkflowTrigger",
     "Keyless: the exact GitHub workflow trigger (event name) in the certificate (extension 1.3.6.1.4.1.57264.1.2), as cosign."),
    ("gh_workflow_sha", "--certificate-github-workflow-sha", "githubWorkflowSha",
     "Keyless: the exact commit SHA the workflow ran on (1.3.6.1.4.1.57264.1.3), as cosign."),
    ("gh_workflow_name", "--certificate-github-workflow-name", "githubWorkflowName",
     "Keyless: the exact GitHub workflow name (1.3.6.1.4.1.57264.1.4), as cosign."),
    ("gh_workflow_repository", "--certificate-github-workflow-repository", "githubWorkflowRepository",
     "Keyless: the exact repository, owner/name (1.3.6.1.4.1.57264.1.5), as cosign."),
    ("gh_workflow_ref", "--certificate-github-workflow-ref", "githubWorkflowRef",
     "Keyless: the exact git ref, e.g. refs/heads/main (1.3.6.1.4.1.57264.1.6), as cosign."),
    ("gh_build_signer_uri", "--certificate-build-signer-uri", "buildSignerUri",
     "Keyless: the exact Build Signer URI, e.g. a reusable workflow @ ref (1.3.6.1.4.1.57264.1.9)."),
    ("gh_source_repository_uri", "--certificate-source-repository-uri", "sourceRepositoryUri",
     "Keyless: the exact Source Repository URI, e.g. https://github.com/org/repo (1.3.6.1.4.1.57264.1.12)."),
    ("gh_source_repository_digest", "--certificate-source-repository-digest", "sourceRepositoryDigest",
     "Keyless: the exact Source Repository Digest (commit SHA, 1.3.6.1.4.1.57264.1.13)."),
    ("gh_source_repository_ref", "--certificate-source-repository-ref", "sourceRepositoryRef",
     "Keyless: the exact Source Repository Ref, e.g. refs/heads/main (1.3.6.1.4.1.57264.1.14)."),
    ("gh_source_repository_owner_uri", "--certificate-source-repository-owner-uri", "sourceRepositoryOwnerUri",
     "Keyless: the exact Source Repository Owner URI, e.g. https://github.com/org (1.3.6.1.4.1.57264.1.16)."),
)  # fmt: skip

_SWITCHES: tuple[tuple[str, str, str, str], ...] = (
    ("gh_insecure_ignore_sct", "--insecure-ignore-sct", "insecureIgnoreSct",
     "Keyless: accept a certificate without a verifying embedded SCT (an instance without a CT log, such as "
     "GitHub's own Sigstore), as cosign."),
    ("gh_use_signed_timestamps", "--use-signed-timestamps", "useSignedTimestamps",
     "Keyless: require a verified RFC 3161 timestamp from a trusted TSA; with --insecure-ignore-tlog it dates an "
     "attestation that has no log entry (GitHub's own Sigstore), as cosign."),
)  # fmt: skip

FLAG_PARAMS = tuple(p for p, *_ in _PINS + _SWITCHES)


def github_trust_options(func: Any) -> Any:
    """Add the GitHub/Fulcio trust flags to a click command (as ``gh_*`` keyword arguments)."""
    options = [click.option(flag, param, metavar="VALUE", default=None, help=text) for param, flag, _key, text in _PINS]
    options += [click.option(flag, param, is_flag=True, default=False, help=text) for param, flag, _key, text in _SWITCHES]
    for option in reversed(options):
        func = option(func)
    return func


def trust_flag_fragment(**kwargs: Any) -> dict[str, Any]:
    """``{"keyless": {<stellaops.yaml keyless key>: value, ...}}`` for the flags that were given
    (``{}`` when none). Unknown keyword arguments are refused (a wiring mistake)."""
    unknown = set(kwargs) - set(FLAG_PARAMS)
    if unknown:
        raise TypeError(f"trust_flag_fragment: unknown arguments {sorted(unknown)}")
    keyless: dict[str, Any] = {}
    for param, _flag, key, _text in _PINS:
        if kwargs.get(param) is not None:
            keyless[key] = kwargs[param]
    for param, _flag, key, _text in _SWITCHES:
        if kwargs.get(param):
            keyless[key] = True
    return {"keyless": keyless} if keyless else {}


_KEY_FLAG = {key: flag for _p, flag, key, _t in _PINS + _SWITCHES}


def _flag_of(key: str) -> str:
    return _KEY_FLAG.get(key, key)


def apply_trust_flags(trust: TrustConfig, fragment: dict[str, Any]) -> TrustConfig:
    """``trust`` with the fragment's keyless options added to every keyless authority: pins are
    added (a flag and a configured pin for the same extension must agree, else the flag is
    refused), switches are turned on. Raises :class:`RequestError` for a value the configuration
    would refuse, or when no keyless authority is there to use the flags."""
    from ..config import keyless_options

    keyless = dict(fragment.get("keyless") or {})
    if not keyless:
        return trust
    try:
        options = keyless_options(keyless)
    except ConfigError as exc:
        key = exc.detail.split(":", 1)[0]
        raise RequestError(f"{_flag_of(key)}: {exc.detail.split(':', 1)[-1].strip()}", hint=exc.hint) from exc
    keyless_only = [k for k in keyless if k not in ("insecureIgnoreSct", "useSignedTimestamps")]
    if not trust.keyless_authorities and keyless_only:
        flags = ", ".join(_flag_of(k) for k in keyless_only)
        raise RequestError(
            f"{flags} check keyless certificates, but no keyless authority is given",
            hint="add --certificate-identity[-regexp] and --certificate-oidc-issuer[-regexp], or configure a keyless authority",
        )
    # with --key, as cosign: --use-signed-timestamps requires a verified timestamp over the key's
    # signature; --insecure-ignore-sct has nothing to relax (a key signature has no SCT)

    def merged(a: KeylessAuthority) -> KeylessAuthority:
        pins = dict(a.extensions)
        for key, value in options["extensions"]:
            if key in pins and pins[key] != value:
                raise RequestError(
                    f"{_flag_of(key)} {value!r} contradicts the configured {key} {pins[key]!r} of authority {a.name!r}",
                    hint="drop the flag, or verify with the --certificate-* identity flags instead of the configured authorities",
                )
            pins[key] = value
        return replace(
            a,
            extensions=tuple(pins.items()),
            insecure_ignore_sct=a.insecure_ignore_sct or options["insecure_ignore_sct"],
            use_signed_timestamps=a.use_signed_timestamps or options["use_signed_timestamps"],
        )

    def keyed(a: KeyAuthority) -> KeyAuthority:
        return replace(a, use_signed_timestamps=a.use_signed_timestamps or options["use_signed_timestamps"])

    authorities = tuple(merged(a) if isinstance(a, KeylessAuthority) else keyed(a) for a in trust.authorities)
    # the flags change who is trusted: cached verdicts (CLI: none) must not be shared across them
    return replace(trust, authorities=authorities, fingerprint=f"{trust.fingerprint}+flags:{sorted(keyless.items())}")
