# Every container image carries a verified attestation of each listed predicate type.
# Judged per digest (stellaops.views): an index passes on its own attestations or on each
# platform's own, never on a mix.
package stellaopsrequireattestations

import data.lib.stellaops

_parameters := object.get(input, "parameters", {})

_requirements := stellaops.requirements(_parameters)

_containers := stellaops.checked_containers(input.review.object, _parameters)

_verdicts := stellaops.verdicts({c.image | some c in _containers})

# _problems(view): one reason per listed type that this digest's own attestations lack.
_problems(view) := {stellaops.why_not_accepted(view, predicate_type, _requirements) |
	some predicate_type in object.get(_parameters, "predicateTypes", [])
	not stellaops.accepted_attestation(view, predicate_type, _requirements)
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
