# Admission-review helpers for the policies' tests (package stub, beside the provider stub in
# rego/testdata/stub). Loaded only with rego/policies, by the Gatekeeper-transport test run.
package stub

# pod(images): a Pod running one container per image, named c0, c1, ...
pod(images) := {
	"apiVersion": "v1",
	"kind": "Pod",
	"metadata": {"name": "app", "namespace": "default"},
	"spec": {"containers": [{"name": sprintf("c%d", [i]), "image": image} | some i, image in images]},
}

# review(resource, parameters): Gatekeeper's input for one admission review.
review(resource, parameters) := {"review": {"kind": {"kind": resource.kind}, "object": resource}, "parameters": parameters}

# now: the fixed "current time" of policy tests and samples (2026-11-25T12:00:00Z).
now := 1795608000000000000

# messages(violations): the violation messages, as a set.
messages(violations) := {v.msg | some v in violations}
