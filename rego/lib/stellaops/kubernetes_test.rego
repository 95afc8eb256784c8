# Tests of the Kubernetes readers: Lists (`kind: List` and every `*List`, threat T-F43).
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
	stellaops.containers(_list([deep])) == set() # the pipeline denies it (pipeline_test.rego)
}

test_success_any_object_with_items_is_read_as_a_list if {
	stellaops.containers({"apiVersion": "v1", "kind": "ConfigMap", "items": [_pod("img/hidden")]}) == {{"kind": "container", "name": "c", "image": "img/hidden"}}
}
