"""config.py: every error names the file and the key path; env overrides; defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stellaops.config import describe, find_config_path, load_config, parse_config
from stellaops.errors import ConfigError
from stellaops.trust import KeyAuthority, KeylessAuthority


@pytest.fixture()
def pubkey(tmp_path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    p = tmp_path / "cosign.pub"
    p.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return p


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    p = tmp_path / "stellaops.yaml"
    p.write_text(text)
    return load_config(str(p), env=env or {})


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, env={})
    assert cfg.source == "<defaults>"
    assert cfg.trust.require_tlog is True and cfg.trust.authorities == ()
    assert cfg.server.deadline_seconds == 1.5 and cfg.store.dsn.startswith("sqlite:///")


def test_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_config_path(None, {}) is None
    (tmp_path / "stellaops.yaml").write_text("{}")
    assert find_config_path(None, {}) == "stellaops.yaml"
    assert find_config_path(None, {"STELLAOPS_CONFIG": "/x.yaml"}) == "/x.yaml"
    assert find_config_path("/y.yaml", {"STELLAOPS_CONFIG": "/x.yaml"}) == "/y.yaml"


def test_key_authority_loads_and_fingerprints(tmp_path: Path, pubkey: Path) -> None:
    cfg = _load(tmp_path, f"attestation:\n  authorities:\n    - name: release\n      key: {{path: {pubkey.name}}}\n  requireTlog: false\n")
    (auth,) = cfg.trust.authorities
    assert isinstance(auth, KeyAuthority) and auth.name == "release" and auth.key_id.startswith("sha256:")
    assert cfg.trust.require_tlog is False and cfg.trust.fingerprint.startswith("sha256:")
    again = _load(tmp_path, f"attestation:\n  authorities:\n    - name: release\n      key: {{path: {pubkey.name}}}\n")
    assert again.trust.fingerprint != cfg.trust.fingerprint  # requireTlog is part of trust


def test_unknown_key_names_path_and_suggests(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, "server:\n  deadlineseconds: 2\n")
    assert "server.deadlineseconds: unknown key" in info.value.detail and "deadlineSeconds" in info.value.hint


def test_wrong_type_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"registries.allowPrivate: must be true or false"):
        _load(tmp_path, "registries:\n  allowPrivate: 'yes'\n")


def test_missing_key_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"attestation.authorities\[0\].key.path: public key file .*nope.pub.* does not exist"):
        _load(tmp_path, "attestation:\n  authorities:\n    - name: a\n      key: {path: nope.pub}\n")


def test_unparsable_key_is_named(tmp_path: Path) -> None:
    (tmp_path / "bad.pub").write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ConfigError, match=r"attestation.authorities\[0\].key.path: .*bad.pub"):
        _load(tmp_path, "attestation:\n  authorities:\n    - name: a\n      key: {path: bad.pub}\n")


def test_authority_needs_exactly_one_kind(tmp_path: Path, pubkey: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one of 'key' or 'keyless'"):
        _load(tmp_path, f"attestation:\n  authorities:\n    - name: a\n      key: {{path: {pubkey.name}}}\n      keyless: {{issuer: x, subject: y}}\n")


def test_duplicate_authority_names(tmp_path: Path, pubkey: Path) -> None:
    entry = f"    - name: a\n      key: {{path: {pubkey.name}}}\n"
    with pytest.raises(ConfigError, match=r"authorities\[1\].name: authority name 'a' is used twice"):
        _load(tmp_path, "attestation:\n  authorities:\n" + entry + entry)


def test_keyless_without_roots_is_contradictory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no Sigstore trust roots"):
        _load(tmp_path, "attestation:\n  authorities:\n    - name: ci\n      keyless: {issuer: https://i, subjectRegExp: '^a$'}\n")


def test_keyless_bad_regexp(tmp_path: Path) -> None:
    text = "attestation:\n  trustRoots: {sigstore: {enabled: true}}\n  authorities:\n    - name: ci\n      keyless: {issuer: https://i, subjectRegExp: '(unclosed'}\n"
    with pytest.raises(ConfigError, match=r"keyless.subjectRegExp: not a valid RE2"):
        _load(tmp_path, text)


def test_keyless_public_good(tmp_path: Path) -> None:
    text = (
        "attestation:\n  trustRoots:\n    sigstore: {enabled: true, fulcioUrl: https://fulcio.sigstore.dev, rekorUrl: https://rekor.sigstore.dev}\n"
        "  authorities:\n    - name: ci\n      keyless: {issuer: https://oauth2.sigstore.dev/auth, subject: scanner@stellaops.io}\n"
    )
    cfg = _load(tmp_path, text)
    (auth,) = cfg.trust.authorities
    assert isinstance(auth, KeylessAuthority) and auth.subject == "scanner@stellaops.io"
    assert cfg.trust.sigstore is not None and cfg.trust.sigstore.public_good


def test_offline_needs_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="offline: true needs bundlePath"):
        _load(tmp_path, "attestation:\n  trustRoots: {offline: true}\n")


def test_env_override(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "server: {deadlineSeconds: 1.5}\n", env={"STELLAOPS_SERVER__DEADLINESECONDS": "2", "STELLAOPS_CACHE__REDISURL": "redis://127.0.0.1:1/0"})
    assert cfg.server.deadline_seconds == 2.0 and cfg.cache.redis_url == "redis://127.0.0.1:1/0"


def test_env_override_unknown_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="STELLAOPS_SERVER__NOPE: environment override names unknown key"):
        _load(tmp_path, "{}", env={"STELLAOPS_SERVER__NOPE": "1"})


def test_tls_cert_without_key(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("x")
    with pytest.raises(ConfigError, match="cert and key go together"):
        _load(tmp_path, "server:\n  tls: {cert: c.pem}\n")


def test_import_tokens_are_read_and_never_printed(tmp_path: Path) -> None:
    (tmp_path / "acme.token").write_text("s3cr3t-token-0123456789\n")
    cfg = _load(tmp_path, "importApi:\n  tokens: [{tenant: acme, tokenFile: acme.token}]\n")
    (tok,) = cfg.import_api.tokens
    assert tok.token == b"s3cr3t-token-0123456789" and "s3cr3t" not in repr(tok)
    assert "s3cr3t" not in str(describe(cfg))


def test_short_token_refused(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("short")
    with pytest.raises(ConfigError, match=r"importApi.tokens\[0\].tokenFile: the token is shorter"):
        _load(tmp_path, "importApi:\n  tokens: [{tenant: acme, tokenFile: t}]\n")


def test_bad_registry_pattern(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"registries.allow\[0\]"):
        _load(tmp_path, "registries: {allow: ['registry.example.com/team']}\n")


def test_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        _load(tmp_path, "a: [\n")


def test_seed_air_gapped_snippet_needs_existing_bundle(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"attestation.trustRoots.bundlePath: trust bundle file"):
        parse_config("attestation:\n  trustRoots:\n    offline: true\n    bundlePath: /nonexistent/trust-bundle.json\n", env={})


@pytest.mark.parametrize(
    "text, match",
    [
        ("attestation: {authorities: [null]}", r"attestation.authorities\[0\]: an empty entry"),
        ("importApi: {tokens: [null]}", r"importApi.tokens\[0\]: an empty entry"),
        ("server: {deadlineSeconds: .nan}", "server.deadlineSeconds: must be a finite number"),
        ("cache: {ttlSeconds: .inf}", "cache.ttlSeconds: must be a finite number"),
        ("a: " + "[" * 5000 + "]" * 5000, "nested too deeply|not valid YAML"),
    ],
)
def test_hostile_configs_are_config_errors(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _load(tmp_path, text)


def test_transient_memory_zero_turns_it_off(tmp_path: Path) -> None:
    # the field's comment and docs/configuration.md: 0 turns the transient memory off
    cfg = _load(tmp_path, "server: {transientMemorySeconds: 0}\n")
    assert cfg.server.transient_memory_seconds == 0.0
    with pytest.raises(ConfigError, match="server.transientMemorySeconds: must be zero or more"):
        _load(tmp_path, "server: {transientMemorySeconds: -1}\n")


def test_yaml_error_names_file_line_and_column(tmp_path: Path) -> None:
    # issue 21 item 9: one line naming the file, the line and the column of the mistake
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, "server:\n  workers: 2\n  threads: [4\n")
    message = info.value.detail
    source = str(tmp_path / "stellaops.yaml")
    assert message.startswith(f"{source}:"), message
    assert "\n" not in message
    line, column = message[len(source) + 1 :].split(":")[:2]
    assert (int(line), int(column)) >= (3, 1)
    assert ": not valid YAML: " in message


def test_yaml_error_in_a_string_names_its_source() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("a: [\n", env={})
    assert info.value.detail == "<string>:2:1: not valid YAML: expected the node content, but found '<stream end>'"
