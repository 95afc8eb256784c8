"""T-A12 (docs/threat-model.md §4.6): the verify commands never take their trust from a
``./stellaops.yaml`` that only the working directory supplies.

A CI job runs ``stella attest verify IMAGE --type … --certificate-identity … --certificate-oidc-issuer …``
(or with no trust flags, "the configured authorities") from a checkout of a repository the attacker
controls. The attacker commits a ``stellaops.yaml`` naming its own Fulcio/CT/Rekor
(``trustRoots: {offline: true, bundlePath: …}``) or its own key as an authority. Before the fix the CLI
read that file through the ``./stellaops.yaml`` fallback and exited 0 on a forged keyless attestation,
or on an attestation signed with the attacker's key. cosign never reads trust from the working
directory.

The rule under test: ``stella attest verify`` and ``verify-blob-attestation`` (the commands whose exit
code is a security gate) read a configuration only when it is named (``--config FILE`` or
``$STELLAOPS_CONFIG``); an unnamed ``./stellaops.yaml`` is not read, and one line on stderr says so.
The other commands (import, attach, oci-list, config check) keep the documented lookup order.

Everything real: the offline test Sigstore (``tests/fixtures/sigstore.py``) as the attacker's own
instance, the loopback registry (ocireg), the installed ``stella`` in a subprocess whose working
directory is the checkout and whose environment has no ``STELLAOPS_CONFIG``. The subprocesses run
under an egress tripwire that refuses, before anything leaves the process, every name lookup and
connection that is not loopback (the "online" variant would go to public-good Sigstore's TUF).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from stellaops import dsse
from stellaops.config import find_config_path, load_config
from tests.fixtures.images import _push_single, loopback_client
from tests.fixtures.sigstore import IDENTITY, ISSUER, TestSigstore
from tests.hardening._support import (
    SCAN_TYPE,
    new_key,
    push_att,
    push_bundle_referrer,
    sign_envelope,
    statement,
    write_public_key,
)

STELLA = str(Path(sys.executable).with_name("stella"))
SLSA_V1 = "https://slsa.dev/provenance/v1"
NOT_READ = "./stellaops.yaml was not read"  # the start of the one-line note on stderr

# Refuses (and records) every non-loopback name lookup and connection, in the audit hook, i.e.
# before the call reaches the resolver or the network.
_TRIPWIRE = '''
import ipaddress, os, sys

_LOG = os.environ["STELLAOPS_TEST_EGRESS_LOG"]

def _loopback(host):
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host in (None, "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        return False

def _refuse(what):
    with open(_LOG, "a") as fh:
        fh.write(what + "\\n")
    raise OSError(f"test egress tripwire: {what} refused")

def _hook(event, args):
    if event == "socket.getaddrinfo" and not _loopback(args[0]):
        _refuse(f"resolve {args[0]!r}")
    elif event == "socket.connect":
        addr = args[1]
        if isinstance(addr, tuple) and addr and not _loopback(addr[0]):
            _refuse(f"connect {addr!r}")

sys.addaudithook(_hook)
'''


@dataclass
class Checkout:
    """An attacker's repository checkout: the CI job's working directory."""

    dir: Path
    image: str
    digest: str

    @property
    def config(self) -> Path:
        return self.dir / "stellaops.yaml"


@dataclass
class World:
    base: Path
    registry: str
    keyless: Checkout  # stellaops.yaml names the attacker's own Sigstore
    keyed: Checkout  # stellaops.yaml names the attacker's key as an authority
    real_root: Path  # the operator's genuine trusted_root.json (another Sigstore)
    egress_log: Path
    env: dict[str, str]

    def stella(self, cwd: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [STELLA, *args], cwd=cwd, env={**self.env, **extra_env}, capture_output=True, text=True, timeout=300, check=False
        )

    def egress(self) -> list[str]:
        return self.egress_log.read_text().splitlines() if self.egress_log.exists() else []


def _ci_env(base: Path, egress_log: Path) -> dict[str, str]:
    """The CI job's environment: no STELLAOPS_* at all, an empty HOME (no sigstore TUF cache, no
    docker credentials, no default store), and the egress tripwire."""
    site = base / "tripwire-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_TRIPWIRE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STELLAOPS_") and k not in ("DOCKER_CONFIG", "PYTHONPATH")}
    home = base / "home"
    home.mkdir()
    env.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        PYTHONPATH=str(site),
        PYTHONDONTWRITEBYTECODE="1",
        STELLAOPS_TEST_EGRESS_LOG=str(egress_log),
        STELLA_PROGRESS="0",
    )
    return env


@pytest.fixture(scope="module")
def world(ocireg: str, tmp_path_factory: pytest.TempPathFactory) -> World:
    base = tmp_path_factory.mktemp("cli-trust-source")
    client = loopback_client()

    # variant 1: a forged keyless attestation with the release identity, from the attacker's own Sigstore
    evil = TestSigstore()
    repo = "trustsource/keyless"
    digest, size = _push_single(client, ocireg, repo, "linux", "amd64")
    stmt = dsse.make_statement(f"{ocireg}/{repo}", digest, SLSA_V1, {"buildDefinition": {"buildType": "x"}, "runDetails": {"builder": {"id": IDENTITY}}})
    bundle = evil.attest(stmt, identity=IDENTITY, issuer=ISSUER).bundle_json()
    push_bundle_referrer(client, ocireg, repo, digest, size, bundle, annotated_predicate_type=SLSA_V1)
    pr1 = base / "pr-keyless"
    pr1.mkdir()
    (pr1 / "forged.bundle.json").write_bytes(bundle)
    (pr1 / "trusted_root.json").write_bytes(evil.trusted_root_json())
    (pr1 / "stellaops.yaml").write_text(
        "attestation:\n  trustRoots:\n    offline: true\n    bundlePath: trusted_root.json\nregistries:\n  allowPrivate: true\n"
    )

    # variant 2: the checkout's stellaops.yaml names the attacker's key, and an attestation signed with it
    evil_key = new_key()
    repo2 = "trustsource/keyed"
    digest2, _ = _push_single(client, ocireg, repo2, "linux", "amd64")
    envelope = sign_envelope(statement(digest2, name=f"{ocireg}/{repo2}"), [evil_key])
    push_att(client, ocireg, repo2, digest2, [envelope])
    pr2 = base / "pr-key"
    pr2.mkdir()
    (pr2 / "envelope.json").write_bytes(envelope)
    write_public_key(evil_key, pr2 / "evil.pub")
    (pr2 / "stellaops.yaml").write_text(
        "attestation:\n  authorities:\n    - name: release-key\n      key: {path: evil.pub}\n  requireTlog: false\n"
        "registries:\n  allowPrivate: true\n  insecure: ['*']\n"
    )

    real_root = base / "real_root.json"
    real_root.write_bytes(TestSigstore().trusted_root_json())
    egress_log = base / "egress.log"
    return World(
        base=base,
        registry=ocireg,
        keyless=Checkout(pr1, f"{ocireg}/{repo}@{digest}", digest),
        keyed=Checkout(pr2, f"{ocireg}/{repo2}@{digest2}", digest2),
        real_root=real_root,
        egress_log=egress_log,
        env=_ci_env(base, egress_log),
    )


KEYLESS_FLAGS = ["--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER]


def _keyless_verify(w: World, *extra: str) -> list[str]:
    return ["attest", "verify", w.keyless.image, "--type", "slsaprovenance1", *KEYLESS_FLAGS, *extra]


def _keyless_blob(w: World, *extra: str) -> list[str]:
    return ["attest", "verify-blob-attestation", "--digest", w.keyless.digest, "--bundle", "forged.bundle.json",
            "--type", "slsaprovenance1", *KEYLESS_FLAGS, *extra]  # fmt: skip


def _keyed_verify(w: World, *extra: str) -> list[str]:
    return ["attest", "verify", w.keyed.image, "--type", SCAN_TYPE, *extra]


def _keyed_blob(w: World, *extra: str) -> list[str]:
    return ["attest", "verify-blob-attestation", "--digest", w.keyed.digest, "--signature", "envelope.json", "--type", SCAN_TYPE, *extra]


def _accepted(proc: subprocess.CompletedProcess[str]) -> bool:
    """What the command printed for an accepted attestation: ``Verified OK`` (blob) or an ``OK`` line
    per verified attestation of --type (image), in text output."""
    return "Verified OK" in proc.stderr or any(line.startswith("OK ") for line in proc.stdout.splitlines())


def _note_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if NOT_READ in line]


def _assert_note(proc: subprocess.CompletedProcess[str]) -> None:
    notes = _note_lines(proc.stderr)
    assert len(notes) == 1, proc.stderr
    assert "--config ./stellaops.yaml" in notes[0], notes[0]


# -- the attack: refused ---------------------------------------------------------------------


@pytest.mark.parametrize("command", [_keyless_verify, _keyless_blob], ids=["verify", "verify-blob-attestation"])
def test_forged_keyless_attestation_is_refused_offline_from_the_attackers_checkout(world: World, command) -> None:  # type: ignore[no-untyped-def]
    """The CI gate with the identity flags and --offline: the checkout's trust root is not read, so
    there is no trust root at all, and that is said (exit 2), never exit 0."""
    proc = world.stella(world.keyless.dir, *command(world, "--offline"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "needs a trust root" in proc.stderr and "--trusted-root" in proc.stderr, proc.stderr
    assert not _accepted(proc), proc.stdout
    _assert_note(proc)


@pytest.mark.parametrize("command", [_keyless_verify, _keyless_blob], ids=["verify", "verify-blob-attestation"])
def test_forged_keyless_attestation_is_refused_online_from_the_attackers_checkout(world: World, command) -> None:  # type: ignore[no-untyped-def]
    """The attacker's exact CI command (identity flags, no --trusted-root, no --offline): as cosign, the
    trust root is public-good Sigstore's (through TUF), never the checkout's. Here that fetch cannot
    succeed (the suite's dead loopback proxy, and the tripwire behind it), so the command fails closed,
    saying it needed public-good Sigstore's trust root; nothing left loopback."""
    before = len(world.egress())
    proc = world.stella(world.keyless.dir, *command(world, "--output", "json"))
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert not _accepted(proc), proc.stdout
    assert "public-good Sigstore trust root could not be fetched" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    _assert_note(proc)
    if proc.stdout.strip():
        doc = json.loads(proc.stdout)
        assert doc.get("verified") is not True, doc
    assert world.egress()[before:] == []


@pytest.mark.parametrize("command", [_keyed_verify, _keyed_blob], ids=["verify", "verify-blob-attestation"])
def test_attacker_key_named_by_the_checkout_is_no_authority(world: World, command) -> None:  # type: ignore[no-untyped-def]
    """A CI job verifying against "the configured authorities" (no trust flags) from the checkout:
    the checkout's authorities are not read, so there is no authority (exit 2, saying how to give one)."""
    proc = world.stella(world.keyed.dir, *command(world))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no authority to verify against" in proc.stderr and "--config" in proc.stderr, proc.stderr
    assert not _accepted(proc), proc.stdout
    _assert_note(proc)
    assert world.egress() == []


class _RekorSpy:
    """A loopback HTTP listener standing in for the attacker's Rekor: records every request and
    answers "no entry" (``[]``)."""

    def __init__(self) -> None:
        import http.server
        import threading

        seen = self.requests = []  # type: list[str]

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                seen.append(f"{self.command} {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"[]")

            do_GET = do_POST = _answer

            def log_message(self, *_args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def rekor_spy():  # type: ignore[no-untyped-def]
    spy = _RekorSpy()
    yield spy
    spy.close()


def test_explicit_key_flag_takes_nothing_from_the_checkout(world: World, rekor_spy: _RekorSpy, tmp_path: Path) -> None:
    """``--key`` given on the command line (the operator's key, a genuine attestation with no log
    entry): the checkout's ``stellaops.yaml`` enabling the online Rekor lookup at the attacker's
    Rekor, with the attacker's trust root for it, is not read, so that Rekor is never asked (before
    the fix it was: its answer would have decided the log requirement)."""
    operator = new_key()
    write_public_key(operator, tmp_path / "operator.pub")
    client = loopback_client()
    repo = "trustsource/lookup"
    digest, _ = _push_single(client, world.registry, repo, "linux", "amd64")
    push_att(client, world.registry, repo, digest, [sign_envelope(statement(digest, name=f"{world.registry}/{repo}"), [operator])])
    (tmp_path / "trusted_root.json").write_bytes((world.keyless.dir / "trusted_root.json").read_bytes())
    (tmp_path / "stellaops.yaml").write_text(
        "attestation:\n"
        f"  trustRoots: {{bundlePath: trusted_root.json, sigstore: {{rekorUrl: '{rekor_spy.url}'}}}}\n"
        "  tlogLookup: {enabled: true, timeoutSeconds: 2}\n"
        "registries: {allowPrivate: true}\n"
    )
    args = ["attest", "verify", f"{world.registry}/{repo}@{digest}", "--type", SCAN_TYPE, "--key", str(tmp_path / "operator.pub")]
    proc = world.stella(tmp_path, *args)
    assert proc.returncode != 0, proc.stdout + proc.stderr  # the log entry is required and there is none
    assert not _accepted(proc), proc.stdout
    _assert_note(proc)
    assert rekor_spy.requests == [], rekor_spy.requests
    # control: the same file named on purpose is read, and its Rekor is asked
    named = world.stella(tmp_path, *args, "--config", "./stellaops.yaml")
    assert named.returncode != 0, named.stdout + named.stderr
    assert rekor_spy.requests, named.stdout + named.stderr


def test_the_operators_trusted_root_refuses_the_forgery(world: World) -> None:
    """Control of the attack: with the operator's genuine trusted root given on the command line the
    forgery is refused (before and after the fix)."""
    proc = world.stella(world.keyless.dir, *_keyless_verify(world, "--trusted-root", str(world.real_root)))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert not _accepted(proc), proc.stdout


# -- controls: a configuration named by the operator is read ----------------------------------


@pytest.mark.parametrize("named", ["--config", "STELLAOPS_CONFIG"])
@pytest.mark.parametrize("variant", ["keyless", "keyed"])
def test_a_named_configuration_is_read(world: World, named: str, variant: str) -> None:
    """The same file, named on purpose (``--config ./stellaops.yaml`` or ``$STELLAOPS_CONFIG``), is the
    operator's choice and is read: the attestation its trust accepts verifies (exit 0), no note."""
    checkout = world.keyless if variant == "keyless" else world.keyed
    base = _keyless_verify(world) if variant == "keyless" else _keyed_verify(world)
    if named == "--config":
        proc = world.stella(checkout.dir, *base, "--config", "./stellaops.yaml")
    else:
        proc = world.stella(checkout.dir, *base, STELLAOPS_CONFIG=str(checkout.config))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _accepted(proc), proc.stdout + proc.stderr
    assert _note_lines(proc.stderr) == [], proc.stderr


def test_no_note_without_a_stellaops_yaml(world: World) -> None:
    clean = world.base / "clean"
    clean.mkdir(exist_ok=True)
    proc = world.stella(clean, *_keyless_verify(world, "--offline"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert _note_lines(proc.stderr) == [], proc.stderr


def test_lookup_without_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The library function behind the rule: with ``named_only`` the fallback is never taken."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "stellaops.yaml").write_text("attestation:\n  requireTlog: false\n")
    assert find_config_path(None, {}, named_only=True) is None
    assert find_config_path(None, {"STELLAOPS_CONFIG": "/x.yaml"}, named_only=True) == "/x.yaml"
    assert find_config_path("/y.yaml", {}, named_only=True) == "/y.yaml"
    assert load_config(None, env={}, named_only=True).trust.require_tlog is True
    assert load_config(None, env={}).trust.require_tlog is False  # the other commands: still read


# -- the other commands keep the documented lookup order --------------------------------------


def test_import_still_reads_the_working_directory_config(world: World, tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    (tmp_path / "stellaops.yaml").write_text(f"store:\n  dsn: sqlite:///{db}\n")
    (tmp_path / "att.json").write_bytes((world.keyed.dir / "envelope.json").read_bytes())
    proc = world.stella(tmp_path, "attest", "import", "--envelope", "att.json", "--digest", world.keyed.digest)
    assert proc.returncode == 0, proc.stderr
    assert db.exists(), "import did not use ./stellaops.yaml's store"
    assert _note_lines(proc.stderr) == [], proc.stderr


@pytest.mark.parametrize("command", ["attach", "oci-list"])
def test_attach_and_oci_list_still_read_the_working_directory_config(world: World, tmp_path: Path, command: str) -> None:
    """./stellaops.yaml allows only registry.example.com: the loopback registry is refused, which
    only that file could have said."""
    (tmp_path / "stellaops.yaml").write_text("registries:\n  allow: [registry.example.com]\n")
    (tmp_path / "att.json").write_bytes((world.keyed.dir / "envelope.json").read_bytes())
    extra = ["--attestation", "att.json"] if command == "attach" else []
    proc = world.stella(tmp_path, "attest", command, world.keyed.image, *extra)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "REGISTRY_NOT_ALLOWED" in proc.stderr, proc.stderr


def test_config_check_still_reads_the_working_directory_config(world: World) -> None:
    proc = world.stella(world.keyed.dir, "config", "check", "--output", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["source"] == "stellaops.yaml" and [a["name"] for a in doc["authorities"]] == ["release-key"]
