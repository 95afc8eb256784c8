# StellaOps Attest: scan-result and VEX helpers (part of package lib.stellaops).
#
# They read predicateSummary (DESIGN.md §3): scan-result {"scanner", "scanId", "scannedAt",
# "counts": {severity: n}, "findings": [{"id", "severity", "package", "fixedVersion"}]} and
# vex {"author", "timestamp", "statements": [{"vulnerability", "products", "status", "justification"}]}.
package lib.stellaops

severities := ["critical", "high", "medium", "low", "unknown"]

# VEX statuses that take a finding out of the count.
vex_clearing_statuses := {"not_affected", "fixed"}

# scan_counts(summary, excluded): findings per severity that still count. For each severity, the
# larger of the summary's count and the number of findings listed (so a short findings list never
# lowers a count), less the listed findings whose id is in excluded.
scan_counts(summary, excluded) := {severity: n |
	some severity in severities
	listed := [f | some f in _findings(summary); _severity(f) == severity]
	dropped := [f | some f in listed; f.id in excluded]
	n := max([_summary_count(summary, severity), count(listed)]) - count(dropped)
}

_findings(summary) := [f | some f in object.get(summary, "findings", []); is_object(f)]

_severity(finding) := finding.severity if finding.severity in severities

_severity(finding) := "unknown" if not finding.severity in severities

_summary_count(summary, severity) := n if {
	n := summary.counts[severity]
	is_number(n)
} else := 0

# scan_excess(counts, limits): one text per severity over its limit, e.g. "critical 2 (max 0)".
# limits maps severity → maximum; a missing or negative limit means no limit.
scan_excess(counts, limits) := [sprintf("%s %d (max %d)", [severity, counts[severity], limits[severity]]) |
	some severity in severities
	is_number(limits[severity])
	limits[severity] >= 0
	counts[severity] > limits[severity]
]

# vex_cleared(attestations): vulnerability ids that the VEX attestations (best first, as
# accepted_attestations returns them) clear. For each vulnerability the newest attestation that
# mentions it decides, and every status it gives must be not_affected or fixed.
vex_cleared(attestations) := {vulnerability |
	some a in attestations
	some statement in _statements(a)
	vulnerability := statement.vulnerability
	every status in _vex_statuses(attestations, vulnerability) {
		status in vex_clearing_statuses
	}
}

_statements(attestation) := [s | some s in object.get(object.get(attestation, "predicateSummary", {}), "statements", []); is_object(s)]

_vex_statuses(attestations, vulnerability) := {s.status |
	newest := [i | some i, a in attestations; some s in _statements(a); s.vulnerability == vulnerability][0]
	some s in _statements(attestations[newest])
	s.vulnerability == vulnerability
}

# age_hours(attestation, now_ns): hours since the attestation's signed creation time
# (signed_time_ns); undefined when there is none (annotations are not evidence).
age_hours(attestation, now_ns) := (now_ns - signed_time_ns(attestation)) / 3600000000000

scan_result_type := "stellaops.io/predicates/scan-result@v1"

# scan_problems(verdict, parameters, now_ns, cleared): why the image's newest accepted
# scan-result fails a constraint's thresholds; empty when it passes. parameters: maxCounts
# {severity: n}, maxAgeHours (0 or absent: no limit), ignore [vulnerability id], signers,
# requireTlog. cleared: vulnerability ids cleared otherwise (by VEX), left out of the counts.
scan_problems(verdict, parameters, now_ns, cleared) := {why_not_accepted(verdict, scan_result_type, requirements(parameters))} if {
	not accepted_attestation(verdict, scan_result_type, requirements(parameters))
} else := _threshold_problems(scan, parameters, cleared) | _age_problems(scan, parameters, now_ns) if {
	scan := accepted_attestation(verdict, scan_result_type, requirements(parameters))
}

_threshold_problems(scan, parameters, cleared) := {sprintf(
	"its newest scan-result <%s> (%s) finds %s; rebuild with fixed packages, or clear findings with a VEX or the constraint's ignore list",
	[object.get(scan.predicateSummary, "scanId", "?"), scan.created, concat(", ", excess)],
) |
	excluded := cleared | {id | some id in object.get(parameters, "ignore", [])}
	excess := scan_excess(scan_counts(scan.predicateSummary, excluded), object.get(parameters, "maxCounts", {}))
	count(excess) > 0
}

_age_problems(scan, parameters, now_ns) := {sprintf(
	"its newest scan-result <%s> is %d hours old (max %v); scan the image again and attach the result",
	[object.get(scan.predicateSummary, "scanId", "?"), floor(age), parameters.maxAgeHours],
) |
	parameters.maxAgeHours > 0
	age := age_hours(scan, now_ns)
	age > parameters.maxAgeHours
} | {sprintf(
	"its newest scan-result <%s> has no signed or logged time, so its age (max %v hours) cannot be checked; attach a scan whose predicate carries scannedAt",
	[object.get(scan.predicateSummary, "scanId", "?"), parameters.maxAgeHours],
) |
	parameters.maxAgeHours > 0
	not age_hours(scan, now_ns)
}
