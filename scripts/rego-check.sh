#!/usr/bin/env bash
# The Rego quality gates (make test runs this). Exits non-zero on any failure.
#   1. opa fmt --list is empty (rego/bundles/seed is left out: it is the seed guide's Rego v0
#      snippet kept exactly as written, which opa fmt would rewrite);
#   2. opa check --strict with Gatekeeper's capabilities (opa v1.17.1 + external_data);
#   3. opa test --coverage, once per transport (they share a package and are never loaded
#      together), each at >= REGO_COVERAGE_MIN percent (default 95);
#   4. the generated files are up to date (scripts/generate.py --check);
#   5. no rego.v1 import in what Gatekeeper loads.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OPA="${OPA:-$ROOT/.tools/bin/opa}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
CAPS="rego/build/capabilities.json"
MIN="${REGO_COVERAGE_MIN:-95}"
status=0
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

fail() { echo "rego-check: FAIL: $*" >&2; status=1; }

[ -x "$OPA" ] || { echo "rego-check: $OPA is not built: run make tools" >&2; exit 2; }

echo "== opa fmt --list"
unformatted="$(find rego -name '*.rego' -not -path 'rego/bundles/seed/*' -print0 | xargs -0 "$OPA" fmt --list)"
if [ -n "$unformatted" ]; then
	fail "not formatted (run: $OPA fmt -w <file>):"$'\n'"$unformatted"
fi

echo "== no rego.v1 import (Gatekeeper refuses it; templates declare source.version v1)"
if grep -rn --include='*.rego' -E '^[[:space:]]*import[[:space:]]+rego\.v1' rego/lib rego/transport rego/policies; then
	fail "remove the rego.v1 imports above"
fi

# The sets of paths each run loads: core + one transport + stub and recorded verdicts (+ policies
# for the Gatekeeper transport, since templates only ever embed that one).
# Policy folders also hold samples/*.yaml and suite.yaml, which opa would load as data: pass
# their .rego files only.
mapfile -t POLICY_REGO < <(find rego/policies -name '*.rego' -not -path '*/samples/*' | sort)
GK_PATHS=(rego/lib rego/transport/gatekeeper rego/testdata "${POLICY_REGO[@]}")
HTTP_PATHS=(rego/lib rego/transport/http rego/testdata)

echo "== opa check --strict --capabilities $CAPS"
"$OPA" check --strict --capabilities "$CAPS" "${GK_PATHS[@]}" || fail "opa check (gatekeeper transport)"
"$OPA" check --strict --capabilities "$CAPS" "${HTTP_PATHS[@]}" || fail "opa check (http transport)"
"$OPA" check --strict --capabilities "$CAPS" -b rego/bundles/pipeline -b rego/bundles/seed || fail "opa check (bundles)"

coverage() { # name, paths...
	local name="$1"; shift
	local out
	if ! "$OPA" test --capabilities "$CAPS" "$@" >"$TMP/test.txt" 2>&1; then
		cat "$TMP/test.txt" >&2
		fail "opa test ($name)"
	else
		tail -1 "$TMP/test.txt"
	fi
	out="$("$OPA" test --coverage --capabilities "$CAPS" "$@" 2>/dev/null || true)"
	local pct
	pct="$(printf '%s' "$out" | "$PYTHON" -c 'import json,sys
try:
    print(json.load(sys.stdin)["coverage"])
except Exception:
    print(-1)')"
	echo "   coverage ($name): $pct %"
	"$PYTHON" -c "import sys; sys.exit(0 if float('$pct') >= float('$MIN') else 1)" || fail "coverage ($name) $pct % < $MIN %"
}

echo "== opa test --coverage (gatekeeper transport)"
coverage gatekeeper "${GK_PATHS[@]}"
echo "== opa test --coverage (http transport)"
coverage http "${HTTP_PATHS[@]}"

echo "== generated files"
"$PYTHON" scripts/generate.py --check || fail "generated files are stale: run make generate"

if [ "$status" -ne 0 ]; then
	echo "rego-check: FAILED" >&2
else
	echo "rego-check: OK"
fi
exit "$status"
