"""``stellaops.yaml``: load, validate and freeze the whole configuration (DESIGN.md §6).

Everything is checked here, at start-up: unknown keys, wrong types, missing or unreadable
files, unparsable keys and contradictory options raise :class:`ConfigError` naming the file and
the exact key path (``stellaops.yaml: attestation.authorities[1].key.path: …``). Verification
never meets a bad key at admission time.

Where the configuration comes from (the provider and the ``stella`` commands): ``--config FILE``,
else ``$STELLAOPS_CONFIG``, else ``./stellaops.yaml``, else built-in defaults. The verify commands
(``stella attest verify``, ``verify-blob-attestation``: their exit code is a security gate) skip the
``./stellaops.yaml`` step (``named_only=True``): a file that only the working directory supplies (a
repository checkout in CI) never decides what is trusted (threat T-A12). The other client commands
(``sign``, ``attach``, ``import``, ``oci-list``, ``download``) still read it, but without the keys of
:data:`UNNAMED_IGNORED` (``unnamed_limits=True``, threat T-A13): such a file may choose the store
file, limits and the registry allow-list, never trust, signing endpoints, transport security or
credentials.

Environment overrides use one scheme: ``STELLAOPS_<SECTION>__<KEY>[__<KEY>…]=<YAML scalar>``,
matched case-insensitively against the documented keys, e.g. ``STELLAOPS_SERVER__DEADLINESECONDS=2``
or ``STELLAOPS_CACHE__REDISURL=redis://127.0.0.1:6379/0``. ``STELLAOPS_CONFIG`` itself is not an
override. Lists cannot be overridden from the environment.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import ConfigError
from .trust import Authority, KeyAuthority, KeylessAuthority, SigstoreRoots, TlogLookup, TrustConfig, TufMirror

ENV_PREFIX = "STELLAOPS_"
DEFAULT_FILE = "stellaops.yaml"
MiB = 1024 * 1024


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "stellaops"


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class RegistriesConfig:
    allow: tuple[str, ...] = ("*",)
    insecure: tuple[str, ...] = ()
    allow_private: bool = False
    docker_config: str = ""


@dataclass(frozen=True)
class TLSConfig:
    cert: str = ""
    key: str = ""
    client_ca: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.cert)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "0.0.0.0"
    port: int = 8443
    tls: TLSConfig = field(default_factory=TLSConfig)
    deadline_seconds: float = 1.5
    max_keys: int = 1000
    max_key_length: int = 1024
    max_body_bytes: int = 1 * MiB
    workers: int = 2
    threads: int = 16
    verify_concurrency: int = 16
    # how long a key's transient failure (deadline, registry unreachable) is remembered and
    # answered at once with the same systemError, so stacked templates pay one deadline per
    # admission, not one per template (0 turns it off)
    transient_memory_seconds: float = 5.0


@dataclass(frozen=True)
class LimitsConfig:
    manifest_bytes: int = 4 * MiB
    blob_bytes: int = 32 * MiB
    envelope_bytes: int = 32 * MiB
    referrers: int = 1000
    attestations_per_image: int = 200
    attestation_bytes_per_image: int = 64 * MiB
    attestation_bytes_per_request: int = 256 * MiB  # the sum over every key of one request
    platform_manifests: int = 128  # entries an index may list (over it: the key is refused, not truncated)
    index_depth: int = 4  # nested indexes followed (deeper: refused)
    verdict_bytes: int = 256 * 1024  # one key's verdict JSON (over it: unverified detail dropped, LIMIT_EXCEEDED)
    response_bytes: int = 8 * MiB  # one ProviderResponse
    unsigned_string_bytes: int = 256  # any unsigned string (annotation, claimed type, created) copied into a verdict
    unsigned_annotations: int = 16  # unsigned annotations copied per attestation
    store_rows_per_tenant_digest: int = 100  # imports kept per (tenant, digest), newest first
    connect_timeout_seconds: float = 3.0
    read_timeout_seconds: float = 10.0
    retries: int = 2


@dataclass(frozen=True)
class CacheConfig:
    ttl_seconds: float = 300.0
    negative_ttl_seconds: float = 30.0
    digest_ttl_seconds: float = 30.0
    max_bytes: int = 64 * MiB
    redis_url: str = ""


@dataclass(frozen=True)
class StoreConfig:
    dsn: str = ""


@dataclass(frozen=True)
class ImportToken:
    tenant: str
    token: bytes
    source: str = ""

    def __repr__(self) -> str:  # never print a secret
        return f"ImportToken(tenant={self.tenant!r}, source={self.source!r})"


@dataclass(frozen=True)
class ImportApiConfig:
    tokens: tuple[ImportToken, ...] = ()
    max_body_bytes: int = 4 * MiB


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    format: str = "json"


@dataclass(frozen=True)
class Config:
    trust: TrustConfig = field(default_factory=TrustConfig)
    registries: RegistriesConfig = field(default_factory=RegistriesConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    import_api: ImportApiConfig = field(default_factory=ImportApiConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    source: str = "<defaults>"
    # the keys of an unnamed ./stellaops.yaml left out (UNNAMED_IGNORED), for the one-line note
    ignored: tuple[str, ...] = ()


# --------------------------------------------------------------------------- schema
# A tiny declarative schema: "key": type spec. Dicts nest; lists are [spec]. Hand-written
# because the error messages must name the file and the exact key path, in our words.

_SCHEMA: dict[str, Any] = {
    "attestation": {
        "trustRoots": {
            "sigstore": {
                "enabled": bool,
                "fulcioUrl": str,
                "rekorUrl": str,
                "ctlogUrl": str,
                "trustedRootPem": "path",
                "rekorPublicKey": "path",
                "ctlogPublicKey": "path",
                "tuf": {"mirror": str, "root": "path", "cacheDir": "path", "refreshSeconds": float, "maxStaleSeconds": float, "fetchTimeoutSeconds": float},
                "tsaCertChain": "path",
            },
            "offline": bool,
            "bundlePath": "path",
        },
        "authorities": [
            {
                "name": str,
                "key": {"path": "path", "useSignedTimestamps": bool},
                "keyless": {
                    "issuer": str,
                    "issuerRegExp": str,
                    "subject": str,
                    "subjectRegExp": str,
                    # exact-match Fulcio extensions (verify/keyless.py EXTENSION_KEYS)
                    "githubWorkflowTrigger": str,
                    "githubWorkflowSha": str,
                    "githubWorkflowName": str,
                    "githubWorkflowRepository": str,
                    "githubWorkflowRef": str,
                    "buildSignerUri": str,
                    "sourceRepositoryUri": str,
                    "sourceRepositoryDigest": str,
                    "sourceRepositoryRef": str,
                    "sourceRepositoryOwnerUri": str,
                    "insecureIgnoreSct": bool,
                    "useSignedTimestamps": bool,
                },
            }
        ],
        "requireTlog": bool,
        "keylessTimestampWithoutTlog": bool,
        "tlogLookup": {"enabled": bool, "timeoutSeconds": float, "maxResponseBytes": int},
    },
    "registries": {"allow": [str], "insecure": [str], "allowPrivate": bool, "auth": {"dockerConfig": "path"}},
    "server": {
        "host": str,
        "port": int,
        "tls": {"cert": "path", "key": "path", "clientCA": "path"},
        "deadlineSeconds": float,
        "maxKeys": int,
        "maxKeyLength": int,
        "maxBodyBytes": int,
        "workers": int,
        "threads": int,
        "verifyConcurrency": int,
        "transientMemorySeconds": float,
    },
    "limits": {
        "manifestBytes": int,
        "blobBytes": int,
        "envelopeBytes": int,
        "referrers": int,
        "attestationsPerImage": int,
        "attestationBytesPerImage": int,
        "attestationBytesPerRequest": int,
        "platformManifests": int,
        "indexDepth": int,
        "verdictBytes": int,
        "responseBytes": int,
        "unsignedStringBytes": int,
        "unsignedAnnotations": int,
        "storeRowsPerTenantDigest": int,
        "connectTimeoutSeconds": float,
        "readTimeoutSeconds": float,
        "retries": int,
    },
    "cache": {
        "ttlSeconds": float,
        "negativeTtlSeconds": float,
        "digestTtlSeconds": float,
        "maxBytes": int,
        "redisUrl": str,
    },
    "store": {"dsn": str},
    "importApi": {"tokens": [{"tenant": str, "tokenFile": "path"}], "maxBodyBytes": int},
    "logging": {"level": str, "format": str},
}


class _Ctx:
    def __init__(self, source: str, base_dir: Path) -> None:
        self.source = source
        self.base_dir = base_dir

    def error(self, path: str, message: str, hint: str = "") -> ConfigError:
        where = f"{self.source}: {path}: " if path else f"{self.source}: "
        return ConfigError(where + message, hint=hint)

    def resolve(self, value: str) -> Path:
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else (self.base_dir / p)

    def read(self, path: str, value: str, *, what: str) -> bytes:
        p = self.resolve(value)
        try:
            return p.read_bytes()
        except FileNotFoundError:
            raise self.error(path, f"{what} file {str(p)!r} does not exist") from None
        except OSError as exc:
            raise self.error(path, f"{what} file {str(p)!r} cannot be read: {exc.strerror}") from exc


def _typename(spec: Any) -> str:
    if spec == "path":
        return "a file path (string)"
    if isinstance(spec, dict):
        return "a mapping"
    if isinstance(spec, list):
        return "a list"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[spec]


def _check(ctx: _Ctx, value: Any, spec: Any, path: str) -> None:
    if isinstance(spec, dict):
        if value is None:
            return
        if not isinstance(value, dict):
            raise ctx.error(path, f"must be {_typename(spec)}, got {type(value).__name__}")
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            if k not in spec:
                close = [c for c in spec if c.lower() == str(k).lower()]
                hint = f"did you mean {close[0]!r}?" if close else f"known keys here: {', '.join(spec)}"
                raise ctx.error(sub, "unknown key", hint=hint)
            _check(ctx, v, spec[k], sub)
        return
    if isinstance(spec, list):
        if value is None:
            return
        if not isinstance(value, list):
            raise ctx.error(path, f"must be a list, got {type(value).__name__}")
        for i, item in enumerate(value):
            if item is None:
                raise ctx.error(f"{path}[{i}]", f"an empty entry (null) where {_typename(spec[0])} is expected")
            _check(ctx, item, spec[0], f"{path}[{i}]")
        return
    if value is None:
        return
    if spec is bool:
        ok = isinstance(value, bool)
    elif spec is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif spec is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:  # str or "path"
        ok = isinstance(value, str)
    if not ok:
        raise ctx.error(path, f"must be {_typename(spec)}, got {value!r}")


def _get(doc: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    cur: Any = doc
    for part in dotted.split("."):
        if not isinstance(cur, dict) or cur.get(part) is None:
            return default
        cur = cur[part]
    return cur


# --------------------------------------------------------------------------- env overrides


def _apply_env(doc: dict[str, Any], env: Mapping[str, str], ctx: _Ctx) -> None:
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name or name == "STELLAOPS_CONFIG":
            continue
        parts = name[len(ENV_PREFIX) :].split("__")
        spec: Any = _SCHEMA
        target = doc
        keys: list[str] = []
        for i, part in enumerate(parts):
            if not isinstance(spec, dict):
                raise ctx.error(name, "environment override goes below a value that has no keys")
            match = [k for k in spec if k.lower() == part.lower()]
            if not match:
                raise ctx.error(name, f"environment override names unknown key {part!r}", hint=f"known: {', '.join(spec)}")
            key = match[0]
            keys.append(key)
            spec = spec[key]
            if i < len(parts) - 1:
                nxt = target.get(key)
                if not isinstance(nxt, dict):
                    nxt = {}
                    target[key] = nxt
                target = nxt
        if isinstance(spec, (dict, list)):
            raise ctx.error(name, "environment overrides set single values, not mappings or lists")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as exc:
            raise ctx.error(name, f"environment override is not a YAML scalar: {exc}") from exc
        if spec in (str, "path") and value is not None and not isinstance(value, str):
            value = raw
        target[keys[-1]] = value


# --------------------------------------------------------------------------- builders


def _build_trust(doc: dict[str, Any], ctx: _Ctx) -> TrustConfig:
    from .verify import keys as keymod  # the key loader of the verification engine

    authorities: list[Authority] = []
    names: set[str] = set()
    fp: dict[str, Any] = {"authorities": []}
    for i, a in enumerate(_get(doc, "attestation.authorities", []) or []):
        path = f"attestation.authorities[{i}]"
        name = a.get("name")
        if not name:
            raise ctx.error(f"{path}.name", "every authority needs a name (it appears in verdicts and policies)")
        if name in names:
            raise ctx.error(f"{path}.name", f"authority name {name!r} is used twice")
        names.add(name)
        has_key, has_keyless = a.get("key") is not None, a.get("keyless") is not None
        if has_key == has_keyless:
            raise ctx.error(path, "an authority has exactly one of 'key' or 'keyless'")
        if has_key:
            kpath = (a["key"] or {}).get("path")
            if not kpath:
                raise ctx.error(f"{path}.key.path", "missing: the PEM public key file (e.g. cosign.pub)")
            data = ctx.read(f"{path}.key.path", kpath, what="public key")
            try:
                pub = keymod.load_public_key(data)
            except Exception as exc:  # noqa: BLE001 - any loader failure is a config error here
                detail = getattr(exc, "detail", str(exc))
                raise ctx.error(f"{path}.key.path", f"{ctx.resolve(kpath)}: {detail}") from exc
            kid = keymod.key_id(pub)
            stamps = bool((a["key"] or {}).get("useSignedTimestamps", False))
            authorities.append(KeyAuthority(name=name, public_key=pub, key_id=kid, path=str(ctx.resolve(kpath)), use_signed_timestamps=stamps))
            fp["authorities"].append({"name": name, "keyId": kid, **({"useSignedTimestamps": True} if stamps else {})})
        else:
            kl = a["keyless"] or {}
            for exact, rx in (("issuer", "issuerRegExp"), ("subject", "subjectRegExp")):
                if bool(kl.get(exact)) == bool(kl.get(rx)):
                    raise ctx.error(f"{path}.keyless", f"set exactly one of {exact!r} or {rx!r}")
                if kl.get(rx):
                    _check_regexp(ctx, f"{path}.keyless.{rx}", kl[rx])
            try:
                options = keyless_options(kl)
            except ConfigError as exc:
                raise ctx.error(f"{path}.keyless", exc.detail, hint=exc.hint) from exc
            auth = KeylessAuthority(
                name=name,
                issuer=kl.get("issuer", ""),
                issuer_regexp=kl.get("issuerRegExp", ""),
                subject=kl.get("subject", ""),
                subject_regexp=kl.get("subjectRegExp", ""),
                **options,
            )
            authorities.append(auth)
            fp["authorities"].append({"name": name, **kl})

    roots = _build_roots(doc, ctx)
    require_tlog = _get(doc, "attestation.requireTlog", True)
    if any(isinstance(a, KeylessAuthority) for a in authorities) and roots is None:
        raise ctx.error(
            "attestation.trustRoots",
            "keyless authorities are configured but no Sigstore trust roots are",
            hint="set trustRoots.bundlePath (air-gapped trusted_root.json) or trustRoots.sigstore",
        )
    fp["requireTlog"] = require_tlog
    keyless_stamp = bool(_get(doc, "attestation.keylessTimestampWithoutTlog", False))
    if keyless_stamp and require_tlog:
        raise ctx.error(
            "attestation.keylessTimestampWithoutTlog",
            "lets an RFC 3161 timestamp replace a keyless signer's log entry, which requireTlog: true forbids",
            hint="set requireTlog: false as well (cosign --insecure-ignore-tlog), or remove keylessTimestampWithoutTlog",
        )
    if keyless_stamp:  # keyless attestations never logged become acceptable: a different trust
        fp["keylessTimestampWithoutTlog"] = True
    if roots is not None:
        fp["roots"] = hashlib.sha256(
            roots.trusted_root_json + roots.fulcio_roots_pem + roots.rekor_public_key_pem + roots.ctlog_public_key_pem + roots.tsa_chain_pem
        ).hexdigest()
        fp["publicGood"] = roots.public_good
        if roots.tuf is not None:
            fp["tuf"] = {"mirror": roots.tuf.url, "root": hashlib.sha256(roots.tuf.root_json).hexdigest()}
    lookup = _build_tlog_lookup(doc, roots, ctx)
    if lookup is not None:  # an entry found online can turn a TLOG_MISSING verdict into a verified one
        fp["tlogLookup"] = lookup.rekor_url
    fingerprint = "sha256:" + hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()
    return TrustConfig(
        authorities=tuple(authorities),
        require_tlog=require_tlog,
        sigstore=roots,
        fingerprint=fingerprint,
        tlog_lookup=lookup,
        keyless_timestamp_without_tlog=keyless_stamp,
    )


def keyless_options(kl: Mapping[str, Any]) -> dict[str, Any]:
    """The optional keys of a keyless authority (``authorities[].keyless``) as
    :class:`KeylessAuthority` fields: the exact-match Fulcio extensions, ``insecureIgnoreSct``
    and ``useSignedTimestamps``. Shared with the CLI's flags (``cli/trust_flags.py``). Raises
    :class:`ConfigError` whose detail starts with the key (the caller prefixes the path)."""
    from .verify.keyless import EXTENSION_KEYS

    extensions: list[tuple[str, str]] = []
    for key in EXTENSION_KEYS:
        if key not in kl or kl[key] is None:
            continue
        value = kl[key]
        if not isinstance(value, str) or not value or value != value.strip() or len(value) > 1024:
            raise ConfigError(
                f"{key}: must be the exact, non-empty value of the certificate extension (no surrounding spaces), got {value!r}",
                hint="omit the key to leave that extension unchecked",
            )
        extensions.append((key, value))
    return {
        "extensions": tuple(extensions),
        "insecure_ignore_sct": bool(kl.get("insecureIgnoreSct", False)),
        "use_signed_timestamps": bool(kl.get("useSignedTimestamps", False)),
    }


def _build_tlog_lookup(doc: dict[str, Any], roots: SigstoreRoots | None, ctx: _Ctx) -> TlogLookup | None:
    """``attestation.tlogLookup``: the optional online Rekor lookup (off by default; refused
    with ``offline: true``; needs ``trustRoots.sigstore.rekorUrl`` and a Rekor key to check with)."""
    lk = _get(doc, "attestation.tlogLookup", {}) or {}
    timeout = float(lk.get("timeoutSeconds", 1.0))
    _positive(ctx, "attestation.tlogLookup.timeoutSeconds", timeout)
    max_bytes = int(lk.get("maxResponseBytes", 1 << 20))
    _positive(ctx, "attestation.tlogLookup.maxResponseBytes", max_bytes)
    if not lk.get("enabled", False):
        return None
    if roots is not None and roots.offline:
        raise ctx.error(
            "attestation.tlogLookup.enabled",
            "the online Rekor lookup cannot be enabled with attestation.trustRoots.offline: true (air-gapped)",
            hint="set tlogLookup.enabled: false, or offline: false if the provider may reach Rekor",
        )
    url = roots.rekor_url if roots is not None else ""
    if not url:
        raise ctx.error(
            "attestation.tlogLookup.enabled",
            "the online Rekor lookup needs attestation.trustRoots.sigstore.rekorUrl (the Rekor to ask)",
            hint="e.g. rekorUrl: https://rekor.sigstore.dev, with that Rekor's key in bundlePath or rekorPublicKey",
        )
    from .verify.rekor_lookup import check_rekor_url

    try:
        url = check_rekor_url(url)
    except ValueError as exc:
        raise ctx.error("attestation.trustRoots.sigstore.rekorUrl", str(exc), hint="an http(s) URL such as https://rekor.sigstore.dev") from exc
    return TlogLookup(rekor_url=url, timeout_seconds=timeout, max_response_bytes=max_bytes)


def _check_regexp(ctx: _Ctx, path: str, pattern: str) -> None:
    import re2

    try:
        re2.compile(pattern)
    except Exception as exc:  # noqa: BLE001 - re2 raises its own error type
        raise ctx.error(path, f"not a valid RE2 regular expression: {exc}") from exc


def _build_roots(doc: dict[str, Any], ctx: _Ctx) -> SigstoreRoots | None:
    tr = _get(doc, "attestation.trustRoots", {}) or {}
    sg = tr.get("sigstore") or {}
    offline = bool(tr.get("offline", False))
    bundle = tr.get("bundlePath")
    # tsaCertChain alone (a private RFC 3161 TSA for key signers) does not switch on public-good Sigstore
    enabled = sg.get("enabled", any(k != "tsaCertChain" for k in sg))
    tsa_chain = b""
    if sg.get("tsaCertChain"):
        tsa_chain = ctx.read("attestation.trustRoots.sigstore.tsaCertChain", sg["tsaCertChain"], what="TSA certificate chain")
        from .verify import trustroot as _tr

        try:
            _tr.load_tsa_chain(tsa_chain, str(ctx.resolve(sg["tsaCertChain"])))
        except ConfigError as exc:
            raise ctx.error("attestation.trustRoots.sigstore.tsaCertChain", exc.detail, hint=exc.hint) from exc
    if not bundle and not enabled and not tsa_chain:
        if offline:
            raise ctx.error("attestation.trustRoots.offline", "offline: true needs bundlePath (a sigstore trusted_root.json)")
        return None
    trusted_root = b""
    if bundle:
        trusted_root = ctx.read("attestation.trustRoots.bundlePath", bundle, what="trust bundle")
        try:
            from .verify import trustroot

            trustroot.load_trusted_root(trusted_root, str(ctx.resolve(bundle)))
        except ImportError:  # pragma: no cover - the verification package always ships it
            pass
        except ConfigError as exc:
            raise ctx.error("attestation.trustRoots.bundlePath", exc.detail, hint=exc.hint) from exc
    pem = {}
    for key in ("trustedRootPem", "rekorPublicKey", "ctlogPublicKey"):
        if sg.get(key):
            pem[key] = ctx.read(f"attestation.trustRoots.sigstore.{key}", sg[key], what=key)
    tuf = _build_tuf(sg["tuf"], ctx) if sg.get("tuf") else None
    if tuf is not None and offline:
        raise ctx.error(
            "attestation.trustRoots.sigstore.tuf",
            "offline: true cannot be combined with a TUF mirror (a mirror is read over the network)",
            hint="for an air-gapped provider, export the mirror's trusted_root.json and set bundlePath to it",
        )
    public_good = enabled and not bundle and not pem and tuf is None
    if public_good and offline:
        raise ctx.error(
            "attestation.trustRoots",
            "offline: true but the only trust roots configured are public-good Sigstore (fetched online)",
            hint="set bundlePath to a trusted_root.json, or trustedRootPem/rekorPublicKey/ctlogPublicKey",
        )
    if "trustedRootPem" not in pem and pem and not bundle:
        raise ctx.error("attestation.trustRoots.sigstore.trustedRootPem", "a private instance needs its Fulcio root (trustedRootPem)")
    return SigstoreRoots(
        trusted_root_json=trusted_root,
        trusted_root_source=str(ctx.resolve(bundle)) if bundle else "",
        fulcio_roots_pem=pem.get("trustedRootPem", b""),
        rekor_public_key_pem=pem.get("rekorPublicKey", b""),
        ctlog_public_key_pem=pem.get("ctlogPublicKey", b""),
        tsa_chain_pem=tsa_chain,
        public_good=public_good,
        offline=offline,
        fulcio_url=sg.get("fulcioUrl", ""),
        rekor_url=sg.get("rekorUrl", ""),
        ctlog_url=sg.get("ctlogUrl", ""),
        tuf=tuf,
    )


def _build_tuf(t: dict[str, Any], ctx: _Ctx) -> TufMirror:
    """``trustRoots.sigstore.tuf``: a custom TUF mirror (``cosign initialize --mirror --root``)."""
    from .verify import tuf as tufmod

    base = "attestation.trustRoots.sigstore.tuf"
    if not t.get("mirror"):
        raise ctx.error(f"{base}.mirror", "missing: the base URL of the TUF repository (as cosign initialize --mirror)")
    if not t.get("root"):
        raise ctx.error(f"{base}.root", "missing: the repository's trusted root.json, obtained out of band (as cosign initialize --root)")
    try:
        url = tufmod.check_mirror_url(t["mirror"])
    except ConfigError as exc:
        raise ctx.error(f"{base}.mirror", exc.detail, hint=exc.hint) from exc
    root = ctx.read(f"{base}.root", t["root"], what="TUF root metadata")
    try:
        tufmod.check_root_metadata(root, str(ctx.resolve(t["root"])))
    except ConfigError as exc:
        raise ctx.error(f"{base}.root", exc.detail, hint=exc.hint) from exc
    refresh = float(t.get("refreshSeconds", 3600.0))
    stale = float(t.get("maxStaleSeconds", 86400.0))
    _positive(ctx, f"{base}.refreshSeconds", refresh)
    _positive(ctx, f"{base}.maxStaleSeconds", stale)
    if stale < refresh:
        raise ctx.error(f"{base}.maxStaleSeconds", f"{stale:g} is less than refreshSeconds ({refresh:g}): material would expire before its first refresh")
    fetch_timeout = float(t.get("fetchTimeoutSeconds", 10.0))
    _positive(ctx, f"{base}.fetchTimeoutSeconds", fetch_timeout)
    if fetch_timeout > 300:
        raise ctx.error(f"{base}.fetchTimeoutSeconds", f"{fetch_timeout:g} is more than 300: one refresh must end in bounded time")
    return TufMirror(
        url=url,
        root_json=root,
        root_source=str(ctx.resolve(t["root"])),
        cache_dir=str(ctx.resolve(t["cacheDir"])) if t.get("cacheDir") else "",
        refresh_seconds=refresh,
        max_stale_seconds=stale,
        fetch_timeout_seconds=fetch_timeout,
    )


def _positive(ctx: _Ctx, path: str, value: float, *, allow_zero: bool = False) -> None:
    if not math.isfinite(value):
        raise ctx.error(path, f"must be a finite number, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ctx.error(path, f"must be {'zero or more' if allow_zero else 'greater than zero'}, got {value}")


def _section(doc: dict[str, Any], name: str, cls: type, mapping: dict[str, str], ctx: _Ctx, **extra: Any) -> Any:
    values: dict[str, Any] = dict(extra)
    for yaml_key, attr in mapping.items():
        v = _get(doc, f"{name}.{yaml_key}")
        if v is None:
            continue
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            _positive(ctx, f"{name}.{yaml_key}", v, allow_zero=yaml_key in ("retries", "negativeTtlSeconds", "ttlSeconds", "digestTtlSeconds", "transientMemorySeconds"))
            if isinstance(getattr(cls(), attr), float):
                v = float(v)
        values[attr] = v
    return cls(**values)


def _build(doc: dict[str, Any], ctx: _Ctx) -> Config:
    trust = _build_trust(doc, ctx)
    reg = doc.get("registries") or {}
    docker_config = _get(doc, "registries.auth.dockerConfig", "")
    if docker_config:
        ctx.read("registries.auth.dockerConfig", docker_config, what="docker config")
        docker_config = str(ctx.resolve(docker_config))
    for i, pat in enumerate(reg.get("allow") or []):
        if not pat or any(c in pat for c in "/ @"):
            raise ctx.error(f"registries.allow[{i}]", f"{pat!r} is not a host[:port] glob", hint="e.g. registry.example.com, *.internal.example.com, localhost:5000")
    registries = RegistriesConfig(
        allow=tuple(reg["allow"]) if reg.get("allow") is not None else RegistriesConfig.allow,
        insecure=tuple(reg.get("insecure") or ()),
        allow_private=bool(reg.get("allowPrivate", False)),
        docker_config=docker_config,
    )
    tls_doc = _get(doc, "server.tls", {}) or {}
    tls_paths = {}
    for key in ("cert", "key", "clientCA"):
        if tls_doc.get(key):
            ctx.read(f"server.tls.{key}", tls_doc[key], what=f"TLS {key}")
            tls_paths[key] = str(ctx.resolve(tls_doc[key]))
    if bool(tls_paths.get("cert")) != bool(tls_paths.get("key")):
        raise ctx.error("server.tls", "cert and key go together: set both or neither")
    if tls_paths.get("clientCA") and not tls_paths.get("cert"):
        raise ctx.error("server.tls.clientCA", "mTLS (clientCA) needs TLS: set server.tls.cert and server.tls.key")
    server = _section(
        doc,
        "server",
        ServerConfig,
        {
            "host": "host",
            "port": "port",
            "deadlineSeconds": "deadline_seconds",
            "maxKeys": "max_keys",
            "maxKeyLength": "max_key_length",
            "maxBodyBytes": "max_body_bytes",
            "workers": "workers",
            "threads": "threads",
            "verifyConcurrency": "verify_concurrency",
            "transientMemorySeconds": "transient_memory_seconds",
        },
        ctx,
        tls=TLSConfig(cert=tls_paths.get("cert", ""), key=tls_paths.get("key", ""), client_ca=tls_paths.get("clientCA", "")),
    )
    if not 0 < server.port < 65536:
        raise ctx.error("server.port", f"must be 1–65535, got {server.port}")
    limits = _section(
        doc,
        "limits",
        LimitsConfig,
        {
            "manifestBytes": "manifest_bytes",
            "blobBytes": "blob_bytes",
            "envelopeBytes": "envelope_bytes",
            "referrers": "referrers",
            "attestationsPerImage": "attestations_per_image",
            "attestationBytesPerImage": "attestation_bytes_per_image",
            "attestationBytesPerRequest": "attestation_bytes_per_request",
            "platformManifests": "platform_manifests",
            "indexDepth": "index_depth",
            "verdictBytes": "verdict_bytes",
            "responseBytes": "response_bytes",
            "unsignedStringBytes": "unsigned_string_bytes",
            "unsignedAnnotations": "unsigned_annotations",
            "storeRowsPerTenantDigest": "store_rows_per_tenant_digest",
            "connectTimeoutSeconds": "connect_timeout_seconds",
            "readTimeoutSeconds": "read_timeout_seconds",
            "retries": "retries",
        },
        ctx,
    )
    cache = _section(
        doc,
        "cache",
        CacheConfig,
        {
            "ttlSeconds": "ttl_seconds",
            "negativeTtlSeconds": "negative_ttl_seconds",
            "digestTtlSeconds": "digest_ttl_seconds",
            "maxBytes": "max_bytes",
            "redisUrl": "redis_url",
        },
        ctx,
    )
    if cache.redis_url and not cache.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ctx.error("cache.redisUrl", f"{cache.redis_url!r} is not a redis:// , rediss:// or unix:// URL")
    dsn = _get(doc, "store.dsn") or f"sqlite:///{default_data_dir() / 'store.db'}"
    if not dsn.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ctx.error("store.dsn", f"{dsn!r} is neither sqlite:///PATH nor postgresql://…")
    tokens = []
    seen_tenants: set[str] = set()
    for i, t in enumerate(_get(doc, "importApi.tokens", []) or []):
        path = f"importApi.tokens[{i}]"
        if not t.get("tenant") or not t.get("tokenFile"):
            raise ctx.error(path, "each token needs 'tenant' and 'tokenFile'")
        if t["tenant"] in seen_tenants:
            raise ctx.error(f"{path}.tenant", f"tenant {t['tenant']!r} has two tokens; one token file per tenant")
        seen_tenants.add(t["tenant"])
        secret = ctx.read(f"{path}.tokenFile", t["tokenFile"], what="token").strip()
        if len(secret) < 16:
            raise ctx.error(f"{path}.tokenFile", "the token is shorter than 16 bytes; use a long random token (e.g. openssl rand -hex 32)")
        tokens.append(ImportToken(tenant=t["tenant"], token=secret, source=str(ctx.resolve(t["tokenFile"]))))
    if len({tok.token for tok in tokens}) != len(tokens):
        raise ctx.error("importApi.tokens", "two tenants share one token: a token must identify exactly one tenant")
    import_api = ImportApiConfig(
        tokens=tuple(tokens), max_body_bytes=int(_get(doc, "importApi.maxBodyBytes", ImportApiConfig.max_body_bytes))
    )
    level = str(_get(doc, "logging.level", "INFO")).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ctx.error("logging.level", f"{level!r} is not one of DEBUG, INFO, WARNING, ERROR")
    fmt = _get(doc, "logging.format", "json")
    if fmt not in ("json", "text"):
        raise ctx.error("logging.format", f"{fmt!r} is not json or text")
    return Config(
        trust=trust,
        registries=registries,
        server=server,
        limits=limits,
        cache=cache,
        store=StoreConfig(dsn=dsn),
        import_api=import_api,
        logging=LoggingConfig(level=level, format=fmt),
        source=ctx.source,
    )


# --------------------------------------------------------------------------- entry points


def find_config_path(
    explicit: str | None = None, env: Mapping[str, str] | None = None, *, named_only: bool = False
) -> str | None:
    """``--config``, else ``$STELLAOPS_CONFIG``, else ``./stellaops.yaml`` if present, else None.

    With ``named_only`` the ``./stellaops.yaml`` step is left out: only a file the operator named
    counts (the verify commands, threat T-A12)."""
    env = os.environ if env is None else env
    if explicit:
        return explicit
    if env.get("STELLAOPS_CONFIG"):
        return env["STELLAOPS_CONFIG"]
    if named_only:
        return None
    return DEFAULT_FILE if os.path.exists(DEFAULT_FILE) else None


def unnamed_working_directory_config(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """``./stellaops.yaml`` when it exists and only the working-directory fallback would have found
    it (no ``--config``, no ``$STELLAOPS_CONFIG``); else None. What ``named_only`` leaves unread."""
    env = os.environ if env is None else env
    if explicit or env.get("STELLAOPS_CONFIG"):
        return None
    return DEFAULT_FILE if os.path.exists(DEFAULT_FILE) else None


# What a ``./stellaops.yaml`` found only in the working directory (not named by ``--config`` or
# ``$STELLAOPS_CONFIG``) may not set, for the commands that still read it (threat T-A13): in CI the
# working directory is a checkout whoever controls the repository writes. Everything that decides
# trust or where signing goes (the whole ``attestation`` section: authorities, trust roots, Fulcio,
# Rekor, CT log, TUF mirror, tlogLookup, insecureIgnoreSct), that weakens transport security
# (plain HTTP, private addresses) or that picks credentials (the docker config). A non-sqlite
# ``store.dsn`` (a network database, whose host libpq would send $PGPASSWORD / ~/.pgpass and whose
# sslmode the file chooses) is left out as well: see _strip_unnamed.
UNNAMED_IGNORED: tuple[str, ...] = (
    "attestation",
    "registries.insecure",
    "registries.allowPrivate",
    "registries.auth",
)


def _strip_unnamed(doc: dict[str, Any]) -> tuple[str, ...]:
    """Remove the :data:`UNNAMED_IGNORED` keys (and a network ``store.dsn``) from an already
    schema-checked document; return the dotted keys that were set and are now left out."""
    dropped: list[str] = []
    for dotted in UNNAMED_IGNORED:
        parent_path, _, key = dotted.rpartition(".")
        parent = _get(doc, parent_path) if parent_path else doc
        if not isinstance(parent, dict) or key not in parent:
            continue
        value = parent.pop(key)
        if isinstance(value, dict) and dotted == "attestation":  # name the sub-keys the user wrote
            dropped.extend(f"{dotted}.{k}" for k, v in value.items() if v is not None)
        elif value is not None:
            dropped.append(dotted)
    store = doc.get("store")
    dsn = store.get("dsn") if isinstance(store, dict) else None
    if isinstance(dsn, str) and dsn.strip() and not dsn.strip().startswith("sqlite:"):
        del store["dsn"]
        dropped.append("store.dsn (a network database)")
    return tuple(dropped)


def parse_config(
    text: str,
    *,
    source: str = "<string>",
    base_dir: str | Path = ".",
    env: Mapping[str, str] | None = None,
    unnamed: bool = False,
) -> Config:
    """Parse and build a configuration. With ``unnamed`` (the text is an unnamed
    ``./stellaops.yaml``) the keys of :data:`UNNAMED_IGNORED` are checked, then left out, before
    the environment overrides (the user's own) are applied; :attr:`Config.ignored` names them."""
    ctx = _Ctx(source, Path(base_dir))
    try:
        doc = yaml.safe_load(text) if text.strip() else {}
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(source, exc) from exc
    except yaml.YAMLError as exc:
        raise ctx.error("", f"not valid YAML: {exc}") from exc
    except RecursionError as exc:
        raise ctx.error("", "nested too deeply to be a configuration") from exc
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ctx.error("", f"the top level must be a mapping, got {type(doc).__name__}")
    _check(ctx, doc, _SCHEMA, "")
    ignored = _strip_unnamed(doc) if unnamed else ()
    _apply_env(doc, os.environ if env is None else env, ctx)
    _check(ctx, doc, _SCHEMA, "")
    config = _build(doc, ctx)
    if ignored:
        from dataclasses import replace

        config = replace(config, ignored=ignored)
    return config


def _yaml_error(source: str, exc: yaml.MarkedYAMLError) -> ConfigError:
    """One line, ``FILE:LINE:COLUMN: not valid YAML: PROBLEM`` (1-based, as editors count)."""
    mark = exc.problem_mark or exc.context_mark
    problem = " ".join(str(exc.problem or exc.context or "syntax error").split())
    if mark is None:
        return ConfigError(f"{source}: not valid YAML: {problem}")
    return ConfigError(f"{source}:{mark.line + 1}:{mark.column + 1}: not valid YAML: {problem}")


def load_config(
    path: str | None = None, *, env: Mapping[str, str] | None = None, named_only: bool = False, unnamed_limits: bool = False
) -> Config:
    """Load the configuration the way the ``stella`` commands and the provider do; with
    ``named_only`` only a file named by ``path`` or ``$STELLAOPS_CONFIG`` is read (else the
    built-in defaults, with the environment overrides), never ``./stellaops.yaml`` on its own.
    With ``unnamed_limits`` an unnamed ``./stellaops.yaml`` is read without the keys of
    :data:`UNNAMED_IGNORED` (:attr:`Config.ignored` lists those it set)."""
    env = os.environ if env is None else env
    unnamed = unnamed_limits and unnamed_working_directory_config(path, env) is not None
    found = find_config_path(path, env, named_only=named_only)
    if found is None:
        return parse_config("", source="<defaults>", env=env)
    p = Path(found)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"configuration file {found!r} does not exist", hint="pass --config FILE or set STELLAOPS_CONFIG") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"configuration file {found!r} cannot be read: {exc}") from exc
    return parse_config(text, source=str(p), base_dir=p.resolve().parent, env=env, unnamed=unnamed and not named_only)


def describe(config: Config) -> dict[str, Any]:
    """What the configuration trusts and how it runs, without secrets (``stella config check``)."""
    t = config.trust
    auths: list[dict[str, Any]] = []
    for a in t.authorities:
        if isinstance(a, KeyAuthority):
            auths.append({"name": a.name, "kind": "key", "keyId": a.key_id, "path": a.path})
        else:
            entry: dict[str, Any] = {
                "name": a.name,
                "kind": "keyless",
                "issuer": a.issuer or f"regexp:{a.issuer_regexp}",
                "subject": a.subject or f"regexp:{a.subject_regexp}",
            }
            if a.extensions:  # shown only when set: what stella config check printed before stays the same
                entry["extensions"] = dict(a.extensions)
            if a.insecure_ignore_sct:
                entry["insecureIgnoreSct"] = True
            if a.use_signed_timestamps:
                entry["useSignedTimestamps"] = True
            auths.append(entry)
    roots: dict[str, Any] | None = None
    if t.sigstore is not None:
        s = t.sigstore
        roots = {
            "publicGood": s.public_good,
            "offline": s.offline,
            "trustedRoot": s.trusted_root_source or None,
            "privateFulcioRoot": bool(s.fulcio_roots_pem),
            "rekorUrl": s.rekor_url or None,
            "tlogLookup": t.tlog_lookup is not None,
        }
        if s.tuf is not None:
            roots["tufMirror"] = s.tuf.url
    return {
        "source": config.source,
        "trustFingerprint": t.fingerprint,
        "authorities": auths,
        "requireTlog": t.require_tlog,
        "keylessTimestampWithoutTlog": t.keyless_timestamp_without_tlog,
        "sigstore": roots,
        "registries": {
            "allow": list(config.registries.allow),
            "insecure": list(config.registries.insecure),
            "allowPrivate": config.registries.allow_private,
            "dockerConfig": config.registries.docker_config or None,
        },
        "server": {
            "tls": config.server.tls.enabled,
            "mtls": bool(config.server.tls.client_ca),
            "deadlineSeconds": config.server.deadline_seconds,
            "maxKeys": config.server.max_keys,
        },
        "store": _redact_dsn(config.store.dsn),
        "cache": {"backend": "redis" if config.cache.redis_url else "memory", "ttlSeconds": config.cache.ttl_seconds},
        "importApi": {"tenants": [tok.tenant for tok in config.import_api.tokens]},
    }


def _redact_dsn(dsn: str) -> str:
    if "@" in dsn and "://" in dsn:
        scheme, rest = dsn.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return dsn


