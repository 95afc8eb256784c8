"""T-A11: `stella -d` (the HTTP trace) never prints a credential: no headers (Authorization),
no userinfo, no query value that may be a secret (pre-signed blob URLs), against a real
registry that requires basic auth."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from stellaops.cli import main
from stellaops.cli.trace import redact_url

from tests.fixtures.images import loopback_client, push_test_image


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_debug_trace_never_shows_credentials(capsys: pytest.CaptureFixture[str], htpasswd_registry: str,
                                             tmp_path: Path) -> None:
    from tests.fixtures.registries import HTPASSWD_PASSWORD, HTPASSWD_USER
    from stellaops.registry_auth import DockerConfig

    secret = base64.b64encode(f"{HTPASSWD_USER}:{HTPASSWD_PASSWORD}".encode()).decode()
    docker = tmp_path / "docker.json"
    docker.write_text(json.dumps({"auths": {htpasswd_registry: {"auth": secret}}}))
    client = loopback_client(auth=DockerConfig(str(docker)))
    push_test_image(htpasswd_registry, "private/app", "v1", client=client)
    (tmp_path / "c.yaml").write_text(f"registries:\n  auth:\n    dockerConfig: {docker}\n")
    rc, out, err = run(capsys, "attest", "oci-list", f"{htpasswd_registry}/private/app:v1", "--config",
                       str(tmp_path / "c.yaml"), "-d")
    assert rc == 0, err
    assert "-> 401" in err and "-> 200" in err  # the challenge, then the authenticated call
    assert HTPASSWD_PASSWORD not in err + out and secret not in err + out and "Authorization" not in err


def test_redact_url_keeps_the_api_and_drops_secrets() -> None:
    assert redact_url("http://r:5000/v2/a/blobs/uploads/u?_state=abc&digest=sha256:00") == \
        "http://r:5000/v2/a/blobs/uploads/u?_state=…&digest=sha256:00"
    assert redact_url("https://s3.example/b?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA") == \
        "https://s3.example/b?X-Amz-Signature=…&X-Amz-Credential=…"
    assert redact_url("https://user:pw@r/token?scope=repository:a:pull&service=reg") == \
        "https://r/token?scope=repository:a:pull&service=reg"
    assert redact_url("http://r/v2/a/referrers/sha256:00?artifactType=application/x") == \
        "http://r/v2/a/referrers/sha256:00?artifactType=application/x"
