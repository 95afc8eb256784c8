#!/usr/bin/env bash
# build-image.sh: build the provider image with buildah, from a base made of Debian's packages.
#
# Where no image registry can be reached (an air-gapped build host, or this project's test
# machines), `FROM python:3.11-slim-bookworm` cannot be pulled. The Dockerfile takes its base
# through the build argument PYTHON_IMAGE, so this script makes one with mmdebstrap from the
# Debian archive the host's apt uses (bookworm: python3 3.11, python3-venv, python3-pip,
# python-is-python3, ca-certificates), imports it into the local image store, and builds.
#
#   deploy/scripts/build-image.sh [--image NAME:TAG] [--base NAME:TAG] [--rebuild-base] [--if-missing]
#   deploy/scripts/build-image.sh --print-source-hash
#
# --if-missing builds only when the image is not in the local store yet (make image names it by
# the source hash: the sha256 of the Dockerfile and of the files .dockerignore lets in).
# Needs (Debian packages): buildah, podman, mmdebstrap; root or a working rootless setup.
# With --base, any image you already hold is used (e.g. python:3.11-slim-bookworm pulled once).
# The host's pip configuration (/etc/pip.conf) and CA bundle are mounted into the build's RUN
# steps when present, so a build behind a TLS-intercepting proxy works; neither lands in the image.
set -euo pipefail

IMAGE=localhost/stellaops/attest:0.1.0
BASE=localhost/stellaops-base:bookworm-python3.11
SUITE=bookworm
PACKAGES=python3,python3-venv,python3-pip,python-is-python3,ca-certificates
REBUILD_BASE=0
OWN_BASE=0
IF_MISSING=0
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

source_hash() {  # what the image is built from: the Dockerfile and the context .dockerignore admits
  local paths=() p
  for p in Dockerfile pyproject.toml README.md LICENSE provider deploy/scripts/healthcheck.py deploy/scripts/build-image.sh; do
    [[ -e "$REPO_ROOT/$p" ]] && paths+=("$p")
  done
  (cd "$REPO_ROOT" && find "${paths[@]}" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info*' \
      | LC_ALL=C sort | while read -r f; do printf '%s\0' "$f"; sha256sum < "$f"; done) \
    | sha256sum | cut -c1-16
}

die() { echo "build-image.sh: error: $*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --image) [[ $# -ge 2 ]] || die "--image needs a value"; IMAGE=$2; shift 2 ;;
    --base) [[ $# -ge 2 ]] || die "--base needs a value"; BASE=$2; OWN_BASE=1; shift 2 ;;
    --rebuild-base) REBUILD_BASE=1; shift ;;
    --if-missing) IF_MISSING=1; shift ;;
    --print-source-hash) source_hash; exit 0 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
for cmd in buildah podman; do command -v "$cmd" >/dev/null || die "$cmd is not installed (apt-get install $cmd)"; done
if [[ $IF_MISSING -eq 1 ]] && podman image exists "$IMAGE"; then exit 0; fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if [[ $OWN_BASE -eq 0 ]] && { [[ $REBUILD_BASE -eq 1 ]] || ! podman image exists "$BASE"; }; then
  command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed (apt-get install mmdebstrap), or pass --base IMAGE"
  echo "build-image.sh: making $BASE with mmdebstrap ($SUITE: ${PACKAGES//,/ })" >&2
  mmdebstrap --quiet --variant=minbase --include="$PACKAGES" \
    --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
    "$SUITE" "$WORK/base.tar"
  podman import --change 'CMD ["/bin/bash"]' "$WORK/base.tar" "$BASE" >/dev/null
fi
podman image exists "$BASE" || die "base image $BASE is not in the local store"

MOUNTS=()
[[ -r /etc/pip.conf ]] && MOUNTS+=(--volume /etc/pip.conf:/etc/pip.conf:ro)
[[ -r /etc/ssl/certs/ca-certificates.crt ]] && MOUNTS+=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)

echo "build-image.sh: building $IMAGE from $BASE" >&2
# chroot isolation: the RUN steps need no OCI runtime (none is configured on many build hosts);
# docker format: the OCI image format has no HEALTHCHECK
buildah bud --quiet --isolation chroot --layers=false --pull=never --format docker \
  --build-arg "PYTHON_IMAGE=$BASE" "${MOUNTS[@]+"${MOUNTS[@]}"}" \
  -t "$IMAGE" -f "$REPO_ROOT/Dockerfile" "$REPO_ROOT" >/dev/null
echo "build-image.sh: built $IMAGE" >&2
