# Every container image carries a verified attestation of each listed predicate type.
package stellaopsrequireattestations

import data.lib.stellaops

_parameters := object.get(input, "parameters", {})

_containers := stellaops.checked_containers(input.review.object, _parameters)

_verdicts := stellaops.verdicts({c.image | some c in _containers})

violation contains {"msg": msg} if {
	some msg in stellaops.provider_violations(_containers)
}

violation contains {"msg": msg} if {
	some c in _containers
	verdict := _verdicts[c.image]
	some predicate_type in object.get(_parameters, "predicateTypes", [])
	not stellaops.accepted_attestation(verdict, predicate_type, stellaops.requirements(_parameters))
	msg := sprintf("%s: %s", [stellaops.describe(c), stellaops.why_not_accepted(verdict, predicate_type, stellaops.requirements(_parameters))])
}
