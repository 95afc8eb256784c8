# A test-only policy for the Gatekeeper harness tests (tests/gatekeeper): every container image
# must carry an attestation of input.parameters.predicateType that the provider verified, signed
# by one of input.parameters.authorities (any configured authority when empty). Offline
# signatures are accepted (requireTlog false), as the test attestations have no Rekor entry.
# The fail-closed part comes from the library: every image without a usable verdict is denied.
package k8sstellaopsattested

import data.lib.stellaops

_images := {c.image | some c in stellaops.containers(input.review.object)}

_requirements := {"requireTlog": false, "authorities": object.get(input.parameters, "authorities", [])}

violation contains {"msg": msg} if {
	some _, msg in stellaops.provider_errors(_images)
}

violation contains {"msg": msg} if {
	some image, verdict in stellaops.verdicts(_images)
	not stellaops.accepted_attestation(verdict, input.parameters.predicateType, _requirements)
	msg := sprintf("image <%s> is not admitted: %s", [
		image,
		stellaops.why_not_accepted(verdict, input.parameters.predicateType, _requirements),
	])
}
