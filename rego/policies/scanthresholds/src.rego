# The newest verified scan-result of every image stays within the constraint's thresholds.
# Judged per digest (stellaops.views): the newest scan is chosen per digest, and an index passes
# on its own scan or on each platform's own, never on a mix.
package stellaopsscanthresholds

import data.lib.stellaops

_parameters := object.get(input, "parameters", {})

_containers := stellaops.checked_containers(input.review.object, _parameters)

_verdicts := stellaops.verdicts({c.image | some c in _containers})

_problems(view) := stellaops.scan_problems(view, _parameters, time.now_ns(), set())

violation contains {"msg": msg} if {
	some msg in stellaops.provider_violations(_containers)
}

violation contains {"msg": msg} if {
	some c in _containers
	verdict := _verdicts[c.image]
	some denial in stellaops.denials(verdict, {view.digest: _problems(view) | some view in stellaops.views(verdict)})
	msg := sprintf("%s: %s", [stellaops.describe(c), denial])
}
