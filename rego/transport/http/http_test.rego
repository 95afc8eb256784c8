# Tests of the http.send transport: http.send mocked with a function that answers like the
# provider does (recorded verdicts), or fails the ways a network fails.
package lib.stellaops.transport_test

import data.lib.stellaops
import data.lib.stellaops.transport
import data.stub

_config := {"provider_url": "https://stellaops.example:8443/", "ca_cert_file": "/etc/ca.pem", "timeout": "2s"}

test_success_request_shape if {
	req := transport.request(["a"]) with data.stellaops.config as _config
	req.method == "POST"
	req.url == "https://stellaops.example:8443/gatekeeper/v1/verify"
	req.body == {"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderRequest", "request": {"keys": ["a"]}}
	req.timeout == "2s"
	req.tls_ca_cert_file == "/etc/ca.pem"
	req.raise_error == false
	not req.tls_client_cert_file
}

test_success_settings_from_environment if {
	env := {"env": {
		"STELLAOPS_PROVIDER_URL": "http://127.0.0.1:8080",
		"STELLAOPS_CLIENT_CERT_FILE": "/c.pem",
		"STELLAOPS_CLIENT_KEY_FILE": "/k.pem",
	}}
	req := transport.request(["a"]) with opa.runtime as env
	req.url == "http://127.0.0.1:8080/gatekeeper/v1/verify"
	req.timeout == "5s"
	req.tls_client_cert_file == "/c.pem"
	req.tls_client_key_file == "/k.pem"
}

# T-F45: `opa eval --data constraint.yaml` loads the whole file at the root of data, so a
# constraint file carrying stellaops.config must not override the job's environment.
test_success_environment_overrides_data if {
	env := {"env": {
		"STELLAOPS_PROVIDER_URL": "http://env",
		"STELLAOPS_PROVIDER_CA_FILE": "/env-ca.pem",
		"STELLAOPS_CLIENT_CERT_FILE": "/env-c.pem",
		"STELLAOPS_CLIENT_KEY_FILE": "/env-k.pem",
		"STELLAOPS_PROVIDER_TIMEOUT": "7s",
	}}
	req := transport.request(["a"]) with opa.runtime as env
		with data.stellaops.config as {
			"provider_url": "http://data", "ca_cert_file": "/data-ca.pem", "client_cert_file": "/data-c.pem",
			"client_key_file": "/data-k.pem", "timeout": "1s",
		}
	req.url == "http://env/gatekeeper/v1/verify"
	req.tls_ca_cert_file == "/env-ca.pem"
	req.tls_client_cert_file == "/env-c.pem"
	req.tls_client_key_file == "/env-k.pem"
	req.timeout == "7s"
}

test_success_data_used_when_environment_unset if {
	req := transport.request(["a"]) with opa.runtime as {"env": {"STELLAOPS_PROVIDER_URL": ""}}
		with data.stellaops.config as {"provider_url": "http://data"}
	req.url == "http://data/gatekeeper/v1/verify"
}

test_success_translates_provider_response if {
	answer := transport.verdicts([stub.release, stub.invalid_reference]) with http.send as stub.http_send
		with data.stellaops.config as _config
	answer.responses == [[stub.release, stub.items[stub.release].value]]
	answer.errors == [[stub.invalid_reference, stub.items[stub.invalid_reference].error]]
	answer.system_error == ""
	answer.status_code == 200
}

test_success_seed_functions_through_http if {
	att := stellaops.get_attestation(stub.release, "stellaops.io/predicates/scan-result@v1") with http.send as stub.http_send
		with data.stellaops.config as _config
	stellaops.verify_attestation(att)
}

test_fail_closed_without_url if {
	errors := stellaops.provider_errors([stub.release]) with opa.runtime as {"env": {}}
	contains(errors[stub.release], "no provider URL is configured")
}

_timeout(_) := {"status_code": 0, "error": {
	"code": "eval_http_send_network_error",
	"message": "Post \"https://stellaops.example:8443/gatekeeper/v1/verify\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
}}

test_fail_closed_on_timeout if {
	errors := stellaops.provider_errors([stub.release]) with http.send as _timeout with data.stellaops.config as _config
	contains(errors[stub.release], "calling the StellaOps provider at https://stellaops.example:8443/gatekeeper/v1/verify failed")
	contains(errors[stub.release], "Client.Timeout exceeded")
}

_refused(_) := {"status_code": 0, "error": "dial tcp 127.0.0.1:1: connect: connection refused"}

test_fail_closed_on_connection_refused if {
	errors := stellaops.provider_errors([stub.release]) with http.send as _refused with data.stellaops.config as _config
	contains(errors[stub.release], "connection refused")
}

_html(_) := {"status_code": 502, "raw_body": "<html>Bad Gateway</html>"}

test_fail_closed_on_non_provider_body if {
	errors := stellaops.provider_errors([stub.release]) with http.send as _html with data.stellaops.config as _config
	contains(errors[stub.release], "answered HTTP 502 with a body that is not a ProviderResponse")
}

_bad_items(_) := {"status_code": 200, "body": {"kind": "ProviderResponse", "response": {"items": [{"value": 1}]}}}

test_fail_closed_on_items_without_keys if {
	errors := stellaops.provider_errors([stub.release]) with http.send as _bad_items with data.stellaops.config as _config
	contains(errors[stub.release], "not a ProviderResponse")
}

_system_error(request) := {"status_code": 200, "body": object.union(
	stub.provider_response(request.body.request.keys),
	{"response": {"systemError": "registry.example.com/app:v1.0.0: DEADLINE_EXCEEDED: the 1.5 s deadline passed", "items": []}},
)}

test_fail_closed_on_system_error if {
	errors := stellaops.provider_errors([stub.release]) with http.send as _system_error with data.stellaops.config as _config
	contains(errors[stub.release], "DEADLINE_EXCEEDED")
}

_empty(_) := {"status_code": 200, "body": {"kind": "ProviderResponse", "response": {"idempotent": true}}}

test_fail_closed_on_empty_response if {
	errors := stellaops.provider_errors([stub.release]) with http.send as _empty with data.stellaops.config as _config
	contains(errors[stub.release], "returned no verdict")
}

_null_items(_) := {"status_code": 200, "body": {"kind": "ProviderResponse", "response": {"items": null, "systemError": ""}}}

test_fail_closed_on_null_items if {
	errors := stellaops.provider_errors([stub.release]) with http.send as _null_items with data.stellaops.config as _config
	contains(errors[stub.release], "returned no verdict")
}

_server_error(request) := {"status_code": 500, "body": stub.provider_response(request.body.request.keys)}

test_fail_closed_on_http_error_status if {
	errors := stellaops.provider_errors([stub.release]) with http.send as _server_error with data.stellaops.config as _config
	contains(errors[stub.release], "answered HTTP 500")
}

_undefined(request) := {} if {
	request.never_set
}

test_fail_closed_when_http_send_is_undefined if {
	errors := stellaops.provider_errors([stub.release]) with http.send as _undefined with data.stellaops.config as _config
	contains(errors[stub.release], "the transport builtin returned nothing")
}
