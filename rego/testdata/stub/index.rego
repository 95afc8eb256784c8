# Multi-arch verdicts for the index rule (issue 16 item 1), built here from readable parts rather
# than recorded: two genuinely attested platform images and indexes over them.
#
#   B (linux/amd64): a scan with a critical (CVE-2026-9001), an empty SPDX SBOM and SLSA v1
#       provenance from a feature branch, all signed only by the CI key (authority ci-key).
#   A (linux/arm64): a clean scan, a CycloneDX SBOM and a VEX clearing CVE-2026-9001, signed by
#       the release key, and provenance from main signed keyless by the release workflow.
#
# An unsigned index [B, A] must be denied by every policy that denies B alone, because the rule is
# per digest: the index's own attestations, or each platform's own, never a mix (CONTRACTS.md).
# The keys are served by the stub like the recorded ones (stub.items).
package stub

index_digest := "sha256:1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d"

amd64_digest := "sha256:b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"

arm64_digest := "sha256:a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"

# A second clean platform (linux/amd64), attested like A.
good_amd64_digest := "sha256:c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3"

# An unattested platform image (linux/amd64).
bare_amd64_digest := "sha256:e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5"

release_signer := {"kind": "key", "authority": "release-key", "keyId": "sha256:5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e"}

ci_signer := {"kind": "key", "authority": "ci-key", "keyId": "sha256:c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1"}

# The release workflow's keyless identity, as the samples' constraints expect for provenance.
release_workflow_signer := {"kind": "keyless", "authority": "ci", "issuer": "https://token.actions.githubusercontent.com", "subject": "https://github.com/stellaops/app/.github/workflows/release.yml@refs/heads/main"}

github_hosted := "https://github.com/actions/runner/github-hosted"

# _attestation(type, digest, signer, created, summary): a verified, logged attestation.
_attestation(predicate_type, digest, signer, created, summary) := {
	"predicateType": predicate_type,
	"verified": true,
	"signers": [signer],
	"tlog": {"verified": true, "required": true, "logIndex": 9000, "integratedTime": 1795950000},
	"source": "bundle",
	"digest": digest,
	"created": created,
	"createdSigned": true,
	"annotations": {},
	"predicateSummary": summary,
	"errors": [],
}

_scan(id, at, findings) := {
	"scanner": {"name": "stellaops-scanner", "version": "2.4.0"},
	"scanId": id,
	"scannedAt": at,
	"counts": {severity: count([f | some f in findings; f.severity == severity]) |
		some severity in ["critical", "high", "medium", "low", "unknown"]
	},
	"findings": findings,
}

_critical_9001 := {"id": "CVE-2026-9001", "severity": "critical", "package": {"name": "openssl", "version": "3.0.1", "purl": "pkg:generic/openssl@3.0.1"}, "fixedVersion": "3.0.2"}

# The attestations of A (clean, release key, main) about digest d.
clean_attestations(d) := [
	_attestation("stellaops.io/predicates/scan-result@v1", d, release_signer, "2026-11-25T06:00:00Z", _scan("scan-clean", "2026-11-25T06:00:00Z", [])),
	_attestation("stellaops.io/predicates/sbom@v1", d, release_signer, "2026-11-25T06:00:00Z", {"format": "cyclonedx-json", "specVersion": "1.5", "componentCount": 42, "documentDigest": "sha256:f1a6e97996fcf437d861e6dcfd6728d0cc6e4e96bf7b8029f9924897f5d37e78"}),
	_attestation("https://slsa.dev/provenance/v1", d, release_workflow_signer, "2026-11-25T05:00:00Z", {"builderId": github_hosted, "buildType": "https://actions.github.io/buildtypes/workflow/v1", "source": "git+https://github.com/stellaops/app@refs/heads/main"}),
	_attestation("stellaops.io/predicates/vex@v1", d, release_signer, "2026-11-25T07:00:00Z", {"author": "security@stellaops.io", "timestamp": "2026-11-25T07:00:00Z", "statements": [{"vulnerability": "CVE-2026-9001", "products": ["pkg:oci/app"], "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path"}]}),
]

# The attestations of B (a critical, CI key only, feature branch) about digest d; its scan and
# SBOM are older than A's, so a policy pooling both platforms would pick A's as "the newest".
flawed_attestations(d) := [
	_attestation("stellaops.io/predicates/scan-result@v1", d, ci_signer, "2026-11-24T06:00:00Z", _scan("scan-flawed", "2026-11-24T06:00:00Z", [_critical_9001])),
	_attestation("stellaops.io/predicates/sbom@v1", d, ci_signer, "2026-11-24T06:00:00Z", {"format": "spdx-json", "specVersion": "2.3", "componentCount": 0, "documentDigest": "sha256:0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"}),
	_attestation("https://slsa.dev/provenance/v1", d, ci_signer, "2026-11-24T05:00:00Z", {"builderId": github_hosted, "buildType": "https://actions.github.io/buildtypes/workflow/v1", "source": "git+https://github.com/stellaops/app@refs/heads/feature-x"}),
]

# B' for the VEX case: B's critical in a scan signed by the release key and NEWER than A's, and a
# VEX of its own about something else, so only A's VEX (about another digest) could clear it.
release_flawed_attestations(d) := [
	_attestation("stellaops.io/predicates/scan-result@v1", d, release_signer, "2026-11-25T08:00:00Z", _scan("scan-flawed-release", "2026-11-25T08:00:00Z", [_critical_9001])),
	_attestation("stellaops.io/predicates/vex@v1", d, release_signer, "2026-11-20T07:00:00Z", {"author": "security@stellaops.io", "timestamp": "2026-11-20T07:00:00Z", "statements": [{"vulnerability": "CVE-2026-9999", "products": ["pkg:oci/app"], "status": "not_affected", "justification": "component_not_present"}]}),
]

_index(key, platforms, attestations) := {
	"key": key,
	"value": {
		"schemaVersion": 1,
		"image": key,
		"digest": index_digest,
		"platforms": platforms,
		"platformDetails": [{"digest": p, "platform": _platform_names[p], "index": index_digest} | some p in platforms],
		"attestations": attestations,
		"errors": [],
	},
	"error": "",
}

_platform_names := {
	amd64_digest: "linux/amd64",
	arm64_digest: "linux/arm64",
	good_amd64_digest: "linux/amd64",
	bare_amd64_digest: "linux/amd64",
}

# The attack: an unsigned index over B and A.
index_borrow := "registry.example.com/app:index-borrow"

# The VEX attack: an unsigned index over B' and A.
index_vex_borrow := "registry.example.com/app:index-vex-borrow"

# Controls: every platform passes on its own; the index itself carries passing attestations.
index_platforms_pass := "registry.example.com/app:index-platforms-pass"

index_own_pass := "registry.example.com/app:index-own-pass"

# A platform listed with no attestation at all, beside an attested one.
index_bare_platform := "registry.example.com/app:index-bare-platform"

index_items := {item.key: item | some item in [
	_index(index_borrow, [amd64_digest, arm64_digest], array.concat(flawed_attestations(amd64_digest), clean_attestations(arm64_digest))),
	_index(index_vex_borrow, [amd64_digest, arm64_digest], array.concat(release_flawed_attestations(amd64_digest), clean_attestations(arm64_digest))),
	_index(index_platforms_pass, [good_amd64_digest, arm64_digest], array.concat(clean_attestations(good_amd64_digest), clean_attestations(arm64_digest))),
	_index(index_own_pass, [amd64_digest, bare_amd64_digest], array.concat(clean_attestations(index_digest), flawed_attestations(amd64_digest))),
	_index(index_bare_platform, [bare_amd64_digest, arm64_digest], clean_attestations(arm64_digest)),
]}
