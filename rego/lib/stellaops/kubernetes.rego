# StellaOps Attest: which images a Kubernetes object runs (part of package lib.stellaops).
package lib.stellaops

# Kinds whose pod template sits at spec.template.spec.
_template_kinds := {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job"}

# pod_spec(resource): the pod spec of a Pod, a workload's pod template, a CronJob's job template,
# or a PodTemplate. Undefined for other kinds.
pod_spec(resource) := resource.spec if {
	resource.kind == "Pod"
} else := resource.spec.jobTemplate.spec.template.spec if {
	resource.kind == "CronJob"
} else := resource.template.spec if {
	resource.kind == "PodTemplate"
} else := resource.spec.template.spec if {
	resource.kind in _template_kinds
}

# containers(resource): every container the object runs, as {"kind", "name", "image"}, where kind
# is "container", "initContainer" or "ephemeralContainer" (for messages).
containers(resource) := {{"kind": kind, "name": object.get(c, "name", ""), "image": c.image} |
	spec := pod_spec(resource)
	some field, kind in {"containers": "container", "initContainers": "initContainer", "ephemeralContainers": "ephemeralContainer"}
	some c in object.get(spec, field, [])
	is_string(c.image)
}

# exempt(image, patterns): the image matches one of the patterns, each an exact reference or a
# prefix ending in "*" (as gatekeeper-library's exemptImages).
exempt(image, patterns) if {
	some pattern in patterns
	_exempt_match(image, pattern)
}

_exempt_match(image, pattern) if image == pattern

_exempt_match(image, pattern) if {
	endswith(pattern, "*")
	startswith(image, trim_suffix(pattern, "*"))
}
