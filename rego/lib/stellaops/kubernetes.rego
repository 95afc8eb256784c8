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

# ---------------------------------------------------------------------------------------------
# Lists: `kind: List` and every `*List` kind (PodList, DeploymentList, …), as `kubectl apply -f`
# reads them: each item is an object of its own, and an item may be a List again. Rego has no
# recursion, so lists are read to a fixed depth: max_list_depth levels of items below the object.
# The API server never sends a List to Gatekeeper; pipelines do (stella rego input makes one).
# ---------------------------------------------------------------------------------------------

max_list_depth := 4

# is_list(resource): the object is a List kind (its kind ends in "List"), whose items are objects,
# or it has a top-level `items` field of any kind: kubectl decodes every object with `items` as a
# list (apimachinery's unstructured decoder looks for the field, not the kind) and applies the
# items, so a `kind: ConfigMap` with `items: [a Deployment]` deploys the Deployment.
is_list(resource) if {
	is_string(resource.kind)
	endswith(resource.kind, "List")
}

is_list(resource) if {
	is_object(resource)
	"items" in object.keys(resource)
}

# objects(resource): the object itself and every item of every List in it, down to
# max_list_depth levels, each as {"path": "items[0].items[2]" ("" for the object), "object": …}.
objects(resource) := array.concat(
	array.concat(array.concat(_level0(resource), _level1(resource)), array.concat(_level2(resource), _level3(resource))),
	_level4(resource),
)

_level0(resource) := [{"path": "", "depth": 0, "object": resource}]

_level1(resource) := [c | some e in _level0(resource); some c in _children(e)]

_level2(resource) := [c | some e in _level1(resource); some c in _children(e)]

_level3(resource) := [c | some e in _level2(resource); some c in _children(e)]

_level4(resource) := [c | some e in _level3(resource); some c in _children(e)]

_children(entry) := [{"path": _child_path(entry.path, i), "depth": entry.depth + 1, "object": item} |
	is_list(entry.object)
	is_array(entry.object.items)
	some i, item in entry.object.items
]

_child_path("", i) := sprintf("items[%d]", [i])

_child_path(path, i) := sprintf("%s.items[%d]", [path, i]) if path != ""

# containers(resource): every image the object's pod spec pulls, as {"kind", "name", "image"},
# where kind is "container", "initContainer", "ephemeralContainer" (the containers' image) or
# "imageVolume" (a Kubernetes ImageVolume, volumes[].image.reference: an OCI image mounted into
# the Pod; its name is the volume's). Every policy checks all of them: these are all the
# image-bearing fields of a PodSpec (docs/policies.md lists them).
#
# A List's containers are those of all its items (objects(resource)).
containers(resource) := {c |
	some entry in objects(resource)
	some c in (_containers(entry.object) | _image_volumes(entry.object))
}

_containers(resource) := {{"kind": kind, "name": object.get(c, "name", ""), "image": c.image} |
	spec := pod_spec(resource)
	some field, kind in {"containers": "container", "initContainers": "initContainer", "ephemeralContainers": "ephemeralContainer"}
	some c in object.get(spec, field, [])
	is_string(c.image)
}

_image_volumes(resource) := {{"kind": "imageVolume", "name": object.get(v, "name", ""), "image": v.image.reference} |
	spec := pod_spec(resource)
	some v in object.get(spec, "volumes", [])
	is_string(v.image.reference)
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

# checked_containers(resource, parameters): the containers a constraint checks, those whose image
# matches parameters.exemptImages left out.
checked_containers(resource, parameters) := {c |
	some c in containers(resource)
	not exempt(c.image, object.get(parameters, "exemptImages", []))
}

# describe(container): how messages name a container, e.g. `container <app> image <reg/app:v1>`.
describe(container) := sprintf("%s <%s> image <%s>", [container.kind, container.name, container.image])

# provider_violations(containers): one message per container whose image has no usable verdict.
# Every policy denies these: this is what makes it fail closed. An image that is neither in
# verdicts nor in provider_errors (which should not happen) is denied too.
provider_violations(containers) := {sprintf("%s: %s", [describe(c), _no_verdict(errors, c.image)]) |
	images := {c.image | some c in containers}
	usable := verdicts(images)
	errors := provider_errors(images)
	some c in containers
	not usable[c.image]
}

_no_verdict(errors, image) := errors[image] if {
	errors[image]
} else := sprintf("the StellaOps provider gave no usable verdict for image <%s>", [image])

# requirements(parameters): the signer requirements of a constraint's parameters, for
# verify_attestation_by: parameters.signers ({authorities, keyIds, identities}) and
# parameters.requireTlog (default true).
requirements(parameters) := object.union(
	object.get(parameters, "signers", {}),
	{"requireTlog": object.get(parameters, "requireTlog", true)},
)
