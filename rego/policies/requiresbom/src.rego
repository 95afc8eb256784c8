# Every image carries a verified SBOM in an allowed format.
# Judged per digest (stellaops.views): an index passes on its own SBOM or on each platform's own;
# the newest SBOM is chosen per digest.
package stellaopsrequiresbom

import data.lib.stellaops

sbom_type := "stellaops.io/predicates/sbom@v1"

_parameters := object.get(input, "parameters", {})

_requirements := stellaops.requirements(_parameters)

_formats := object.get(_parameters, "formats", [])

_containers := stellaops.checked_containers(input.review.object, _parameters)

_verdicts := stellaops.verdicts({c.image | some c in _containers})

# _problems(view): why this digest's own newest accepted SBOM fails (or that there is none).
_problems(view) := {stellaops.why_not_accepted(view, sbom_type, _requirements)} if {
	not stellaops.accepted_attestation(view, sbom_type, _requirements)
} else := {sprintf("its newest SBOM (%s) %s", [sbom.created, problem]) |
	sbom := stellaops.accepted_attestation(view, sbom_type, _requirements)
	some problem in _sbom_problems(sbom.predicateSummary, _formats, object.get(_parameters, "minComponents", 0))
}

violation contains {"msg": msg} if {
	some msg in stellaops.provider_violations(_containers)
}

violation contains {"msg": msg} if {
	some c in _containers
	verdict := _verdicts[c.image]
	some denial in stellaops.denials(verdict, {view.digest: _problems(view) | some view in stellaops.views(verdict)})
	msg := sprintf("%s: %s", [stellaops.describe(c), denial])
}

_sbom_problems(summary, formats, min_components) := {sprintf("has format <%v>; allowed formats: %v", [object.get(summary, "format", ""), formats]) |
	count(formats) > 0
	not object.get(summary, "format", "") in formats
} | {sprintf("lists %v components; at least %v are required", [object.get(summary, "componentCount", 0), min_components]) |
	object.get(summary, "componentCount", 0) < min_components
}
