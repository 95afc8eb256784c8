# The newest verified scan-result of every image stays within the constraint's thresholds.
package stellaopsscanthresholds

import data.lib.stellaops

_parameters := object.get(input, "parameters", {})

_containers := stellaops.checked_containers(input.review.object, _parameters)

_verdicts := stellaops.verdicts({c.image | some c in _containers})

violation contains {"msg": msg} if {
	some msg in stellaops.provider_violations(_containers)
}

violation contains {"msg": msg} if {
	some c in _containers
	some problem in stellaops.scan_problems(_verdicts[c.image], _parameters, time.now_ns(), set())
	msg := sprintf("%s: %s", [stellaops.describe(c), problem])
}
