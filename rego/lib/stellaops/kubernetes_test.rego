# Tests of the Kubernetes readers: Lists (`kind: List` and every `*List`) and unjudged(), the
# pipeline's "judge every object or deny it" (threat T-F43).
package lib.stellaops.kubernetes_test

import data.lib.stellaops

_pod(image) := {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": image}]}}

_deployment(image) := {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}

_list(items) := {"apiVersion": "v1", "kind": "List", "items": items}

_cm := {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}

test_success_containers_of_lists_and_typed_lists if {
	stellaops.containers(_list([_cm, _deployment("img/a"), _list([_pod("img/b")])])) == {
		{"kind": "container", "name": "c", "image": "img/a"},
		{"kind": "container", "name": "c", "image": "img/b"},
	}
	stellaops.containers({"apiVersion": "v1", "kind": "PodList", "items": [_pod("img/c")]}) == {{"kind": "container", "name": "c", "image": "img/c"}}
}

test_success_objects_paths if {
	[e.path | some e in stellaops.objects(_list([_cm, _list([_pod("x")])]))] == ["", "items[0]", "items[1]", "items[1].items[0]"]
}

test_success_lists_read_to_max_depth_only if {
	deep := _list([_list([_list([_list([_pod("img/4")])])])])
	stellaops.containers(deep) == {{"kind": "container", "name": "c", "image": "img/4"}}
	stellaops.unjudged(deep) == set()
	too_deep := _list([deep])
	stellaops.containers(too_deep) == set()
	stellaops.unjudged(too_deep) == {"List <unnamed> at items[0].items[0].items[0].items[0]: a List nested more than 4 Lists deep: its items are not read; flatten it"}
}

test_success_judged_kinds if {
	stellaops.unjudged(_list([_cm, _pod("x"), _deployment("y"), {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role"}])) == set()
	stellaops.unjudged(_deployment("y")) == set()
}

test_violation_when_kind_unknown_or_in_another_group if {
	msgs := stellaops.unjudged(_list([
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
	stellaops.unjudged({"apiVersion": "v1", "kind": "List", "metadata": {"name": "l"}, "items": {"a": _pod("x")}}) == {"List <l>: it is a List without an items array: there is nothing in it to judge, which is not what it claims"}
}
