# StellaOps Attest — the two commands: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PYTEST := $(VENV)/bin/pytest
STAMP := $(VENV)/.installed

help: ## Show the targets
	@grep -E '^[a-z][a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PIP) install -q --disable-pip-version-check --upgrade pip >/dev/null
	@$(PIP) install -q --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP) ## Create the virtualenv with the package and test dependencies

debs: ## Install the Debian packages the tests use (when missing)
	@scripts/debs.sh

tools: debs ## Build the pinned Go tools, etcd, kube-apiserver, kubectl, Gatekeeper and helm (cached in ~/.cache/stellaops/tools)
	@scripts/tools.sh
	@if [ -x tests/gatekeeper/build.sh ]; then tests/gatekeeper/build.sh; fi

IMAGE_NAME = localhost/stellaops/attest:e2e
image: debs ## Build the provider image (buildah, Debian-packages base) for tests/kube, named by its source hash
	@export CONTAINERS_CONF=$${CONTAINERS_CONF:-$(CURDIR)/tests/kube/containers.conf}; \
	  want=$(IMAGE_NAME)-$$(deploy/scripts/build-image.sh --print-source-hash); \
	  deploy/scripts/build-image.sh --if-missing --image $$want && \
	  podman images --format '{{.Repository}}:{{.Tag}}' | grep -F '$(IMAGE_NAME)-' | grep -vxF "$$want" | xargs -r podman rmi >/dev/null

tools-optional: ## Also build the optional tools: cosign v2.6.4 (legacy interop) and the Kyverno CLI (slow)
	@scripts/tools.sh cosign2 kyverno

demo: venv ## The main job, end to end: registry, sign, attach, provider verdict, Rego decision
	@scripts/tools.sh opa ocireg crane  # only what the demo runs (make test builds everything)
	@$(PY) scripts/demo.py

generate: venv ## Regenerate deploy/gatekeeper templates from rego/policies
	@$(PY) scripts/generate.py

rego-test: tools ## Rego gates: opa fmt, opa check --strict, opa test --coverage
	@scripts/rego-check.sh

test: venv tools image ## Everything: pytest (unit, integration, interop, Gatekeeper engine, the real API server) and the Rego gates
	@scripts/rego-check.sh
	@$(PYTEST) -q -p no:cacheprovider tests

kube-test: venv tools image ## Admission through the real kube-apiserver and Gatekeeper on loopback (tests/kube)
	@$(PYTEST) -q -p no:cacheprovider tests/kube

unit: venv ## Unit tests only (nothing started)
	@$(PYTEST) -q tests/unit

fuzz: venv ## Long fuzzing runs over every untrusted-input parser (atheris when installed, and hypothesis)
	@$(PIP) install -q --disable-pip-version-check -e '.[fuzz]' || echo "fuzz: atheris unavailable, hypothesis only" >&2
	@$(PY) scripts/fuzz.py --seconds $${FUZZ_SECONDS:-60}

bench: venv tools ## Benchmarks (loopback only, bounded): results in bench/results and docs/benchmarks.md
	@$(PIP) install -q --disable-pip-version-check -e '.[bench]'
	@$(PY) bench/run.py

.PHONY: help venv debs tools image tools-optional demo generate rego-test test kube-test unit fuzz bench
