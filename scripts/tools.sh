#!/usr/bin/env bash
# Builds the pinned Go tools the tests and the demo run for real, from source with
# `go install module@version` (never a prebuilt download), into a cache outside the
# clone (~/.cache/stellaops/tools) and links them into ./.tools/bin. Idempotent and
# quiet when everything is already built. Usage: scripts/tools.sh [NAME...]
set -euo pipefail

OPA_VERSION=v1.17.1          # the OPA Gatekeeper v3.23 pins
COSIGN_VERSION=v3.1.3        # newest cosign v3 release checked in shared/reference
COSIGN2_VERSION=v2.6.4       # legacy behaviour (optional: STELLAOPS_TOOLS_COSIGN2=1)
GGCR_VERSION=v0.21.7         # go-containerregistry: registry, crane, our ocireg launcher
# A private Sigstore on loopback for the keyless, timestamp and online-Rekor tests:
TSA_VERSION=v2.1.3           # sigstore/timestamp-authority (v2.1.4+ need Go 1.27)
FULCIO_VERSION=v1.8.8        # sigstore/fulcio, run with an ephemeral CA
REKOR_VERSION=v1.5.4         # sigstore/rekor v1 server (v1.5.5+ need Go 1.27)
TRILLIAN_VERSION=v1.7.3      # the Trillian log rekor v1.5.4 pins (PostgreSQL storage)
CTGO_VERSION=v1.4.0          # certificate-transparency-go ct_server: the CT log Fulcio submits to (on Trillian)
# The real admission path on loopback (tests/kube): shared/reference/kubernetes-loopback.md
ETCD_VERSION=v3.6.8          # etcd server for the API server
KUBE_VERSION=v1.36.3         # kube-apiserver and kubectl (Gatekeeper v3.23.1's client libraries are v0.36.x)
GATEKEEPER_VERSION=v3.23.1   # the Gatekeeper manager itself (the same pins as tests/gatekeeper/harness)
HELM_VERSION=v4.3.2          # helm lint/template/install of deploy/helm/stellaops-attest

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${STELLAOPS_TOOLS_CACHE:-$HOME/.cache/stellaops/tools}
bin="$root/.tools/bin"
mkdir -p "$cache" "$bin"
export GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

log() { printf 'tools: %s\n' "$*" >&2; }

# go_tool NAME VERSION MODULE_PATH@VERSION [BINARY]
go_tool() {
  local name=$1 version=$2 pkg=$3 binary=${4:-$1}
  local dir="$cache/$name-$version"
  if [ ! -x "$dir/bin/$binary" ]; then
    log "building $name $version (go install $pkg)"
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/bin"
    GOBIN="$dir.tmp/bin" go install "$pkg"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  ln -sfn "$dir/bin/$binary" "$bin/$name"
}

# ocireg: our launcher of ggcr's registry library with the referrers API on.
build_ocireg() {
  local src="$root/tools/ocireg"
  local sum; sum=$(cat "$src/main.go" "$src/go.mod" | sha256sum | cut -c1-12)
  local dir="$cache/ocireg-$GGCR_VERSION-$sum"
  if [ ! -x "$dir/bin/ocireg" ]; then
    log "building ocireg (go-containerregistry $GGCR_VERSION registry library)"
    local work; work=$(mktemp -d)
    cp "$src/main.go" "$src/go.mod" "$work/"
    (cd "$work" && go mod tidy >/dev/null 2>&1 && mkdir -p "$dir.tmp/bin" && go build -o "$dir.tmp/bin/ocireg" .)
    rm -rf "$dir" "$work" && mv "$dir.tmp" "$dir"
  fi
  ln -sfn "$dir/bin/ocireg" "$bin/ocireg"
}

# kyverno: optional (~10 minutes, 320 MB). Its module has `replace` lines, so `go install`
# refuses it: build from a writable copy of the module source the Go proxy serves.
KYVERNO_VERSION=v1.19.0
build_kyverno() {
  local dir="$cache/kyverno-$KYVERNO_VERSION"
  if [ ! -x "$dir/bin/kyverno" ]; then
    log "building kyverno CLI $KYVERNO_VERSION (optional, slow)"
    local src work
    src=$(go mod download -json "github.com/kyverno/kyverno@$KYVERNO_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    work=$(mktemp -d)
    cp -r "$src/." "$work/" && chmod -R u+w "$work"
    mkdir -p "$dir.tmp/bin"
    (cd "$work" && go build -o "$dir.tmp/bin/kyverno" ./cmd/cli/kubectl-kyverno)
    rm -rf "$dir" "$work" && mv "$dir.tmp" "$dir"
  fi
  ln -sfn "$dir/bin/kyverno" "$bin/kyverno"
}

# module_copy MODULE@VERSION: a writable copy of the module source the Go proxy serves
# (printed path; the caller removes it). Modules with `replace` lines cannot be
# `go install`ed, so etcd and kubernetes are built from such a copy.
module_copy() {
  local src work
  src=$(cd / && GOFLAGS=-mod=mod go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$src" ] || { echo "tools: go mod download $1 gave no directory" >&2; exit 1; }
  work=$(mktemp -d)
  cp -r "$src/." "$work/" && chmod -R u+w "$work"
  printf '%s\n' "$work"
}

# etcd: the server module's go.mod points its sibling modules at ../api etc. (absent
# from the module zip) and pins FORBIDDEN_DEPENDENCY replaces; drop both and let the
# published versions its require lines name be used.
build_etcd() {
  local dir="$cache/etcd-$ETCD_VERSION"
  if [ ! -x "$dir/bin/etcd" ]; then
    log "building etcd $ETCD_VERSION (~5 min cold on 2 cores)"
    local work; work=$(module_copy "go.etcd.io/etcd/server/v3@$ETCD_VERSION")
    sed -i -e '/^replace (/,/^)/d' -e '/FORBIDDEN_DEPENDENCY/d' "$work/go.mod"
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/bin"
    (cd "$work" && GOWORK=off GOFLAGS="-buildvcs=false -mod=mod" go build -trimpath -o "$dir.tmp/bin/etcd" .)
    rm -rf "$dir" "$work" && mv "$dir.tmp" "$dir"
  fi
  ln -sfn "$dir/bin/etcd" "$bin/etcd"
}

# kube-apiserver and kubectl from k8s.io/kubernetes: its go.work, go.work.sum and
# vendor/ each break a module-mode build, and its 33 `k8s.io/X => ./staging/src/k8s.io/X`
# replaces point at directories the module zip lacks: rewrite them to the published
# k8s.io/X v0.<minor>.<patch> (all 33 are published at the same version).
build_kube() {
  local dir="$cache/kubernetes-$KUBE_VERSION"
  if [ ! -x "$dir/bin/kube-apiserver" ] || [ ! -x "$dir/bin/kubectl" ]; then
    log "building kube-apiserver and kubectl $KUBE_VERSION (~18 min cold on 2 cores)"
    local work staging="v0.${KUBE_VERSION#v1.}"
    work=$(module_copy "k8s.io/kubernetes@$KUBE_VERSION")
    rm -rf "$work/go.work" "$work/go.work.sum" "$work/vendor"
    sed -i -E "s#^([[:space:]]*)(k8s\.io/[A-Za-z0-9._-]+) => \./staging/src/k8s\.io/[A-Za-z0-9._-]+[[:space:]]*\$#\1\2 => \2 $staging#" "$work/go.mod"
    if grep -q 'staging/src' "$work/go.mod"; then
      echo "tools: kubernetes go.mod still points at staging/ after the rewrite" >&2; exit 1
    fi
    local v=${KUBE_VERSION#v} ldflags
    ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
    ldflags+=" -X k8s.io/component-base/version.gitMajor=${v%%.*} -X k8s.io/component-base/version.gitMinor=$(echo "$v" | cut -d. -f2)"
    ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/bin"
    (cd "$work" && GOWORK=off GOFLAGS="-buildvcs=false -mod=mod" \
      go build -trimpath -ldflags "$ldflags" -o "$dir.tmp/bin/" ./cmd/kube-apiserver ./cmd/kubectl)
    rm -rf "$dir" "$work" && mv "$dir.tmp" "$dir"
  fi
  ln -sfn "$dir/bin/kube-apiserver" "$bin/kube-apiserver"
  ln -sfn "$dir/bin/kubectl" "$bin/kubectl"
}

# gatekeeper: the manager (module root, no replaces). Its Helm chart (CRDs, values.yaml,
# webhook templates) is copied beside the binary, so the fixture installs the CRDs of the
# very version it runs and renders the webhooks from the chart's own defaults.
build_gatekeeper() {
  local dir="$cache/gatekeeper-$GATEKEEPER_VERSION"
  local mod="github.com/open-policy-agent/gatekeeper/v3@$GATEKEEPER_VERSION"
  if [ ! -x "$dir/bin/gatekeeper" ]; then
    log "building gatekeeper $GATEKEEPER_VERSION manager (~16 min cold on 2 cores)"
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/bin"
    GOBIN="$dir.tmp/bin" go install -trimpath "$mod"
    rm -rf "$dir/bin" && mkdir -p "$dir" && mv "$dir.tmp/bin" "$dir/bin" && rm -rf "$dir.tmp"
  fi
  if [ ! -f "$dir/chart/values.yaml" ]; then
    local src; src=$(cd / && go mod download -json "$mod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    rm -rf "$dir/chart.tmp" && cp -r "$src/charts/gatekeeper" "$dir/chart.tmp" && chmod -R u+w "$dir/chart.tmp"
    rm -rf "$dir/chart" && mv "$dir/chart.tmp" "$dir/chart"
  fi
  ln -sfn "$dir/bin/gatekeeper" "$bin/gatekeeper"
  ln -sfn "$dir/chart" "$root/.tools/gatekeeper-chart"
}

want=("$@")
if [ ${#want[@]} -eq 0 ]; then
  want=(opa ocireg registry crane cosign timestamp-server fulcio rekor-server trillian_log_server trillian_log_signer createtree ct_server etcd kubernetes gatekeeper helm)
  # optional tools: linked when a previous `scripts/tools.sh cosign2|kyverno` built them
  [ -x "$cache/cosign2-$COSIGN2_VERSION/bin/cosign" ] && want+=(cosign2)
  [ -x "$cache/kyverno-$KYVERNO_VERSION/bin/kyverno" ] && want+=(kyverno)
fi
for t in "${want[@]}"; do
  case "$t" in
    opa) go_tool opa "$OPA_VERSION" "github.com/open-policy-agent/opa@$OPA_VERSION" ;;
    cosign) go_tool cosign "$COSIGN_VERSION" "github.com/sigstore/cosign/v3/cmd/cosign@$COSIGN_VERSION" ;;
    cosign2) go_tool cosign2 "$COSIGN2_VERSION" "github.com/sigstore/cosign/v2/cmd/cosign@$COSIGN2_VERSION" cosign ;;
    registry) go_tool registry "$GGCR_VERSION" "github.com/google/go-containerregistry/cmd/registry@$GGCR_VERSION" ;;
    crane) go_tool crane "$GGCR_VERSION" "github.com/google/go-containerregistry/cmd/crane@$GGCR_VERSION" ;;
    timestamp-server) go_tool timestamp-server "$TSA_VERSION" "github.com/sigstore/timestamp-authority/v2/cmd/timestamp-server@$TSA_VERSION" ;;
    fulcio) go_tool fulcio "$FULCIO_VERSION" "github.com/sigstore/fulcio@$FULCIO_VERSION" ;;
    rekor-server) go_tool rekor-server "$REKOR_VERSION" "github.com/sigstore/rekor/cmd/rekor-server@$REKOR_VERSION" ;;
    trillian_log_server|trillian_log_signer|createtree)
      go_tool "$t" "$TRILLIAN_VERSION" "github.com/google/trillian/cmd/$t@$TRILLIAN_VERSION" ;;
    ct_server) go_tool ct_server "$CTGO_VERSION" "github.com/google/certificate-transparency-go/trillian/ctfe/ct_server@$CTGO_VERSION" ;;
    ocireg) build_ocireg ;;
    kyverno) build_kyverno ;;
    etcd) build_etcd ;;
    kubernetes|kube-apiserver|kubectl) build_kube ;;
    gatekeeper) build_gatekeeper ;;
    helm) go_tool helm "$HELM_VERSION" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" ;;
    *) echo "tools: unknown tool $t" >&2; exit 2 ;;
  esac
done
