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

# is_list(resource): the object is a List kind (its kind ends in "List"), whose items are objects.
is_list(resource) if {
	is_string(resource.kind)
	endswith(resource.kind, "List")
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

# ---------------------------------------------------------------------------------------------
# Judging every object (pipelines)
# ---------------------------------------------------------------------------------------------
#
# In a pipeline nothing chooses the kinds a policy sees (Gatekeeper's constraint `match` does in a
# cluster), so a kind the library cannot read images from would pass with no image checked. The
# pipeline bundle therefore denies unjudged(input.review.object) in every policy; Gatekeeper
# templates do not (there a constraint may match every kind, and a ConfigMap must pass).
#
# A kind is judged when the library reads its images (the pod-spec kinds, in their API groups)
# or when it is a built-in kind that runs no image (image_free_kinds). A kind is named by API group
# and kind: `kind: Deployment` of `apiVersion: evil.example/v1` is a custom resource whose
# controller may run anything, not a Deployment.

# The API groups of the kinds pod_spec reads ("" is the core group, apiVersion "v1").
pod_spec_kinds := {
	"Pod": {""},
	"PodTemplate": {""},
	"ReplicationController": {""},
	"Deployment": {"apps", "extensions"},
	"StatefulSet": {"apps"},
	"DaemonSet": {"apps", "extensions"},
	"ReplicaSet": {"apps", "extensions"},
	"Job": {"batch"},
	"CronJob": {"batch"},
}

# Built-in kinds that run no image and reference none, by API group.
image_free_kinds := {
	"": {
		"ConfigMap", "Secret", "Service", "ServiceAccount", "Namespace", "Endpoints",
		"LimitRange", "ResourceQuota", "PersistentVolume", "PersistentVolumeClaim",
	},
	"rbac.authorization.k8s.io": {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"},
	"networking.k8s.io": {"Ingress", "IngressClass", "NetworkPolicy"},
	"policy": {"PodDisruptionBudget"},
	"autoscaling": {"HorizontalPodAutoscaler"},
	"scheduling.k8s.io": {"PriorityClass"},
	"storage.k8s.io": {"StorageClass"},
	"discovery.k8s.io": {"EndpointSlice"},
	"coordination.k8s.io": {"Lease"},
	"apiextensions.k8s.io": {"CustomResourceDefinition"},
}

# api_group(resource): the API group of the object's apiVersion ("" for "v1"); undefined when
# apiVersion is missing or not a string.
api_group(resource) := "" if {
	is_string(resource.apiVersion)
	not contains(resource.apiVersion, "/")
} else := split(resource.apiVersion, "/")[0] if {
	is_string(resource.apiVersion)
}

# judged(resource): the library can say which images this one object (not a List) runs.
judged(resource) if api_group(resource) in pod_spec_kinds[resource.kind]

judged(resource) if resource.kind in image_free_kinds[api_group(resource)]

# unjudged(resource): one message per object of resource (itself, or a List's items) whose images
# the library cannot find, naming it; empty when every object is judged. Lists are judged by
# their items: a List without an items array, or nested deeper than max_list_depth, is unjudged.
unjudged(resource) := {sprintf("%s: %s", [where(entry), why]) |
	some entry in objects(resource)
	some why in _unjudged_because(entry)
}

_unjudged_because(entry) := {"it is not an object (a Kubernetes object is a mapping)"} if {
	not is_object(entry.object)
} else := {sprintf(
	"a List nested more than %d Lists deep: its items are not read; flatten it",
	[max_list_depth],
)} if {
	is_list(entry.object)
	entry.depth >= max_list_depth
} else := {"it is a List without an items array: there is nothing in it to judge, which is not what it claims"} if {
	is_list(entry.object)
	not is_array(entry.object.items)
} else := set() if {
	is_list(entry.object)
} else := set() if {
	judged(entry.object)
} else := {sprintf(
	"the library cannot read the images of kind <%v> (apiVersion <%v>), so this pipeline cannot judge it; it reads %s and passes the built-in kinds that run no image",
	[object.get(entry.object, "kind", "none"), object.get(entry.object, "apiVersion", "none"), _readable_text],
)}

_readable_text := concat(", ", sort({sprintf("%s (%s)", [k, concat("|", sort({_group_text(g) | some g in groups}))]) | some k, groups in pod_spec_kinds}))

_group_text("") := "v1"

_group_text(g) := g if g != ""

# where(entry): how messages name an entry of objects(): `Deployment <app>`, `Pod <p> at items[1]`.
where(entry) := sprintf("%s <%v>", [_kind_text(entry.object), _name(entry.object)]) if {
	entry.path == ""
} else := sprintf("%s <%v> at %s", [_kind_text(entry.object), _name(entry.object), entry.path])

_kind_text(o) := sprintf("%v", [o.kind]) if {
	is_object(o)
	o.kind
} else := "object"

_name(o) := o.metadata.name if {
	is_object(o)
	o.metadata.name
} else := "unnamed"
