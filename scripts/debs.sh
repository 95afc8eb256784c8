#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo run for real, when missing.
set -euo pipefail
need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v redis-server >/dev/null || need+=(redis-server)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v openssl >/dev/null || need+=(openssl)
command -v kubectl >/dev/null || need+=(kubectl)
command -v wrk >/dev/null || need+=(wrk)            # make bench: load generator
command -v hyperfine >/dev/null || need+=(hyperfine)  # make bench: CLI start-up
# tests/kube/test_09_image.py: the Dockerfile built with buildah from a Debian-packages base
# (mmdebstrap) and run with podman on Debian's runc (crun fails here: shared/reference)
for cmd in buildah podman runc mmdebstrap; do command -v "$cmd" >/dev/null || need+=("$cmd"); done
# a system Python that an unprivileged user can run (the container-entry test runs as nobody)
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3 python3-venv python3-pip)
if [ ${#need[@]} -gt 0 ]; then
  echo "debs: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# the Debian packages start services on install where they can; tests start their own
