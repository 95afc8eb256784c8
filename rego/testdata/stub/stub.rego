# The provider stub for `opa test`: answers from the recorded verdicts under
# rego/testdata/verdicts/<case>/data.json (loaded as data.verdicts.<case>; see SOURCE.md there),
# the way the provider and Gatekeeper would. Keys with no recording are treated as the provider
# treats a registry it cannot reach: the item is omitted and named in systemError.
package stub

# items maps each recorded key to its ProviderResponse item {"key", "value", "error"}, and the
# multi-arch keys of index.rego.
items := object.union({item.key: item | some item in data.verdicts}, index_items)

# Recorded image keys, for tests.
release := data.verdicts.release.key

vulnerable := data.verdicts.vulnerable.key

unsigned := data.verdicts.unsigned.key

tampered := data.verdicts.tampered.key

stale := data.verdicts.stale.key

invalid_reference := data.verdicts.recorded_invalid_reference.key

unreachable := "registry.example.com/app:unreachable"

# external_data(request): what Gatekeeper's builtin returns (status 200: fetched, not cached).
external_data(request) := answer(request.keys)

# verdicts(images): the same, for tests that mock data.lib.stellaops.transport.verdicts.
verdicts(images) := answer(images)

answer(keys) := {
	"responses": [[k, items[k].value] | some k in keys; object.get(items[k], "error", "") == ""],
	"errors": [[k, items[k].error] | some k in keys; object.get(items[k], "error", "") != ""],
	"system_error": _system_error(keys),
	"status_code": 200,
}

# provider_response(keys): the provider's HTTP body for these keys.
provider_response(keys) := {
	"apiVersion": "externaldata.gatekeeper.sh/v1beta1",
	"kind": "ProviderResponse",
	"response": {
		"idempotent": true,
		"items": [items[k] | some k in keys; items[k]],
		"systemError": _system_error(keys),
	},
}

# http_send(request): what http.send returns when the provider answers.
http_send(request) := {"status_code": 200, "body": provider_response(request.body.request.keys)}

_system_error(keys) := concat("; ", [sprintf("%s: REGISTRY_UNREACHABLE: connection refused by registry.example.com:443", [k]) |
	some k in keys
	not items[k]
])

# Failure modes of Gatekeeper's builtin (reference/gatekeeper-external-data.md §5).

# Everything served from Gatekeeper's cache: same answer, status_code 0.
cached(request) := object.union(external_data(request), {"status_code": 0})

# The provider could not be called (connection refused, timeout, bad TLS): null fields.
send_failure(_) := {
	"responses": null,
	"errors": null,
	"system_error": "failed to send external data request: Post \"https://stellaops.stellaops.svc:8443/gatekeeper/v1/verify\": context deadline exceeded",
	"status_code": 500,
}

# An empty but well-formed answer: no items, no system error.
empty(_) := {"responses": [], "errors": [], "system_error": "", "status_code": 200}

# responses and errors absent altogether.
absent(_) := {"system_error": "", "status_code": 200}

# A whole-call system error with items still returned for other keys.
system_error(request) := object.union(external_data(request), {"system_error": "DEADLINE_EXCEEDED: the 1.5 s deadline passed"})

# Two different verdicts for one key.
conflicting(request) := {
	"responses": array.concat(external_data(request).responses, [[k, {"schemaVersion": 1, "attestations": []}] | some k in request.keys]),
	"errors": [],
	"system_error": "",
	"status_code": 200,
}

# A verdict of the wrong shape, and one of a newer schema.
malformed(request) := {"responses": [[k, "verified"] | some k in request.keys], "errors": [], "system_error": "", "status_code": 200}

future_schema(request) := {
	"responses": [[k, object.union(items[k].value, {"schemaVersion": 2})] | some k in request.keys],
	"errors": [],
	"system_error": "",
	"status_code": 200,
}

# Not an object at all.
not_an_object(_) := "oops"

# Keys recorded from the real provider (see verdicts/SOURCE.md).
recorded_logged := data.verdicts.recorded_logged.key

recorded_offline := data.verdicts.recorded_offline.key

recorded_unsigned := data.verdicts.recorded_unsigned.key

recorded_invalid_reference := data.verdicts.recorded_invalid_reference.key
