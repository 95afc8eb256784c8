# StellaOps Attest: the http.send transport, for `opa eval` in a pipeline.
#
# POSTs the same ProviderRequest Gatekeeper sends to <provider_url>/gatekeeper/v1/verify and
# translates the ProviderResponse into the shape of Gatekeeper's external_data builtin, so the
# core sees one shape: {"responses": [[key, verdict], …], "errors": [[key, error], …],
# "system_error": "…", "status_code": n}. Every failure (no URL, connection refused, timeout,
# TLS, a body that is not a ProviderResponse, HTTP errors) becomes a system_error, and the core
# denies. Never loaded together with rego/transport/gatekeeper.
#
# Settings, each from the environment, else data.stellaops.config.<name>, else the default. The
# environment wins (threat T-F45): `opa eval --data constraint.yaml` loads the whole file at the
# root of data, so a constraint file must not be able to redirect the job's provider or its TLS.
#   provider_url      STELLAOPS_PROVIDER_URL       (required) e.g. https://stellaops.example:8443
#   ca_cert_file      STELLAOPS_PROVIDER_CA_FILE   PEM bundle to trust for the provider's TLS
#   client_cert_file  STELLAOPS_CLIENT_CERT_FILE   client certificate, when the provider wants mTLS
#   client_key_file   STELLAOPS_CLIENT_KEY_FILE    its key
#   timeout           STELLAOPS_PROVIDER_TIMEOUT   Go duration, default "5s"
package lib.stellaops.transport

_settings := {
	"provider_url": ["STELLAOPS_PROVIDER_URL", ""],
	"ca_cert_file": ["STELLAOPS_PROVIDER_CA_FILE", ""],
	"client_cert_file": ["STELLAOPS_CLIENT_CERT_FILE", ""],
	"client_key_file": ["STELLAOPS_CLIENT_KEY_FILE", ""],
	"timeout": ["STELLAOPS_PROVIDER_TIMEOUT", "5s"],
}

# setting(name): the value of one setting (see the table above).
setting(name) := value if {
	value := object.get(object.get(opa.runtime(), "env", {}), _settings[name][0], "")
	value != ""
} else := value if {
	value := data.stellaops.config[name]
	is_string(value)
	value != ""
} else := _settings[name][1]

# endpoint: where the ProviderRequest goes.
endpoint := concat("", [trim_right(setting("provider_url"), "/"), "/gatekeeper/v1/verify"])

# request(images): the http.send request object (exposed for tests and debugging).
request(images) := object.union(
	{
		"method": "POST",
		"url": endpoint,
		"headers": {"Content-Type": "application/json", "Accept": "application/json"},
		"body": {
			"apiVersion": "externaldata.gatekeeper.sh/v1beta1",
			"kind": "ProviderRequest",
			"request": {"keys": images},
		},
		"timeout": setting("timeout"),
		"raise_error": false,
		"force_json_decode": true,
	},
	_tls_options,
)

_tls_options := {option: setting(name) |
	some name, option in {
		"ca_cert_file": "tls_ca_cert_file",
		"client_cert_file": "tls_client_cert_file",
		"client_key_file": "tls_client_key_file",
	}
	setting(name) != ""
}

# verdicts(images): one POST for all image keys, answered in external_data's shape.
verdicts(images) := _failure(0, "no provider URL is configured: set STELLAOPS_PROVIDER_URL (or data.stellaops.config.provider_url)") if {
	setting("provider_url") == ""
} else := translate(http.send(request(images)))

# translate(response): an http.send response → external_data's shape.
translate(response) := _failure(
	0,
	sprintf("calling the StellaOps provider at %s failed: %s", [endpoint, _error_text(response.error)]),
) if {
	response.error
} else := _failure(
	response.status_code,
	sprintf("the StellaOps provider at %s answered HTTP %v with a body that is not a ProviderResponse", [endpoint, response.status_code]),
) if {
	not _provider_response(response)
} else := {
	"responses": [[item.key, object.get(item, "value", null)] |
		some item in _items(response)
		object.get(item, "error", "") == ""
	],
	"errors": [[item.key, item.error] |
		some item in _items(response)
		object.get(item, "error", "") != ""
	],
	"system_error": _system_error(response),
	"status_code": response.status_code,
}

_error_text(error) := error.message if {
	is_string(error.message)
} else := sprintf("%v", [error])

_failure(status, message) := {"responses": null, "errors": null, "system_error": message, "status_code": status}

_provider_response(response) if {
	response.body.kind == "ProviderResponse"
	is_object(response.body.response)
	is_array(_items(response))
	every item in _items(response) {
		is_object(item)
		is_string(item.key)
	}
}

_items(response) := object.get(response.body.response, "items", []) if {
	object.get(response.body.response, "items", []) != null
} else := []

_system_error(response) := response.body.response.systemError if {
	is_string(response.body.response.systemError)
	response.body.response.systemError != ""
} else := sprintf("the StellaOps provider at %s answered HTTP %v", [endpoint, response.status_code]) if {
	response.status_code != 200
} else := ""
