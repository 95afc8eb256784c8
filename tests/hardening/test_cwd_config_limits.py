"""T-A13 (docs/threat-model.md §4.6): what a ``./stellaops.yaml`` that only the working directory
supplies (in CI: the checkout of a repository the attacker may control) can still change for the
commands that keep reading it (``stella attest sign``, ``attach``, ``import``, ``oci-list``,
``download``).

T-A12 took the verify commands off the ``./stellaops.yaml`` fallback. The same file still reached:

- ``stella attest sign --identity-token TOKEN`` with no ``--fulcio-url``: the Fulcio (and Rekor and
  trusted root) came from the file, so the checkout could have the CI job's OIDC identity token
  sent to the attacker's Fulcio (which can use it wherever the token's audience is accepted);
- ``registries.insecure`` (plain HTTP, with the user's docker credentials, to any registry),
  ``registries.auth.dockerConfig`` (whose credentials, helpers), ``store.dsn`` naming a network
  database (libpq sends ``$PGPASSWORD``/``~/.pgpass`` to the host the file names).

The rule under test (config.UNNAMED_IGNORED, applied by cli/common.load_cli_config): an unnamed
``./stellaops.yaml`` is still read for the store location (a ``sqlite:`` file), limits, ``registries.allow``,
logging; the whole ``attestation`` section (trust, Sigstore endpoints), ``registries.insecure``,
``registries.allowPrivate``, ``registries.auth`` and a non-sqlite ``store.dsn`` are left out, with one
line on stderr naming them. Named (``--config``, ``$STELLAOPS_CONFIG``) the same file is read whole.

Everything real where the project has it: the loopback private Sigstore (``fulcio_stack``: Fulcio,
CT log, Rekor) for the controls, the loopback registry (ocireg), the installed ``stella`` in a
subprocess whose working directory is the checkout, under the egress tripwire of T-A12. The
attacker's Fulcio and registry are loopback spies that record every request.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
from pathlib import Path
from typing import Iterator

import pytest

from tests.fixtures.fulcio import FulcioStack
from tests.fixtures.images import _push_single, loopback_client
from tests.hardening._support import new_key, push_att, sign_envelope, statement
from tests.hardening.test_cli_trust_source import World, world  # noqa: F401 - the T-A12 CI world (env, tripwire)

pytestmark = pytest.mark.filterwarnings("ignore:Attribute's length must be:UserWarning")

NOTE = "Note: ./stellaops.yaml is not named"  # the start of the one-line note on stderr
EMAIL = "release-bot@stellaops.test"
PTYPE = "https://stellaops.io/test/keyless/v1"


class Spy:
    """A loopback HTTP listener standing in for an attacker's service: records every request
    (method, path, Authorization header) and gives one fixed answer."""

    def __init__(self, status: int = 200, body: bytes = b"[]", headers: dict[str, str] | None = None) -> None:
        seen = self.requests = []  # type: list[tuple[str, str, str]]

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                seen.append((self.command, self.path, self.headers.get("Authorization", "")))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_HEAD = do_PUT = _answer

            def log_message(self, *_args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"http://{self.host}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def spy() -> Iterator[Spy]:
    s = Spy()
    yield s
    s.close()


def _notes(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(NOTE)]


# -- 1. keyless signing: the identity token never goes where the checkout says -------------------


@pytest.fixture
def sign_checkout(world: World, fulcio_stack: FulcioStack, spy: Spy, tmp_path: Path) -> Path:  # noqa: F811
    """The attacker's checkout: ./stellaops.yaml names the spy as Fulcio and Rekor, with a
    trusted root that would let signing start (the private Sigstore's, so a named use reaches the spy)."""
    checkout = tmp_path / "pr"
    checkout.mkdir()
    fulcio_stack.write_trusted_root(checkout / "trusted_root.json")
    (checkout / "predicate.json").write_text(json.dumps({"scanner": "stellaops-test", "critical": 0}))
    (checkout / "stellaops.yaml").write_text(
        "attestation:\n  trustRoots:\n    bundlePath: trusted_root.json\n    sigstore:\n"
        f"      fulcioUrl: {spy.url}\n      rekorUrl: {spy.url}\n"
    )
    return checkout


def _sign_args(world: World, *extra: str) -> list[str]:  # noqa: F811
    digest = "sha256:" + "ab" * 32  # given with the image: no registry is asked
    return ["attest", "sign", "--predicate", "predicate.json", "--type", PTYPE,
            "--image", f"{world.registry}/tam/app@{digest}", "--output-file", "out.json", *extra]  # fmt: skip


def test_keyless_sign_never_sends_the_token_to_the_checkouts_fulcio(
    world: World, fulcio_stack: FulcioStack, spy: Spy, sign_checkout: Path  # noqa: F811
) -> None:
    """Before the fix the spy got ``POST /api/v2/signingCert`` carrying the token. Now: refused
    before any connection (exit 2), the error says why and what to pass, the token is not printed."""
    token = fulcio_stack.issuer.mint(EMAIL)
    proc = world.stella(sign_checkout, *_sign_args(world, "--identity-token", token))
    assert spy.requests == [], [r[:2] for r in spy.requests]  # (the Authorization header: the token)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "keyless signing needs --fulcio-url" in proc.stderr, proc.stderr
    assert "./stellaops.yaml is not named" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert token not in proc.stdout + proc.stderr
    assert not (sign_checkout / "out.json").exists()
    assert world.egress() == []


def test_keyless_sign_with_only_fulcio_flag_takes_no_rekor_from_the_checkout(
    world: World, fulcio_stack: FulcioStack, spy: Spy, sign_checkout: Path  # noqa: F811
) -> None:
    """``--fulcio-url`` alone: the Rekor the checkout names is not used either (the signature
    would be entered there); refused before any connection, Fulcio included."""
    token = fulcio_stack.issuer.mint(EMAIL)
    proc = world.stella(sign_checkout, *_sign_args(world, "--identity-token", token, "--fulcio-url", fulcio_stack.url,
                                                   "--trusted-root", "trusted_root.json"))
    assert spy.requests == [], [r[:2] for r in spy.requests]  # (the Authorization header: the token)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "keyless signing needs --rekor-url" in proc.stderr, proc.stderr
    assert token not in proc.stdout + proc.stderr


def test_keyless_sign_with_flags_works_from_the_checkout(
    world: World, fulcio_stack: FulcioStack, spy: Spy, sign_checkout: Path  # noqa: F811
) -> None:
    """Control: endpoints and trusted root on the command line (the private Sigstore's) sign from
    the same checkout, exit 0, a bundle; the spy is never asked."""
    token = fulcio_stack.issuer.mint(EMAIL)
    proc = world.stella(sign_checkout, *_sign_args(
        world, "--identity-token", token, "--fulcio-url", fulcio_stack.url, "--rekor-url", fulcio_stack.rekor.url,
        "--trusted-root", "trusted_root.json",
    ))  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((sign_checkout / "out.json").read_text())["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert spy.requests == [], [r[:2] for r in spy.requests]  # (the Authorization header: the token)
    assert len(_notes(proc.stderr)) == 1, proc.stderr  # the file's attestation section was left out, and said so
    assert token not in proc.stdout + proc.stderr


@pytest.mark.parametrize("named", ["--config", "STELLAOPS_CONFIG"])
def test_a_named_configuration_gives_the_signing_endpoints(
    world: World, fulcio_stack: FulcioStack, spy: Spy, sign_checkout: Path, named: str  # noqa: F811
) -> None:
    """Control (the test can fail): the same file named on purpose is read whole, and its Fulcio
    (the spy) is asked; a named file pointing at the private Sigstore signs (exit 0)."""
    token = fulcio_stack.issuer.mint(EMAIL)
    extra = {"STELLAOPS_CONFIG": str(sign_checkout / "stellaops.yaml")} if named == "STELLAOPS_CONFIG" else {}
    flags = ["--config", "./stellaops.yaml"] if named == "--config" else []
    proc = world.stella(sign_checkout, *_sign_args(world, "--identity-token", token, *flags), **extra)
    assert proc.returncode != 0, proc.stdout + proc.stderr  # the spy is no Fulcio
    assert [r[:2] for r in spy.requests][:1] == [("POST", "/api/v2/signingCert")], spy.requests
    assert _notes(proc.stderr) == [], proc.stderr
    good = sign_checkout / "operator.yaml"
    good.write_text(
        "attestation:\n  trustRoots:\n    bundlePath: trusted_root.json\n    sigstore:\n"
        f"      fulcioUrl: {fulcio_stack.url}\n      rekorUrl: {fulcio_stack.rekor.url}\n"
    )
    extra = {"STELLAOPS_CONFIG": str(good)} if named == "STELLAOPS_CONFIG" else {}
    flags = ["--config", str(good)] if named == "--config" else []
    ok = world.stella(sign_checkout, *_sign_args(world, "--identity-token", fulcio_stack.issuer.mint(EMAIL), *flags), **extra)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert _notes(ok.stderr) == [], ok.stderr


# -- 2. registries, credentials and the store ----------------------------------------------------


def test_unnamed_config_rule_in_the_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The one place of the rule: what an unnamed ./stellaops.yaml may still set (store file,
    limits, registries.allow) and what it may not; the note names what was left out; named, the
    file is read whole. ``registries.insecure`` from the checkout would make the client speak
    plain HTTP (with the user's credentials) to a public registry name."""
    from stellaops.cli.common import load_cli_config
    from stellaops.clients import make_registry_client

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STELLAOPS_CONFIG", raising=False)
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text("{}")
    (tmp_path / "stellaops.yaml").write_text(
        "registries:\n  allow: ['registry.example.com', '127.0.0.1:*']\n  insecure: ['*']\n  allowPrivate: true\n"
        "  auth: {dockerConfig: docker/config.json}\n"
        f"store: {{dsn: 'sqlite:///{tmp_path}/s.db'}}\nlimits: {{referrers: 7}}\n"
        "attestation:\n  requireTlog: false\n"
    )
    config = load_cli_config(None)
    err = capsys.readouterr().err
    assert config.registries.insecure == () and config.registries.docker_config == "" and config.registries.allow_private is False
    assert config.trust.require_tlog is True
    assert config.registries.allow == ("registry.example.com", "127.0.0.1:*")
    assert config.store.dsn == f"sqlite:///{tmp_path}/s.db" and config.limits.referrers == 7
    assert make_registry_client(config, for_cli=True).policy.scheme("registry.example.com") == "https"
    notes = _notes(err)
    assert len(notes) == 1, err
    for key in ("attestation.requireTlog", "registries.insecure", "registries.allowPrivate", "registries.auth"):
        assert key in notes[0], notes[0]
    assert "--config ./stellaops.yaml" in notes[0]

    named = load_cli_config("./stellaops.yaml")
    assert _notes(capsys.readouterr().err) == []
    assert named.registries.insecure == ("*",) and named.registries.docker_config.endswith("config.json")
    assert named.trust.require_tlog is False
    assert make_registry_client(named, for_cli=True).policy.scheme("registry.example.com") == "http"

    # a network database from the checkout: not used (its host would get $PGPASSWORD / ~/.pgpass)
    (tmp_path / "stellaops.yaml").write_text("store: {dsn: 'postgresql://ci@127.0.0.1:1/att?sslmode=disable'}\n")
    assert load_cli_config(None).store.dsn.startswith("sqlite:")  # the default store
    assert "store.dsn" in _notes(capsys.readouterr().err)[0]
    # nothing to leave out: no note
    (tmp_path / "stellaops.yaml").write_text("limits: {referrers: 9}\n")
    assert load_cli_config(None).limits.referrers == 9
    assert _notes(capsys.readouterr().err) == []


@pytest.fixture
def registry_spy() -> Iterator[Spy]:
    """The attacker's registry: asks every client for Basic credentials, records what it gets."""
    s = Spy(status=401, body=b'{"errors":[{"code":"UNAUTHORIZED","message":"x"}]}',
            headers={"WWW-Authenticate": 'Basic realm="spy"'})  # fmt: skip
    yield s
    s.close()


def _docker_config_checkout(base: Path, registry: str) -> Path:
    checkout = base / "pr-docker"
    checkout.mkdir()
    (checkout / "evil-docker").mkdir()
    auth = base64.b64encode(b"from-the-checkout:secret").decode()
    (checkout / "evil-docker" / "config.json").write_text(json.dumps({"auths": {registry: {"auth": auth}}}))
    (checkout / "stellaops.yaml").write_text("registries:\n  auth: {dockerConfig: evil-docker/config.json}\n  insecure: ['*']\n")
    stmt = statement("sha256:" + "cd" * 32, name=f"{registry}/app")
    (checkout / "att.json").write_bytes(sign_envelope(stmt, [new_key()]))
    return checkout


@pytest.mark.parametrize("command", ["oci-list", "download", "attach"])
def test_the_checkouts_docker_config_is_not_used(world: World, registry_spy: Spy, tmp_path: Path, command: str) -> None:  # noqa: F811
    """``registries.auth.dockerConfig`` of an unnamed ./stellaops.yaml is not used: the registry
    never receives the credentials it holds (before the fix it did); named, it is used (control)."""
    checkout = _docker_config_checkout(tmp_path, registry_spy.host)
    image = f"{registry_spy.host}/app@sha256:{'cd' * 32}"
    extra = ["--attestation", "att.json"] if command == "attach" else []
    args = ["attest", command, image, *extra]
    proc = world.stella(checkout, *args)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    sent = [r[2] for r in registry_spy.requests if r[2]]
    assert sent == [], sent
    notes = _notes(proc.stderr)
    assert len(notes) == 1 and "registries.auth" in notes[0] and "registries.insecure" in notes[0], proc.stderr
    assert world.egress() == []
    named = world.stella(checkout, *args, "--config", "./stellaops.yaml")
    assert named.returncode != 0
    assert any(r[2].startswith("Basic ") for r in registry_spy.requests), registry_spy.requests


def test_import_uses_the_checkouts_store_file_not_its_network_database(world: World, tmp_path: Path) -> None:  # noqa: F811
    """The store location stays the file's to choose when it is a local sqlite file (the seed
    guide's ./stellaops.yaml); a network database named by an unnamed file is not used (before the
    fix the import tried 127.0.0.1:1 and failed): the default store is, and the note says so."""
    client = loopback_client()
    digest, _ = _push_single(client, world.registry, "tam/import", "linux", "amd64")
    envelope = sign_envelope(statement(digest, name=f"{world.registry}/tam/import"), [new_key()])
    push_att(client, world.registry, "tam/import", digest, [envelope])
    (tmp_path / "att.json").write_bytes(envelope)
    db = tmp_path / "store.db"
    (tmp_path / "stellaops.yaml").write_text(f"store:\n  dsn: sqlite:///{db}\nregistries:\n  insecure: ['*']\n")
    proc = world.stella(tmp_path, "attest", "import", "--envelope", "att.json", "--digest", digest)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert db.exists(), "import did not use ./stellaops.yaml's store file"
    assert len(_notes(proc.stderr)) == 1 and "registries.insecure" in proc.stderr, proc.stderr

    (tmp_path / "stellaops.yaml").write_text("store:\n  dsn: postgresql://ci@127.0.0.1:1/attestations?connect_timeout=2\n")
    proc = world.stella(tmp_path, "attest", "import", "--envelope", "att.json", "--digest", digest)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    notes = _notes(proc.stderr)
    assert len(notes) == 1 and "store.dsn" in notes[0], proc.stderr
    assert (world.base / "home" / ".local" / "share" / "stellaops").exists()  # the default store
    named = world.stella(tmp_path, "attest", "import", "--envelope", "att.json", "--digest", digest, "--config", "./stellaops.yaml")
    assert named.returncode == 3, named.stdout + named.stderr  # control: named, the database is tried (and is not there)


def test_oci_list_from_the_seed_checkout_has_no_note(world: World, tmp_path: Path) -> None:  # noqa: F811
    """The seed guide's ./stellaops.yaml (a sqlite store) is read by oci-list --imported without a note."""
    client = loopback_client()
    digest, _ = _push_single(client, world.registry, "tam/seed", "linux", "amd64")
    (tmp_path / "stellaops.yaml").write_text(f"store:\n  dsn: sqlite:///{tmp_path}/store.db\nlimits: {{referrers: 50}}\n")
    proc = world.stella(tmp_path, "attest", "oci-list", f"{world.registry}/tam/seed@{digest}", "--imported")
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    assert _notes(proc.stderr) == [], proc.stderr
    assert (tmp_path / "store.db").exists()
