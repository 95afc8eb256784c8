# For each rule, every image carries an attestation of that type signed by an allowed signer.
# Judged per digest (stellaops.views): an index passes on its own attestations or on each
# platform's own, never on a mix.
package stellaopsallowedsigners

import data.lib.stellaops

_parameters := object.get(input, "parameters", {})

_containers := stellaops.checked_containers(input.review.object, _parameters)

_verdicts := stellaops.verdicts({c.image | some c in _containers})

# _requirements(rule, parameters): the rule's signer fields plus the constraint's requireTlog.
_requirements(rule, parameters) := stellaops.requirements({
	"signers": object.filter(rule, ["authorities", "keyIds", "identities"]),
	"requireTlog": object.get(parameters, "requireTlog", true),
})

# _problems(view): why one digest's own attestations fail the rules (empty: they pass).
_problems(view) := {stellaops.why_not_accepted(view, predicate_type, _requirements(rule, _parameters)) |
	some rule in object.get(_parameters, "rules", [])
	predicate_type := object.get(rule, "predicateType", "")
	not stellaops.accepted_attestation(view, predicate_type, _requirements(rule, _parameters))
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
