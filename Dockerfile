# syntax=docker/dockerfile:1
# StellaOps Attest: the Gatekeeper external data provider and the `stella` CLI.
#
#   docker build -t stellaops/attest:0.1.0 .
#   docker run --read-only --tmpfs /tmp -v "$PWD/etc:/etc/stellaops:ro" -p 8443:8443 stellaops/attest:0.1.0
#
# Stage 1 builds this package as a wheel and installs it, with its runtime dependencies only,
# into a virtualenv at /opt/stellaops. Stage 2 copies that virtualenv onto a clean base (same
# image, so the interpreter path the venv points at is identical) and runs as a non-root user.
# Nothing is written outside /tmp and /var/lib/stellaops at run time, so the root filesystem
# can be read-only (Kubernetes: readOnlyRootFilesystem with emptyDir volumes on both).
# docs/install.md says how tests/integration/test_deploy_image.py exercises this file without
# a container engine (hadolint, plus the same build and entry command run from a fresh venv).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY provider/ provider/
# Extras: PostgreSQL store and Redis cache drivers, for the scale-out overlay.
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/stellaops \
 && /opt/stellaops/bin/python -m pip install --no-cache-dir "$(ls /wheels/stellaops_attest-*.whl)[postgres,redis]" \
 && /opt/stellaops/bin/python -m pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="stellaops-attest" \
      org.opencontainers.image.description="Gatekeeper external data provider verifying signed supply-chain attestations (cosign compatible)" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/stellaops/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    XDG_DATA_HOME=/var/lib \
    STELLAOPS_CONFIG=/etc/stellaops/stellaops.yaml
RUN groupadd --system --gid 10001 stellaops \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin stellaops \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/stellaops
COPY --from=build /opt/stellaops /opt/stellaops
COPY deploy/scripts/healthcheck.py /opt/stellaops/libexec/healthcheck.py
USER 10001:10001
WORKDIR /var/lib/stellaops
EXPOSE 8443
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "/opt/stellaops/libexec/healthcheck.py", "/healthz"]
# The provider: gunicorn with the shipped settings (workers, TLS/mTLS and certificate reload
# from stellaops.yaml, found through $STELLAOPS_CONFIG). Any `stella` command runs too, e.g.
#   docker run --rm stellaops/attest:0.1.0 stella config check /etc/stellaops/stellaops.yaml
CMD ["gunicorn", "--config", "python:stellaops.gunicorn_settings", "stellaops.app:create_app()"]
