"""Sigstore trust material through TUF, offline: a real TUF repository (python-tuf metadata signed
with fresh keys, ``tests/fixtures/tuf_repo.py``) publishes the offline test Sigstore's
``trusted_root.json`` on 127.0.0.1, and keyless attestations verify through it. Each way a mirror
can mislead us (foreign root, expired timestamp, altered target, unsigned root rotation) is
refused; an unreachable mirror fails closed as a transient error; root rotation is followed; the
refresh policy keeps the last good material for a bounded time only. A trickling mirror is cut at
the fetch deadline; a stalled one never holds a request thread (held material is served, and
without material each caller fails within its own deadline).

Every socket this module opens goes to loopback, and sigstore-python's public-good TUF host is
never even resolved (audit hook below)."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from stellaops import dsse
from stellaops.candidate import Candidate
from stellaops.cli import cli, exit_code_for
from stellaops.config import describe, parse_config
from stellaops.errors import ConfigError, StellaError
from stellaops.registry import deadline_scope
from stellaops.trust import KeylessAuthority, SigstoreRoots, TrustConfig
from stellaops.verify import trustroot, tuf
from stellaops.verify.attestation import verify_candidate
from tests.fixtures.sigstore import IDENTITY, ISSUER, TestSigstore
from tests.fixtures.tuf_repo import TufRepo, TufWorld

PTYPE = "stellaops.io/predicates/scan-result@v1"
DIGEST = "sha256:" + hashlib.sha256(b"app image").hexdigest()
PUBLIC_GOOD_HOST = "tuf-repo-cdn.sigstore.dev"

# -- loopback only: every connect and every name lookup of this module is recorded -----------

_SEEN: list[tuple[str, Any]] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _SEEN is not None and event in ("socket.connect", "socket.getaddrinfo"):
        _SEEN.append((event, args[1] if event == "socket.connect" else args[0]))


sys.addaudithook(_audit)


def _is_loopback(host: Any) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def loopback_only() -> Iterator[list[tuple[str, Any]]]:
    global _SEEN
    _SEEN = seen = []
    try:
        yield seen
    finally:
        _SEEN = None
    for event, where in seen:
        host = where[0] if isinstance(where, tuple) else where
        assert host != PUBLIC_GOOD_HOST, f"{event} {where}: sigstore's production TUF was contacted"
        assert _is_loopback(host), f"{event} {where}: a test reached beyond loopback"


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # sigstore-python (platformdirs) and our default TUF cache both follow XDG
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


# -- helpers ---------------------------------------------------------------------------------


def _attestation(ss: TestSigstore) -> Candidate:
    st = dsse.make_statement("app", DIGEST, PTYPE, {"scannedAt": "2026-11-24T10:00:00Z", "findings": []})
    return ss.attest(st).bundle()


def _trust(roots: SigstoreRoots) -> TrustConfig:
    return TrustConfig(authorities=(KeylessAuthority(name="ci", issuer=ISSUER, subject=IDENTITY),), require_tlog=True, sigstore=roots)


def _verify(ss: TestSigstore, roots: SigstoreRoots) -> Any:
    return verify_candidate(_attestation(ss), DIGEST, _trust(roots))


def _fetch_error(world: TufWorld, **kw: Any) -> StellaError:
    with pytest.raises(StellaError) as info:
        tuf.fetch_from_mirror(world.mirror(**kw))
    return info.value


# -- the TUF path verifies --------------------------------------------------------------------


def test_keyless_bundle_verifies_through_tuf_mirror(
    tuf_world: TufWorld, test_sigstore: TestSigstore, loopback_only: list[tuple[str, Any]]
) -> None:
    result = _verify(test_sigstore, SigstoreRoots(tuf=tuf_world.mirror()))
    assert result.verified, result.errors
    assert result.signers[0].subject == IDENTITY
    served = tuf_world.server.requests
    assert "/timestamp.json" in served and any(p.endswith(".trusted_root.json") for p in served)
    # the verified target and metadata are cached where configured
    assert list((tuf_world.cache_dir / "targets").glob("*trusted_root.json"))
    assert (tuf_world.cache_dir / "metadata" / "timestamp.json").exists()
    # the loopback guard sees the client's connections (so it is not vacuous)
    port = int(tuf_world.url.rsplit(":", 1)[1])
    assert ("socket.connect", ("127.0.0.1", port)) in loopback_only


def test_configured_tuf_mirror_verifies(tuf_world: TufWorld, test_sigstore: TestSigstore, tmp_path: Path) -> None:
    text = f"""
attestation:
  trustRoots:
    sigstore:
      tuf: {{mirror: "{tuf_world.url}/", root: {tuf_world.root_path}, cacheDir: tuf-cache, refreshSeconds: 60, maxStaleSeconds: 600, fetchTimeoutSeconds: 5}}
  authorities:
    - name: ci
      keyless: {{issuer: "{ISSUER}", subject: "{IDENTITY}"}}
"""
    config = parse_config(text, source="stellaops.yaml", base_dir=tmp_path)
    roots = config.trust.sigstore
    assert roots is not None and roots.tuf is not None and not roots.public_good
    assert roots.tuf.url == tuf_world.url and roots.tuf.cache_dir == str(tmp_path / "tuf-cache")
    assert (roots.tuf.refresh_seconds, roots.tuf.max_stale_seconds, roots.tuf.fetch_timeout_seconds) == (60.0, 600.0, 5.0)
    assert describe(config)["sigstore"]["tufMirror"] == tuf_world.url
    result = verify_candidate(_attestation(test_sigstore), DIGEST, config.trust)
    assert result.verified, result.errors
    assert (tmp_path / "tuf-cache" / "metadata" / "root.json").exists()


def test_cli_verify_blob_through_tuf_mirror(tuf_world: TufWorld, test_sigstore: TestSigstore, tmp_path: Path) -> None:
    blob = tmp_path / "artifact.bin"
    blob.write_bytes(b"artifact bytes")
    digest = "sha256:" + hashlib.sha256(b"artifact bytes").hexdigest()
    st = dsse.make_statement("artifact.bin", digest, PTYPE, {"scannedAt": "2026-11-24T10:00:00Z", "findings": []})
    bundle = tmp_path / "att.bundle"
    bundle.write_bytes(test_sigstore.attest(st).bundle_json())
    rc, out = _cli(
        str(blob), "--bundle", str(bundle), "--tuf-mirror", tuf_world.url, "--tuf-root", str(tuf_world.root_path),
        "--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER, "--type", PTYPE, "--output", "json",
        env={"XDG_CACHE_HOME": str(tmp_path / "cli-cache")},
    )  # fmt: skip
    assert rc == 0, out
    doc = json.loads(out[out.index("{") : out.rindex("}") + 1])
    assert doc["verified"] is True and doc["attestation"]["signers"][0]["subject"] == IDENTITY
    assert list((tmp_path / "cli-cache" / "stellaops" / "tuf").glob("*/targets/*trusted_root.json"))


def _cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    res: Result = CliRunner().invoke(cli, ["attest", "verify-blob-attestation", *args], env={"STELLAOPS_CONFIG": "", **(env or {})})
    if isinstance(res.exception, StellaError):
        return exit_code_for(res.exception), res.output + f"{res.exception}\n{res.exception.hint}"
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.output


# -- how a mirror can mislead us --------------------------------------------------------------


def test_rejects_root_not_matching_repository_keys(tuf_world: TufWorld, tmp_path: Path) -> None:
    foreign = TufRepo(tmp_path / "other-repo", {"trusted_root.json": b"{}"})
    err = _fetch_error(tuf_world, root_json=foreign.root_bytes(1))
    assert isinstance(err, tuf.TufVerificationError) and err.reason == "CONFIG_INVALID" and not err.transient
    assert "not signed by the keys of the trusted root" in err.detail and "belongs to this mirror" in err.hint
    assert not list((tuf_world.cache_dir / "targets").glob("*"))  # nothing downloaded


def test_rejects_expired_timestamp(tuf_world: TufWorld) -> None:
    tuf_world.repo.expire_timestamp()
    err = _fetch_error(tuf_world)
    assert isinstance(err, tuf.TufVerificationError) and "timestamp.json is expired" in err.detail


def test_rejects_target_whose_hash_does_not_match(tuf_world: TufWorld, test_sigstore: TestSigstore) -> None:
    original = test_sigstore.trusted_root_json()
    forged = original.replace(b"fulcio.stellaops.test", b"fulcio.stellaops.evil")
    assert len(forged) == len(original) and forged != original
    tuf_world.repo.tamper_target("trusted_root.json", forged)
    err = _fetch_error(tuf_world)
    assert isinstance(err, tuf.TufVerificationError)
    assert "Observed hash" in err.detail and "altered" in err.hint
    # and verification through it fails closed with that reason, not verified
    result = _verify(test_sigstore, SigstoreRoots(tuf=tuf_world.mirror(cache_dir=tuf_world.cache_dir / "second")))
    assert not result.verified and result.errors[0].reason == "CONFIG_INVALID"


def test_rejects_root_rotation_not_signed_by_previous_root(tuf_world: TufWorld) -> None:
    tuf_world.repo.rotate_root(signed_by_old=False)
    err = _fetch_error(tuf_world)
    assert isinstance(err, tuf.TufVerificationError) and "root" in err.detail.lower()


def test_follows_root_rotation(tuf_world: TufWorld, test_sigstore: TestSigstore) -> None:
    assert tuf.fetch_from_mirror(tuf_world.mirror()) == test_sigstore.trusted_root_json()
    # the operators rotate every key (root v2 signed by v1 and v2 keys) and publish a new trusted root
    other = TestSigstore()
    tuf_world.repo.rotate_root()
    tuf_world.repo.add_target("trusted_root.json", other.trusted_root_json())
    tuf_world.server.requests.clear()
    assert tuf.fetch_from_mirror(tuf_world.mirror()) == other.trusted_root_json()
    assert "/2.root.json" in tuf_world.server.requests
    assert (tuf_world.cache_dir / "metadata" / "root_history" / "2.root.json").exists()
    # a client that never saw v1 -> v2 follows it too, from the v1 root it was given
    fresh = tuf.fetch_from_mirror(tuf_world.mirror(cache_dir=tuf_world.cache_dir / "fresh"))
    assert fresh == other.trusted_root_json()
    # and verification uses the new material: the old instance's attestations no longer verify
    tuf.forget()
    assert _verify(other, SigstoreRoots(tuf=tuf_world.mirror())).verified
    assert not _verify(test_sigstore, SigstoreRoots(tuf=tuf_world.mirror())).verified


def test_mirror_down_without_cache_fails_closed(tuf_world: TufWorld, test_sigstore: TestSigstore, tmp_path: Path) -> None:
    tuf_world.server.stop()
    err = _fetch_error(tuf_world)
    assert isinstance(err, tuf.TufUnavailable) and err.transient and err.reason == "TRUST_ROOT_UNAVAILABLE"
    assert f"TUF mirror {tuf_world.url} could not be reached" in err.detail
    # no verdict from verification: the error propagates (the provider reports systemError, caches nothing)
    with pytest.raises(tuf.TufUnavailable):
        _verify(test_sigstore, SigstoreRoots(tuf=tuf_world.mirror()))
    # the CLI fetches before verifying: exit 3 (transient), one clear line
    blob = tmp_path / "b"
    blob.write_bytes(b"x")
    rc, out = _cli(
        str(blob), "--bundle", str(blob), "--tuf-mirror", tuf_world.url, "--tuf-root", str(tuf_world.root_path),
        "--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER,
    )  # fmt: skip
    assert rc == 3 and "could not be reached" in out, out


def test_wrong_mirror_path_is_definitive(tuf_world: TufWorld) -> None:
    err = _fetch_error(tuf_world, url=tuf_world.url + "/not-the-repo")
    assert isinstance(err, tuf.TufVerificationError) and "HTTP 404" in err.detail


# -- refresh: TTL, last good material for a bounded time, then fail closed --------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _document(world: TufWorld, clock: _Clock) -> bytes:
    mirror = world.mirror(refresh_seconds=60.0, max_stale_seconds=600.0)
    return tuf.trusted_root_document(
        "test", lambda: tuf.fetch_from_mirror(mirror), refresh_seconds=60.0, max_stale_seconds=600.0, clock=clock
    )


def test_refresh_after_ttl_picks_up_new_material(tuf_world: TufWorld, test_sigstore: TestSigstore) -> None:
    clock = _Clock()
    assert _document(tuf_world, clock) == test_sigstore.trusted_root_json()
    other = TestSigstore().trusted_root_json()
    tuf_world.repo.add_target("trusted_root.json", other)
    tuf_world.server.requests.clear()
    clock.now += 59
    assert _document(tuf_world, clock) == test_sigstore.trusted_root_json()
    assert tuf_world.server.requests == []  # within the TTL: no request
    clock.now += 2
    # past the TTL the held material is still answered at once; the refresher fetches meanwhile
    assert _document(tuf_world, clock) == test_sigstore.trusted_root_json()
    _eventually(lambda: _document(tuf_world, clock) == other)


def _eventually(check: Callable[[], object], timeout: float = 20.0) -> None:
    """Poll ``check`` until it is true (a generous bound: only "did not hang")."""
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def test_failed_refresh_keeps_last_good_then_fails_closed(tuf_world: TufWorld, test_sigstore: TestSigstore) -> None:
    clock = _Clock()
    good = _document(tuf_world, clock)
    tuf_world.server.stop()
    clock.now += 120  # past the TTL: refresh fails, last good material is used
    assert _document(tuf_world, clock) == good
    clock.now += 10  # within the retry pause: not even asked again
    assert _document(tuf_world, clock) == good
    clock.now += 600  # older than maxStaleSeconds: fail closed
    with pytest.raises(tuf.TufUnavailable, match="more than the 600 s allowed") as info:
        _document(tuf_world, clock)
    assert info.value.transient


def test_refresh_that_does_not_verify_is_never_used(tuf_world: TufWorld, test_sigstore: TestSigstore) -> None:
    clock = _Clock()
    good = _document(tuf_world, clock)
    tuf_world.repo.expire_timestamp()
    clock.now += 120
    assert _document(tuf_world, clock) == good  # the expired repository is not trusted
    clock.now += 700
    with pytest.raises(tuf.TufVerificationError, match="expired"):
        _document(tuf_world, clock)


# -- configuration and flags: checked at start-up ---------------------------------------------


def _config(tmp_path: Path, tuf_yaml: str, extra: str = "") -> Any:
    text = f"attestation:\n  trustRoots:\n{extra}    sigstore:\n      tuf: {tuf_yaml}\n"
    return parse_config(text, source="stellaops.yaml", base_dir=tmp_path)


@pytest.mark.parametrize(
    ("tuf_yaml", "message"),
    [
        ("{mirror: 'ftp://127.0.0.1/repo', root: ROOT}", "tuf.mirror: TUF mirror 'ftp://127.0.0.1/repo' must be an http(s) URL"),
        ("{mirror: 'https://mirror.example?x=1', root: ROOT}", "must not carry a query"),
        ("{root: ROOT}", "tuf.mirror: missing"),
        ("{mirror: 'https://mirror.example'}", "tuf.root: missing"),
        ("{mirror: 'https://mirror.example', root: nowhere.json}", "does not exist"),
        ("{mirror: 'https://mirror.example', root: TRUSTED}", "tuf.root: " ),
        ("{mirror: 'https://mirror.example', root: ROOT, refreshSeconds: 600, maxStaleSeconds: 60}", "less than refreshSeconds"),
        ("{mirror: 'https://mirror.example', root: ROOT, refreshSeconds: 0}", "refreshSeconds"),
        ("{mirror: 'https://mirror.example', root: ROOT, fetchTimeoutSeconds: 0}", "fetchTimeoutSeconds"),
        ("{mirror: 'https://mirror.example', root: ROOT, fetchTimeoutSeconds: .nan}", "fetchTimeoutSeconds: must be a finite number"),
        ("{mirror: 'https://mirror.example', root: ROOT, fetchTimeoutSeconds: 3600}", "more than 300"),
        ("{mirror: 'https://mirror.example', root: ROOT, url: x}", "unknown key"),
    ],
)
def test_config_refuses_bad_tuf_settings(tuf_world: TufWorld, test_sigstore: TestSigstore, tmp_path: Path, tuf_yaml: str, message: str) -> None:
    (tmp_path / "trusted_root.json").write_bytes(test_sigstore.trusted_root_json())
    tuf_yaml = tuf_yaml.replace("ROOT", str(tuf_world.root_path)).replace("TRUSTED", str(tmp_path / "trusted_root.json"))
    with pytest.raises(ConfigError) as info:
        _config(tmp_path, tuf_yaml)
    assert message in info.value.detail
    assert info.value.detail.startswith("stellaops.yaml: attestation.trustRoots.sigstore.tuf")


def test_config_refuses_trusted_root_json_as_tuf_root(tuf_world: TufWorld, test_sigstore: TestSigstore, tmp_path: Path) -> None:
    (tmp_path / "trusted_root.json").write_bytes(test_sigstore.trusted_root_json())
    with pytest.raises(ConfigError, match="not TUF root metadata"):
        _config(tmp_path, f"{{mirror: '{tuf_world.url}', root: {tmp_path / 'trusted_root.json'}}}")


def test_config_refuses_root_not_signed_by_its_own_keys(tuf_world: TufWorld, tmp_path: Path) -> None:
    doc = json.loads(tuf_world.root_path.read_bytes())
    doc["signed"]["expires"] = "2099-01-01T00:00:00Z"  # changed after signing
    forged = tmp_path / "forged-root.json"
    forged.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="does not verify against its own keys"):
        _config(tmp_path, f"{{mirror: '{tuf_world.url}', root: {forged}}}")


def test_config_refuses_offline_with_tuf_mirror(tuf_world: TufWorld, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="offline: true cannot be combined with a TUF mirror") as info:
        _config(tmp_path, f"{{mirror: '{tuf_world.url}', root: {tuf_world.root_path}}}", extra="    offline: true\n")
    assert "bundlePath" in info.value.hint


def test_config_fingerprint_changes_with_tuf_root(tuf_world: TufWorld, tmp_path: Path) -> None:
    first = _config(tmp_path, f"{{mirror: '{tuf_world.url}', root: {tuf_world.root_path}}}").trust.fingerprint
    other = TufRepo(tmp_path / "other", {})
    (tmp_path / "other-root.json").write_bytes(other.root_bytes(1))
    second = _config(tmp_path, f"{{mirror: '{tuf_world.url}', root: {tmp_path / 'other-root.json'}}}").trust.fingerprint
    assert first != second


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tuf-mirror", "URL"], "--tuf-mirror and --tuf-root go together"),
        (["--tuf-mirror", "URL", "--tuf-root", "ROOT", "--offline"], "cannot be combined with --offline"),
        (["--tuf-mirror", "URL", "--tuf-root", "ROOT", "--trusted-root", "TRUSTED"], "cannot be combined with --trusted-root"),
        (["--tuf-mirror", "file:///etc", "--tuf-root", "ROOT"], "--tuf-mirror 'file:///etc' must be an http(s) URL"),
    ],
)
def test_cli_tuf_flag_errors(tuf_world: TufWorld, test_sigstore: TestSigstore, tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "trusted_root.json").write_bytes(test_sigstore.trusted_root_json())
    args = [a.replace("URL", tuf_world.url).replace("ROOT", str(tuf_world.root_path)).replace("TRUSTED", str(tmp_path / "trusted_root.json")) for a in args]
    rc, out = _cli("--digest", DIGEST, "--bundle", "b.json", *args, "--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER)
    assert rc == 2 and message in out, out
    assert tuf_world.server.requests == []


# -- public-good Sigstore: sigstore-python's TUF client, never online in tests ----------------


def test_public_good_offline_uses_sigstore_embedded_root(tmp_path: Path) -> None:
    """With ``offline`` sigstore-python reads the trusted root it embeds (no network); this is the
    same call the online path makes, with the production repository."""
    tuf.forget()
    material = trustroot.from_roots(SigstoreRoots(public_good=True, offline=True))
    assert material.fulcio and material.rekor and material.ctlogs
    assert material.source == "public-good Sigstore (TUF)"
    assert any("sigstore" in ca.uri for ca in material.fulcio)
    # sigstore-python populated its own cache (XDG dirs of this test), nothing else
    assert list((tmp_path / "xdg-cache").rglob("trusted_root.json"))
    tuf.forget()



# -- a slow or hostile mirror: bounded fetches, never on a request thread -----------------------


@pytest.mark.parametrize("fetch_timeout", [1.0, 3.0])  # cut in the response head / in the body
def test_trickling_mirror_is_cut_at_the_fetch_deadline(tuf_world: TufWorld, fetch_timeout: float) -> None:
    server = tuf_world.server
    server.mode = "trickle"  # a byte every 50 ms: urllib3's 10 s per-recv timeout never trips
    started = time.monotonic()
    err = _fetch_error(tuf_world, fetch_timeout_seconds=fetch_timeout)
    took = time.monotonic() - started
    assert isinstance(err, tuf.TufUnavailable) and err.transient and err.reason == "TRUST_ROOT_UNAVAILABLE"
    assert f"within the {fetch_timeout:g} s fetch deadline" in err.detail and "fetchTimeoutSeconds" in err.hint
    assert took < fetch_timeout + 5  # did not hang (a full trickled response takes over 200 s)
    # the cut was ours: the mirror saw us hang up in the middle of its response
    _eventually(lambda: server.disconnects)
    assert server.trickled_to_the_end == 0 and server.disconnects[0] - started >= fetch_timeout - 0.5
    # nothing half-read was kept as verified metadata
    assert not (tuf_world.cache_dir / "metadata" / "timestamp.json").exists()


def test_cli_against_trickling_mirror_exits_3_at_the_fetch_deadline(tuf_world: TufWorld, tmp_path: Path) -> None:
    tuf_world.server.mode = "trickle"
    blob = tmp_path / "b"
    blob.write_bytes(b"x")
    started = time.monotonic()
    rc, out = _cli(
        str(blob), "--bundle", str(blob), "--tuf-mirror", tuf_world.url, "--tuf-root", str(tuf_world.root_path),
        "--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER,
        env={"XDG_CACHE_HOME": str(tmp_path / "cli-cache")},
    )  # fmt: skip
    assert rc == 3 and "within the 10 s fetch deadline" in out, out
    assert time.monotonic() - started < tuf.FETCH_TIMEOUT_SECONDS + 10  # synchronous, but bounded
    _eventually(lambda: tuf_world.server.disconnects)


def test_held_material_is_served_while_the_refresh_is_stuck(tuf_world: TufWorld, test_sigstore: TestSigstore) -> None:
    server = tuf_world.server
    mirror = tuf_world.mirror(refresh_seconds=1.0, fetch_timeout_seconds=60.0)
    roots = SigstoreRoots(tuf=mirror)
    assert _verify(test_sigstore, roots).verified
    server.mode = "stall"
    time.sleep(1.1)  # the material is due for a refresh (and usable for maxStaleSeconds)
    assert _verify(test_sigstore, roots).verified  # answered from held material; the refresher starts
    assert server.stalled.wait(20)  # the refresher is stuck on the mirror (for up to 60 s)
    for _ in range(3):  # request threads, under a request deadline, use the held material ...
        with deadline_scope(time.monotonic() + 1.5):
            assert _verify(test_sigstore, roots).verified
    assert server.holding >= 1  # ... while the mirror still holds the refresher's connection
    # the mirror recovers with new material: the refresher's fetch completes and it is used
    other = TestSigstore()
    tuf_world.repo.add_target("trusted_root.json", other.trusted_root_json())
    server.mode = "serve"
    server.release.set()
    _eventually(lambda: _verify(other, roots).verified)
    assert not _verify(test_sigstore, roots).verified


def test_without_material_a_stalled_mirror_fails_each_caller_within_its_deadline(
    tuf_world: TufWorld, test_sigstore: TestSigstore
) -> None:
    server = tuf_world.server
    server.mode = "stall"
    roots = SigstoreRoots(tuf=tuf_world.mirror(fetch_timeout_seconds=60.0))
    outcomes: list[tuple[str, float]] = []

    def admission() -> None:
        started = time.monotonic()
        try:
            with deadline_scope(started + 1.0):
                _verify(test_sigstore, roots)
            outcomes.append(("returned", time.monotonic() - started))
        except StellaError as exc:
            assert "within the request deadline" in exc.detail, exc.detail
            outcomes.append((exc.reason, time.monotonic() - started))

    callers = [threading.Thread(target=admission) for _ in range(4)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(30)
    assert not any(t.is_alive() for t in callers), "a caller blocked on the stalled mirror"
    assert [reason for reason, _ in outcomes] == ["TRUST_ROOT_UNAVAILABLE"] * 4
    assert all(took < 10 for _, took in outcomes), outcomes  # their 1 s deadline, not the 60 s fetch
    assert server.holding >= 1  # the fetch is still held by the mirror
    # the mirror recovers: the fetch in flight completes, and the next caller gets the material
    server.mode = "serve"
    server.release.set()
    assert _verify(test_sigstore, roots).verified


def test_oversized_files_are_refused(tuf_world: TufWorld) -> None:
    # a signed targets listing that gives trusted_root.json a huge length: not downloaded
    tuf_world.repo.add_target("trusted_root.json", b" " * (tuf.TARGET_MAX_BYTES + 1))
    err = _fetch_error(tuf_world)
    assert isinstance(err, tuf.TufVerificationError) and f"more than the {tuf.TARGET_MAX_BYTES} allowed" in err.detail
    assert not any(p.endswith(".trusted_root.json") for p in tuf_world.server.requests)
    # metadata longer than its limit (here on the path of an http:// mirror): cut, nothing used
    (tuf_world.repo.dir / "timestamp.json").write_bytes(b" " * (tuf.METADATA_MAX_BYTES["timestamp_max_length"] + 1))
    err = _fetch_error(tuf_world, cache_dir=tuf_world.cache_dir / "second")
    assert isinstance(err, tuf.TufUnavailable) and "longer than allowed" in err.detail


# -- the provider fetches mirror material at start-up ----------------------------------------


def _provider_yaml(tuf_world: TufWorld, tmp_path: Path) -> str:
    return f"""
attestation:
  trustRoots:
    sigstore:
      tuf: {{mirror: "{tuf_world.url}", root: {tuf_world.root_path}, cacheDir: tuf-cache}}
  authorities:
    - name: ci
      keyless: {{issuer: "{ISSUER}", subject: "{IDENTITY}"}}
store: {{dsn: "sqlite:///{tmp_path / 'store.db'}"}}
"""


def test_provider_fetches_mirror_material_at_start_up(tuf_world: TufWorld, tmp_path: Path) -> None:
    from stellaops.app import create_app

    tuf.forget()
    create_app(parse_config(_provider_yaml(tuf_world, tmp_path), source="stellaops.yaml", base_dir=tmp_path, env={}))
    assert any(p.endswith("trusted_root.json") for p in tuf_world.server.requests), tuf_world.server.requests
    assert (tmp_path / "tuf-cache" / "metadata" / "root.json").exists()


def test_provider_starts_when_mirror_is_down(tuf_world: TufWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stellaops.app import create_app

    tuf.forget()
    tuf_world.server.stop()
    app = create_app(parse_config(_provider_yaml(tuf_world, tmp_path), source="stellaops.yaml", base_dir=tmp_path, env={}))
    assert app.test_client().get("/healthz").status_code == 200
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert any(r["msg"].startswith("trust material not fetched at start-up") and r.get("reason") == "TRUST_ROOT_UNAVAILABLE" for r in logged), logged
