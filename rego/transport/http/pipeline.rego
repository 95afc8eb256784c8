# StellaOps Attest: gates for `opa eval` in a pipeline (threat T-F43). Shipped in the pipeline
# bundle only (with the http transport), never in Gatekeeper templates.
#
# In a pipeline nothing chooses the objects a policy sees: the input is whatever the manifests
# hold (`stella rego input FILE...` makes one `kind: List` of every document), so a gate must
# judge every object of it, or deny it. The shipped policies do so in the pipeline bundle
# (scripts/generate.py adds `data.lib.stellaops.pipeline.unjudged` to their violations). seed_deny does it for the
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
	some msg in unjudged(input)
}

seed_deny contains msg if {
	some entry in stellaops.objects(input)
	some c in stellaops.containers(entry.object)
	not stellaops.is_list(entry.object)
	not _seed_checks(entry.object, c)
	msg := sprintf("%s: %s: the seed policy reads only the containers of a kind Pod, so it cannot judge this image: check it with a shipped policy (rego/bundles/pipeline)", [where(entry), stellaops.describe(c)])
}

_seed_reads(resource) if {
	resource.kind == "Pod"
	api_group(resource) == ""
}

_seed_checks(resource, container) if {
	_seed_reads(resource)
	container.kind == "container"
}

# has_review_object: the input has the object Gatekeeper's input carries (input.review.object).
# A query without `with input as {"review": {"object": input}, …}` (or without --input) has none,
# and a policy would judge nothing: every policy in the pipeline bundle denies then.
has_review_object if "object" in object.keys(input.review)

no_review_object := concat("", [
	"the input has no review.object, so nothing was judged: convert the manifests with `stella rego input FILE... > input.json`, ",
	"give opa --input input.json and wrap it: 'data.<policy>.violation[_].msg with input as {\"review\": {\"object\": input}, \"parameters\": data.spec.parameters}' ",
	"(docs/policies.md, \"Pipelines: opa eval\")",
])

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
	some entry in stellaops.objects(resource)
	some why in _unjudged_because(entry)
}

_unjudged_because(entry) := {"it is not an object (a Kubernetes object is a mapping)"} if {
	not is_object(entry.object)
} else := {sprintf(
	"a List nested more than %d Lists deep: its items are not read; flatten it",
	[stellaops.max_list_depth],
)} if {
	stellaops.is_list(entry.object)
	entry.depth >= stellaops.max_list_depth
} else := {"it is a List without an items array: there is nothing in it to judge, which is not what it claims"} if {
	stellaops.is_list(entry.object)
	not is_array(entry.object.items)
} else := set() if {
	stellaops.is_list(entry.object)
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
