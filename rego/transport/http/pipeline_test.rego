# Tests of the pipeline gates (lib.stellaops.pipeline): the seed snippet run on every Pod of a
# List, and every image it does not read denied. The seed's own deny is mocked by a value here;
# tests/hardening/test_pipeline_input.py runs the real seed bundle against the real provider.
package lib.stellaops.pipeline_test

import data.lib.stellaops.pipeline

_pod(name, spec) := {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}

# A value mock answers the same for every Pod: enough to show the seed runs once a Pod is there,
# and not at all without one.
_denied := {"Image bad missing valid scan attestation"}

_cm := {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}

test_violation_seed_deny_runs_the_seed_on_every_pod if {
	doc := {"apiVersion": "v1", "kind": "List", "items": [_cm, _pod("bad", {"containers": [{"name": "c", "image": "bad"}]})]}
	pipeline.seed_deny == _denied with input as doc with data.stellaops.attestation.deny as _denied
}

test_success_seed_deny_without_pods_asks_nothing_of_the_seed if {
	pipeline.seed_deny == set() with input as {"apiVersion": "v1", "kind": "List", "items": [_cm]}
		with data.stellaops.attestation.deny as _denied
}

test_violation_seed_deny_names_images_the_seed_does_not_read if {
	doc := {"apiVersion": "v1", "kind": "List", "items": [
		{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "evil"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}},
		_pod("p", {"containers": [{"name": "c", "image": "good"}], "initContainers": [{"name": "i", "image": "y"}]}),
		{"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"}},
	]}
	msgs := pipeline.seed_deny with input as doc with data.stellaops.attestation.deny as set()
	count(msgs) == 3
	"Deployment <evil> at items[0]: container <c> image <x>: the seed policy reads only the containers of a kind Pod, so it cannot judge this image: check it with a shipped policy (rego/bundles/pipeline)" in msgs
	some m in msgs
	startswith(m, "Pod <p> at items[1]: initContainer <i> image <y>: the seed policy reads only")
	some t in msgs
	startswith(t, "Thing <t> at items[2]: the library cannot read the images of kind <Thing>")
}

_list(items) := {"apiVersion": "v1", "kind": "List", "items": items}

_deployment(image) := {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}

test_success_lists_judged_to_max_depth_only if {
	deep := _list([_list([_list([_list([_pod("p", {})])])])])
	pipeline.unjudged(deep) == set()
	pipeline.unjudged(_list([deep])) == {"List <unnamed> at items[0].items[0].items[0].items[0]: a List nested more than 4 Lists deep: its items are not read; flatten it"}
}

test_success_judged_kinds if {
	pipeline.unjudged(_list([_cm, _pod("x", {}), _deployment("y"), {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role"}])) == set()
	pipeline.unjudged(_deployment("y")) == set()
}

test_violation_when_kind_unknown_or_in_another_group if {
	msgs := pipeline.unjudged(_list([
		{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "ro"}},
		object.union(_deployment("y"), {"apiVersion": "evil.example/v1"}),
		{"kind": "Pod"},
		{"apiVersion": "v1"},
		"text",
	]))
	count(msgs) == 5
	some m1 in msgs
	startswith(m1, "Rollout <ro> at items[0]: the library cannot read the images of kind <Rollout> (apiVersion <argoproj.io/v1alpha1>)")
	contains(m1, "Deployment (apps|extensions)")
	some m2 in msgs
	startswith(m2, "Deployment <d> at items[1]: the library cannot read the images of kind <Deployment> (apiVersion <evil.example/v1>)")
	some m3 in msgs
	startswith(m3, "Pod <unnamed> at items[2]: the library cannot read the images of kind <Pod> (apiVersion <none>)")
	some m4 in msgs
	startswith(m4, "object <unnamed> at items[3]: the library cannot read the images of kind <none>")
	"object <unnamed> at items[4]: it is not an object (a Kubernetes object is a mapping)" in msgs
}

test_violation_when_list_has_no_items_array if {
	pipeline.unjudged({"apiVersion": "v1", "kind": "List", "metadata": {"name": "l"}, "items": {"a": _pod("x", {})}}) == {"List <l>: it is a List without an items array: there is nothing in it to judge, which is not what it claims"}
}

test_violation_when_an_object_has_items_that_are_not_an_array if {
	pipeline.unjudged({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "items": "x"}) == {"ConfigMap <c>: it is a List without an items array: there is nothing in it to judge, which is not what it claims"}
}

test_success_has_review_object if {
	pipeline.has_review_object with input as {"review": {"object": {"kind": "Pod"}}}
	not pipeline.has_review_object with input as {"apiVersion": "v1", "kind": "List", "items": []}
	not pipeline.has_review_object with input as {"review": "x"}
	contains(pipeline.no_review_object, "stella rego input")
}
