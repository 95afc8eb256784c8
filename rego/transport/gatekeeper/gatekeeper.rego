# StellaOps Attest: the Gatekeeper transport (external_data).
#
# Gatekeeper's external_data builtin already answers in the shape the core reads:
# {"responses": [[key, verdict], …], "errors": [[key, error], …], "system_error": "…",
# "status_code": n}. responses and errors are null on transport failures, status_code is 0 when
# every key came from Gatekeeper's cache; the core handles both. The Provider resource must be
# named "stellaops" (deploy/). Never loaded together with rego/transport/http.
package lib.stellaops.transport

# The name of the Gatekeeper Provider resource (externaldata.gatekeeper.sh/v1beta1).
provider := "stellaops"

# verdicts(images): one external_data call for all image keys (Gatekeeper memoises identical calls).
verdicts(images) := external_data({"provider": provider, "keys": images})
