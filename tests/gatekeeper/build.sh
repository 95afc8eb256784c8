#!/usr/bin/env bash
# Builds gkharness, the test harness that runs Gatekeeper v3.23.1's own
# validation engine (tests/gatekeeper/harness), with `go build` against the
# versions Gatekeeper v3.23.1 pins (go.mod/go.sum here). The binary is cached
# outside the clone, keyed by the sha256 of the harness sources, and linked to
# .tools/bin/gkharness. The first build compiles Gatekeeper, OPA and
# Kubernetes packages (about 4 minutes on 2 cores); later runs are instant.
# Usage: tests/gatekeeper/build.sh        (`make tools` calls it)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
src="$root/tests/gatekeeper/harness"
cache=${STELLAOPS_TOOLS_CACHE:-$HOME/.cache/stellaops/tools}
bin="$root/.tools/bin"
export GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

sum=$(cd "$src" && cat go.mod go.sum main.go | sha256sum | cut -c1-12)
dir="$cache/gkharness-$sum"
mkdir -p "$cache" "$bin"
if [ ! -x "$dir/bin/gkharness" ]; then
  printf 'tools: building gkharness (Gatekeeper v3.23.1 engine; first build ~4 min)\n' >&2
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/bin"
  # Build from a copy so the clone stays untouched; go.sum pins every module.
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cp "$src/go.mod" "$src/go.sum" "$src/main.go" "$work/"
  (cd "$work" && go build -trimpath -o "$dir.tmp/bin/gkharness" .)
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
fi
ln -sfn "$dir/bin/gkharness" "$bin/gkharness"
