# Scan thresholds, where findings a verified VEX marks not_affected or fixed do not count.
package stellaopsvexscanthresholds

import data.lib.stellaops

vex_type := "stellaops.io/predicates/vex@v1"

_parameters := object.get(input, "parameters", {})

_vex_requirements := stellaops.requirements(object.union(
	_parameters,
	{"signers": object.get(_parameters, "vexSigners", object.get(_parameters, "signers", {}))},
))

_containers := stellaops.checked_containers(input.review.object, _parameters)

_verdicts := stellaops.verdicts({c.image | some c in _containers})

violation contains {"msg": msg} if {
	some msg in stellaops.provider_violations(_containers)
}

violation contains {"msg": msg} if {
	some c in _containers
	verdict := _verdicts[c.image]
	cleared := stellaops.vex_cleared(stellaops.accepted_attestations(verdict, vex_type, _vex_requirements))
	some problem in stellaops.scan_problems(verdict, _parameters, time.now_ns(), cleared)
	msg := sprintf("%s: %s", [stellaops.describe(c), problem])
}
