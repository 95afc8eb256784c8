#!/usr/bin/env bash
# make-certs.sh: TLS material for the StellaOps provider, the Gatekeeper Provider with its
# caBundle, and (with --site) a kustomize "site" ready for `kubectl apply -k`.
# Uses openssl only; no network, no cluster access. docs/install.md walks through it, and
# tests/integration/test_deploy_site.py runs it exactly as documented.
set -euo pipefail

NAMESPACE=stellaops-system
SERVICE=stellaops
PORT=8443

usage() {
  cat <<'EOF'
Usage: make-certs.sh --out DIR [options]

Makes, under DIR/certs/:
  ca.crt, ca.key        the StellaOps CA (ECDSA P-256, 10 years). Keep ca.key safe: whoever
                        holds it can mint certificates the provider trusts as clients.
  tls.crt, tls.key      the provider's serving certificate for stellaops.stellaops-system.svc
                        (serverAuth + clientAuth: the pod's probes present it to itself)
  client-ca.crt         the CAs whose clients the provider answers (mTLS): Gatekeeper's CA
                        (--gatekeeper-ca) followed by the StellaOps CA
  client-NAME.crt/.key  for each --client NAME (import API clients, metrics scrapers)
and DIR/provider.yaml, the Gatekeeper Provider with spec.caBundle = base64(ca.crt).

Options:
  --out DIR             output directory (created if missing)
  --gatekeeper-ca FILE  Gatekeeper's CA certificate: key ca.crt of Secret
                        gatekeeper-webhook-server-cert in gatekeeper-system. Required with --site.
  --ca-cert FILE --ca-key FILE
                        use this CA instead of making one (renewing the serving certificate)
  --days N              serving/client certificate validity in days (default 365)
  --san DNS:NAME|IP:ADDR
                        another subjectAltName for the serving certificate (repeatable), for a
                        provider called by another name than its Service, e.g. a Provider URL
                        of https://127.0.0.1:8443 when Gatekeeper runs outside the cluster
  --client NAME         also issue a client certificate (repeatable)
  --force               overwrite existing keys in DIR/certs
  --site                also write DIR/kustomization.yaml and what it needs (below)

Site options (with --site):
  --overlay NAME|DIR    default | scale-out | cert-manager, or a kustomization directory
                        (default: default)
  --cert-manager        cert-manager issues the serving certificate from the StellaOps CA
                        (adds components/cert-manager; Secret stellaops-ca holds the CA)
  --config FILE         your stellaops.yaml (default: a copy of the shipped one to edit)
  --trust-file FILE     a file for /etc/stellaops/trust/ (cosign.pub, trusted_root.json, ...);
                        repeatable. The shipped config expects trust/cosign.pub.
  --docker-config FILE  registry credentials (a docker config.json; default: none, anonymous)
  --image REF           the provider image you pushed (REPO:TAG or REPO@sha256:...;
                        default: stellaops/attest:0.1.0 as the base names it)
  --import-tenant NAME  make a random import API token for tenant NAME (repeatable;
                        default: one tenant named "default")
EOF
}

die() { echo "make-certs.sh: error: $*" >&2; exit 2; }

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

OUT="" GK_CA="" CA_CERT="" CA_KEY="" DAYS=365 FORCE=0 SITE=0
OVERLAY=default CERT_MANAGER=0 CONFIG="" DOCKER_CONFIG="" IMAGE=""
CLIENTS=() TRUST_FILES=() TENANTS=() SANS=()

need_arg() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) need_arg "$@"; OUT=$2; shift 2 ;;
    --gatekeeper-ca) need_arg "$@"; GK_CA=$2; shift 2 ;;
    --ca-cert) need_arg "$@"; CA_CERT=$2; shift 2 ;;
    --ca-key) need_arg "$@"; CA_KEY=$2; shift 2 ;;
    --days) need_arg "$@"; DAYS=$2; shift 2 ;;
    --client) need_arg "$@"; CLIENTS+=("$2"); shift 2 ;;
    --san) need_arg "$@"; SANS+=("$2"); shift 2 ;;
    --force) FORCE=1; shift ;;
    --site) SITE=1; shift ;;
    --overlay) need_arg "$@"; OVERLAY=$2; shift 2 ;;
    --cert-manager) CERT_MANAGER=1; shift ;;
    --config) need_arg "$@"; CONFIG=$2; shift 2 ;;
    --trust-file) need_arg "$@"; TRUST_FILES+=("$2"); shift 2 ;;
    --docker-config) need_arg "$@"; DOCKER_CONFIG=$2; shift 2 ;;
    --import-tenant) need_arg "$@"; TENANTS+=("$2"); shift 2 ;;
    --image) need_arg "$@"; IMAGE=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done

command -v openssl >/dev/null || die "openssl is not installed"
[[ -n "$OUT" ]] || { usage >&2; die "--out DIR is required"; }
[[ "$DAYS" =~ ^[1-9][0-9]*$ ]] || die "--days must be a positive integer, got '$DAYS'"
[[ -n "$CA_CERT" && -z "$CA_KEY" || -z "$CA_CERT" && -n "$CA_KEY" ]] && die "--ca-cert and --ca-key go together"
for name in "${CLIENTS[@]+"${CLIENTS[@]}"}" "${TENANTS[@]+"${TENANTS[@]}"}"; do
  [[ "$name" =~ ^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$ ]] \
    || die "'$name' is not a valid name (lower-case letters, digits, '-' and '.'; at most 63)"
done
for san in "${SANS[@]+"${SANS[@]}"}"; do
  [[ "$san" =~ ^DNS:[a-z0-9*]([a-z0-9.-]{0,251}[a-z0-9])?$ || "$san" =~ ^IP:[0-9a-fA-F.:]{2,45}$ ]] \
    || die "--san: '$san' is not DNS:NAME or IP:ADDRESS (e.g. DNS:stellaops.example.com, IP:127.0.0.1)"
done
if [[ $SITE -eq 0 ]]; then
  for opt in "$CONFIG" "$DOCKER_CONFIG" "$IMAGE" "${TRUST_FILES[@]+"${TRUST_FILES[@]}"}" "${TENANTS[@]+"${TENANTS[@]}"}"; do
    [[ -z "$opt" ]] || die "--config, --trust-file, --docker-config, --image and --import-tenant need --site"
  done
  [[ $CERT_MANAGER -eq 0 ]] || die "--cert-manager needs --site"
fi

is_ca_cert() {  # FILE: a parsable certificate with basicConstraints CA:TRUE
  openssl x509 -in "$1" -noout 2>/dev/null || return 1
  openssl x509 -in "$1" -noout -text 2>/dev/null | grep -q "CA:TRUE"
}

if [[ -n "$GK_CA" ]]; then
  [[ -r "$GK_CA" ]] || die "--gatekeeper-ca: cannot read '$GK_CA'"
  is_ca_cert "$GK_CA" || die "--gatekeeper-ca: '$GK_CA' is not a CA certificate (PEM with CA:TRUE).
  Take key ca.crt (not tls.crt) of the Secret:
  kubectl get secret gatekeeper-webhook-server-cert -n gatekeeper-system -o jsonpath='{.data.ca\\.crt}' | base64 -d > gatekeeper-ca.crt"
elif [[ $SITE -eq 1 ]]; then
  die "--site needs --gatekeeper-ca FILE: without Gatekeeper's CA the provider would refuse Gatekeeper's calls (mTLS).
  kubectl get secret gatekeeper-webhook-server-cert -n gatekeeper-system -o jsonpath='{.data.ca\\.crt}' | base64 -d > gatekeeper-ca.crt"
fi

CERTS="$OUT/certs"
mkdir -p "$CERTS"
umask 077
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

refuse_overwrite() {
  [[ $FORCE -eq 1 || ! -e "$1" ]] || die "'$1' exists; pass --force to replace it (or --ca-cert/--ca-key to reuse the CA)"
}

serial() { echo "0x$(openssl rand -hex 16)"; }

# ---------------------------------------------------------------------------------------- CA
if [[ -n "$CA_CERT" ]]; then
  is_ca_cert "$CA_CERT" || die "--ca-cert: '$CA_CERT' is not a CA certificate"
  [[ -r "$CA_KEY" ]] || die "--ca-key: cannot read '$CA_KEY'"
  ca_pub=$(openssl x509 -in "$CA_CERT" -noout -pubkey)
  key_pub=$(openssl pkey -in "$CA_KEY" -pubout 2>/dev/null) || die "--ca-key: '$CA_KEY' is not a private key"
  [[ "$ca_pub" == "$key_pub" ]] || die "--ca-key does not belong to --ca-cert"
  if [[ "$(realpath "$CA_CERT")" != "$(realpath -m "$CERTS/ca.crt")" ]]; then
    cp "$CA_CERT" "$CERTS/ca.crt"
    cp "$CA_KEY" "$CERTS/ca.key"
  fi
else
  refuse_overwrite "$CERTS/ca.key"
  cat > "$WORK/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
O = StellaOps
CN = StellaOps provider CA
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$CERTS/ca.key" 2>/dev/null
  openssl req -x509 -new -config "$WORK/ca.cnf" -key "$CERTS/ca.key" -sha256 -days 3650 \
    -set_serial "$(serial)" -out "$CERTS/ca.crt"
fi

# Issue a leaf certificate: issue NAME CN EXTENSIONS
issue() {
  local name=$1 cn=$2 ext=$3
  refuse_overwrite "$CERTS/$name.key"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$CERTS/$name.key" 2>/dev/null
  openssl req -new -key "$CERTS/$name.key" -subj "/O=StellaOps/CN=$cn" -out "$WORK/$name.csr"
  printf '%s\n' "$ext" > "$WORK/$name.ext"
  openssl x509 -req -in "$WORK/$name.csr" -CA "$CERTS/ca.crt" -CAkey "$CERTS/ca.key" \
    -set_serial "$(serial)" -sha256 -days "$DAYS" -extfile "$WORK/$name.ext" \
    -out "$CERTS/$name.crt" 2>/dev/null
  openssl verify -CAfile "$CERTS/ca.crt" "$CERTS/$name.crt" >/dev/null \
    || die "the new $name certificate does not verify against the CA"
}

# ------------------------------------------------------------------------- serving certificate
DNS="$SERVICE.$NAMESPACE.svc"
EXTRA_SANS=""
for san in "${SANS[@]+"${SANS[@]}"}"; do EXTRA_SANS+=", $san"; done
if [[ $CERT_MANAGER -eq 0 ]]; then
  issue tls "$DNS" "basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:$DNS, DNS:$DNS.cluster.local, DNS:$SERVICE.$NAMESPACE, DNS:$SERVICE$EXTRA_SANS
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid"
fi

for client in "${CLIENTS[@]+"${CLIENTS[@]}"}"; do
  issue "client-$client" "$client" "basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = DNS:$client
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid"
done

# ------------------------------------------------------------------------------ client CAs
{
  [[ -z "$GK_CA" ]] || cat "$GK_CA"
  cat "$CERTS/ca.crt"
} > "$CERTS/client-ca.crt"

# ------------------------------------------------------------------------ Gatekeeper Provider
umask 022
CA_BUNDLE=$(openssl base64 -A -in "$CERTS/ca.crt")
TEMPLATE="$REPO_ROOT/deploy/gatekeeper/provider/provider.yaml"
[[ -r "$TEMPLATE" ]] || die "cannot read $TEMPLATE"
grep -q '^  caBundle: ' "$TEMPLATE" || die "$TEMPLATE has no caBundle line to fill"
{
  echo "# Written by deploy/scripts/make-certs.sh: caBundle = base64 of $CERTS/ca.crt"
  sed -e "s|^  caBundle: .*|  caBundle: $CA_BUNDLE|" \
      -e '/^  # Placeholder, deliberately not base64/d' -e '/^  # deploy\/scripts\/make-certs.sh fills in/d' \
      "$TEMPLATE"
} > "$OUT/provider.yaml"

echo "make-certs.sh: wrote $CERTS/ (CA, serving certificate, client-CA bundle) and $OUT/provider.yaml" >&2

[[ $SITE -eq 1 ]] || exit 0

# ------------------------------------------------------------------------------------- site
case "$OVERLAY" in
  default|scale-out|cert-manager) OVERLAY_DIR="$REPO_ROOT/deploy/kubernetes/overlays/$OVERLAY" ;;
  *) OVERLAY_DIR=$OVERLAY ;;
esac
[[ -f "$OVERLAY_DIR/kustomization.yaml" ]] || die "--overlay: no kustomization.yaml in '$OVERLAY_DIR'"
if [[ "$(basename "$OVERLAY_DIR")" == "cert-manager" && -z "${OVERLAY_DIR##*/overlays/cert-manager}" ]]; then
  CERT_MANAGER_OVERLAY=1
else
  CERT_MANAGER_OVERLAY=0
fi
if [[ $CERT_MANAGER_OVERLAY -eq 1 && $CERT_MANAGER -eq 0 ]]; then
  die "--overlay cert-manager: pass --cert-manager too (the serving certificate then comes from cert-manager)"
fi

IMAGE_LINES=""
if [[ -n "$IMAGE" ]]; then
  [[ "$IMAGE" =~ ^[a-z0-9]([a-z0-9._:/-]*[a-z0-9])?(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$ ]] \
    || die "--image: '$IMAGE' is not an image reference (REPO:TAG or REPO@sha256:HEX)"
  if [[ "$IMAGE" == *@* ]]; then
    name=${IMAGE%@*}
    [[ "${name##*/}" != *:* ]] || name=${name%:*}  # REPO:TAG@DIGEST: the digest decides
    IMAGE_LINES="    newName: $name
    digest: ${IMAGE#*@}"
  elif [[ "${IMAGE##*/}" == *:* ]]; then
    IMAGE_LINES="    newName: ${IMAGE%:*}
    newTag: ${IMAGE##*:}"
  else
    IMAGE_LINES="    newName: $IMAGE"
  fi
fi

relpath() {  # path of $1 relative to $2 (absolute if realpath cannot say)
  realpath --relative-to="$2" "$1" 2>/dev/null || (cd "$1" && pwd)
}
OUT_ABS=$(cd "$OUT" && pwd)
OVERLAY_REL=$(relpath "$OVERLAY_DIR" "$OUT_ABS")
COMPONENT_REL=$(relpath "$REPO_ROOT/deploy/kubernetes/components/cert-manager" "$OUT_ABS")

if [[ -n "$CONFIG" ]]; then
  [[ -r "$CONFIG" ]] || die "--config: cannot read '$CONFIG'"
  cp "$CONFIG" "$OUT/stellaops.yaml"
elif [[ ! -e "$OUT/stellaops.yaml" ]]; then
  cp "$REPO_ROOT/deploy/kubernetes/base/stellaops.yaml" "$OUT/stellaops.yaml"
fi

mkdir -p "$OUT/trust"
for f in "${TRUST_FILES[@]+"${TRUST_FILES[@]}"}"; do
  [[ -r "$f" ]] || die "--trust-file: cannot read '$f'"
  cp "$f" "$OUT/trust/"
done
[[ -n "$(ls -A "$OUT/trust")" ]] || die "no trust material: pass --trust-file cosign.pub (and any trusted_root.json) so the provider knows whom to trust"

umask 077
mkdir -p "$OUT/secrets/tokens"
if [[ -n "$DOCKER_CONFIG" ]]; then
  [[ -r "$DOCKER_CONFIG" ]] || die "--docker-config: cannot read '$DOCKER_CONFIG'"
  cp "$DOCKER_CONFIG" "$OUT/secrets/dockerconfig.json"
elif [[ ! -e "$OUT/secrets/dockerconfig.json" ]]; then
  echo '{"auths": {}}' > "$OUT/secrets/dockerconfig.json"
fi
[[ ${#TENANTS[@]} -gt 0 ]] || TENANTS=(default)
for tenant in "${TENANTS[@]}"; do
  [[ -e "$OUT/secrets/tokens/$tenant" ]] || openssl rand -hex 32 > "$OUT/secrets/tokens/$tenant"
done
umask 022

cat > "$OUT/.gitignore" <<'EOF'
# Private keys and tokens: keep them out of version control (use a secret manager).
certs/*.key
secrets/
EOF

{
  cat <<EOF
# Site kustomization written by deploy/scripts/make-certs.sh. Apply with: kubectl apply -k .
# Edit stellaops.yaml and trust/ here; re-run make-certs.sh --site (same options, no --force)
# to pick up new trust files or tenants; keys and tokens that exist are kept.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $OVERLAY_REL
  - provider.yaml
EOF
  if [[ $CERT_MANAGER -eq 1 && $CERT_MANAGER_OVERLAY -eq 0 ]]; then
    printf 'components:\n  - %s\n' "$COMPONENT_REL"
  fi
  if [[ -n "$IMAGE_LINES" ]]; then
    printf 'images:\n  - name: stellaops/attest\n%s\n' "$IMAGE_LINES"
  fi
  cat <<EOF
configMapGenerator:
  - name: stellaops-config
    namespace: $NAMESPACE
    behavior: replace
    files:
      - stellaops.yaml
  - name: stellaops-trust
    namespace: $NAMESPACE
    behavior: replace
    files:
EOF
  for f in "$OUT"/trust/*; do printf '      - trust/%s\n' "$(basename "$f")"; done
  echo "secretGenerator:"
  if [[ $CERT_MANAGER -eq 1 ]]; then
    cat <<EOF
  # The CA cert-manager's Issuer signs with (its name is read by cert-manager: no hash suffix).
  - name: stellaops-ca
    namespace: $NAMESPACE
    type: kubernetes.io/tls
    options:
      disableNameSuffixHash: true
    files:
      - tls.crt=certs/ca.crt
      - tls.key=certs/ca.key
EOF
  else
    cat <<EOF
  - name: stellaops-tls
    namespace: $NAMESPACE
    type: kubernetes.io/tls
    files:
      - tls.crt=certs/tls.crt
      - tls.key=certs/tls.key
EOF
  fi
  cat <<EOF
  - name: stellaops-client-ca
    namespace: $NAMESPACE
    files:
      - ca.crt=certs/client-ca.crt
  - name: stellaops-registry-auth
    namespace: $NAMESPACE
    type: kubernetes.io/dockerconfigjson
    files:
      - .dockerconfigjson=secrets/dockerconfig.json
  - name: stellaops-import-tokens
    namespace: $NAMESPACE
    files:
EOF
  for f in "$OUT"/secrets/tokens/*; do printf '      - secrets/tokens/%s\n' "$(basename "$f")"; done
} > "$OUT/kustomization.yaml"

echo "make-certs.sh: wrote the site $OUT/kustomization.yaml (overlay $OVERLAY_REL); apply with: kubectl apply -k $OUT" >&2
