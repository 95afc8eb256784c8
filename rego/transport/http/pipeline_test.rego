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
