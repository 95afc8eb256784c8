# Scan thresholds, where findings a verified VEX marks not_affected or fixed do not count.
# Judged per digest (stellaops.views): a VEX clears findings of the scan of its own digest only,
# so one platform's VEX never clears another's findings.
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

_problems(view) := stellaops.scan_problems(
	view, _parameters, time.now_ns(),
	stellaops.vex_cleared(stellaops.accepted_attestations(view, vex_type, _vex_requirements)),
)

violation contains {"msg": msg} if {
	some msg in stellaops.provider_violations(_containers)
}

violation contains {"msg": msg} if {
	some c in _containers
	verdict := _verdicts[c.image]
	some denial in stellaops.denials(verdict, {view.digest: _problems(view) | some view in stellaops.views(verdict)})
	msg := sprintf("%s: %s", [stellaops.describe(c), denial])
}
