# StellaOps Attest: gates for `opa eval` in a pipeline (threat T-F43). Shipped in the pipeline
# bundle only (with the http transport), never in Gatekeeper templates.
#
# In a pipeline nothing chooses the objects a policy sees: the input is whatever the manifests
# hold (`stella rego input FILE...` makes one `kind: List` of every document), so a gate must
# judge every object of it, or deny it. The shipped policies do so in the pipeline bundle
# (scripts/generate.py adds `stellaops.unjudged` to their violations). seed_deny does it for the
# seed guide's snippet (rego/bundles/seed), which reads `spec.containers` of a `kind: Pod` only.
package lib.stellaops.pipeline

import data.lib.stellaops

# seed_deny: the seed snippet's deny, run on every Pod of the input (a single object or a List),
# plus a denial for every image the snippet does not read (any image of any other kind, and a
# Pod's initContainers, ephemeralContainers and image volumes) and for every object the library
# cannot judge. Query it instead of data.stellaops.attestation.deny, with both bundles loaded:
#   opa eval --fail-defined --format raw --bundle rego/bundles/seed --bundle rego/bundles/pipeline \
#     --input input.json 'data.lib.stellaops.pipeline.seed_deny[_]'
seed_deny contains msg if {
	some entry in stellaops.objects(input)
	_seed_reads(entry.object)
	some msg in data.stellaops.attestation.deny with input as entry.object
}

seed_deny contains msg if {
	some msg in stellaops.unjudged(input)
}

seed_deny contains msg if {
	some entry in stellaops.objects(input)
	some c in stellaops.containers(entry.object)
	not stellaops.is_list(entry.object)
	not _seed_checks(entry.object, c)
	msg := sprintf("%s: %s: the seed policy reads only the containers of a kind Pod, so it cannot judge this image: check it with a shipped policy (rego/bundles/pipeline)", [stellaops.where(entry), stellaops.describe(c)])
}

_seed_reads(resource) if {
	resource.kind == "Pod"
	stellaops.api_group(resource) == ""
}

_seed_checks(resource, container) if {
	_seed_reads(resource)
	container.kind == "container"
}
