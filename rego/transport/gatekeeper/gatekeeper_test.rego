# Tests of the Gatekeeper transport: external_data mocked with a FUNCTION (a value mock cannot
# replace a builtin that is only declared), fed with recorded verdicts, through the whole core.
package lib.stellaops.transport_test

import data.lib.stellaops
import data.lib.stellaops.transport
import data.stub

_asked(request) := request

test_success_asks_provider_stellaops_with_the_keys if {
	transport.verdicts(["a", "b"]) == {"provider": "stellaops", "keys": ["a", "b"]} with external_data as _asked
}

test_success_one_call_for_all_images if {
	stellaops.verdicts({stub.release, stub.unsigned}) == {
		stub.release: stub.items[stub.release].value,
		stub.unsigned: stub.items[stub.unsigned].value,
	}
		with external_data as stub.external_data
}

test_success_seed_functions_through_external_data if {
	att := stellaops.get_attestation(stub.release, "stellaops.io/predicates/scan-result@v1") with external_data as stub.external_data
	stellaops.verify_attestation(att)
}

test_success_cached_status_zero_is_not_an_error if {
	stellaops.provider_errors([stub.release]) == {} with external_data as stub.cached
	stellaops.get_attestation(stub.release, "stellaops.io/predicates/sbom@v1") with external_data as stub.cached
}

test_fail_closed_on_send_failure if {
	errors := stellaops.provider_errors([stub.release]) with external_data as stub.send_failure
	contains(errors[stub.release], "context deadline exceeded")
	not stellaops.get_attestation(stub.release, "stellaops.io/predicates/scan-result@v1") with external_data as stub.send_failure
}

test_fail_closed_on_empty_answer if {
	errors := stellaops.provider_errors([stub.release]) with external_data as stub.empty
	contains(errors[stub.release], "no verdict")
}

test_fail_closed_on_per_key_error if {
	errors := stellaops.provider_errors([stub.invalid_reference]) with external_data as stub.external_data
	contains(errors[stub.invalid_reference], "INVALID_REFERENCE")
}

test_fail_closed_on_transient_key if {
	errors := stellaops.provider_errors([stub.unreachable, stub.release]) with external_data as stub.external_data
	object.keys(errors) == {stub.unreachable}
}
