# Every image carries a verified SBOM in an allowed format.
package stellaopsrequiresbom

import data.lib.stellaops

sbom_type := "stellaops.io/predicates/sbom@v1"

_parameters := object.get(input, "parameters", {})

_requirements := stellaops.requirements(_parameters)

_formats := object.get(_parameters, "formats", [])

_containers := stellaops.checked_containers(input.review.object, _parameters)

_verdicts := stellaops.verdicts({c.image | some c in _containers})

violation contains {"msg": msg} if {
	some msg in stellaops.provider_violations(_containers)
}

violation contains {"msg": msg} if {
	some c in _containers
	verdict := _verdicts[c.image]
	not stellaops.accepted_attestation(verdict, sbom_type, _requirements)
	msg := sprintf("%s: %s", [stellaops.describe(c), stellaops.why_not_accepted(verdict, sbom_type, _requirements)])
}

violation contains {"msg": msg} if {
	some c in _containers
	sbom := stellaops.accepted_attestation(_verdicts[c.image], sbom_type, _requirements)
	some problem in _sbom_problems(sbom.predicateSummary, _formats, object.get(_parameters, "minComponents", 0))
	msg := sprintf("%s: its newest SBOM (%s) %s", [stellaops.describe(c), sbom.created, problem])
}

_sbom_problems(summary, formats, min_components) := {sprintf("has format <%v>; allowed formats: %v", [object.get(summary, "format", ""), formats]) |
	count(formats) > 0
	not object.get(summary, "format", "") in formats
} | {sprintf("lists %v components; at least %v are required", [object.get(summary, "componentCount", 0), min_components]) |
	object.get(summary, "componentCount", 0) < min_components
}
