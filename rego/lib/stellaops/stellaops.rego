# StellaOps Attest: the transport-neutral core of the Rego library.
#
# The provider verifies signatures, certificates and transparency-log entries; this library turns
# its verdicts (DESIGN.md §3, schemaVersion 1) into decisions. It knows no transport: verdicts come
# from data.lib.stellaops.transport.verdicts(images), which answers in the shape of Gatekeeper's
# external_data builtin, {"responses": [[key, value], …], "errors": [[key, error], …],
# "system_error": "…", "status_code": n}, whichever transport is loaded (rego/transport/).
#
# Fail closed: provider_errors(images) names every image the provider did not answer for with a
# usable verdict (system error, per-key error, missing key, null fields, unknown schema version).
# Every policy must deny on it; verdicts(images) holds only the usable verdicts.
#
# Written in plain Rego v1 without the rego.v1 import: Gatekeeper refuses that import in template
# libs, and the package sits under data.lib because Gatekeeper accepts libs nowhere else.
package lib.stellaops

import data.lib.stellaops.transport

# The verdict schema version this library reads (provider/stellaops/verdict.py SCHEMA_VERSION).
schema_version := 1

# cosign's `--type` aliases (cosign v3.1.3): users type cosign's words, so we accept them too.
# Note: `slsaprovenance` is SLSA v0.2 in cosign, and we follow cosign.
predicate_type_aliases := {
	"custom": "https://cosign.sigstore.dev/attestation/v1",
	"slsaprovenance": "https://slsa.dev/provenance/v0.2",
	"slsaprovenance02": "https://slsa.dev/provenance/v0.2",
	"slsaprovenance1": "https://slsa.dev/provenance/v1",
	"link": "https://in-toto.io/Link/v1",
	"spdx": "https://spdx.dev/Document",
	"spdxjson": "https://spdx.dev/Document",
	"cyclonedx": "https://cyclonedx.org/bom",
	"vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
	"openvex": "https://openvex.dev/ns",
}

# resolve_predicate_type(t) is the predicate type URI for a cosign alias, else t as written.
resolve_predicate_type(predicate_type) := predicate_type_aliases[predicate_type]

resolve_predicate_type(predicate_type) := predicate_type if not predicate_type_aliases[predicate_type]

# ---------------------------------------------------------------------------------------------
# Asking the provider
# ---------------------------------------------------------------------------------------------

# keys(images) is the sorted, de-duplicated array of image references sent to the provider.
# Sorting makes one admission ask one question, so Gatekeeper's memoised builtin is called once.
keys(images) := sort({image | some image in images; is_string(image)})

# verdicts(images) maps each image reference to its usable verdict, from one provider call.
# Images the provider did not answer for usably are absent here and present in provider_errors.
verdicts(images) := {image: verdict |
	response := _ask(images)
	some image in keys(images)
	not _problem(response, image, keys(images))
	verdict := _verdict(response, image)
}

# provider_errors(images) maps each image reference without a usable verdict to a readable
# message naming the image and the cause. Policies deny every entry: this is what fails closed.
provider_errors(images) := {image: message |
	response := _ask(images)
	some image in keys(images)
	message := _problem(response, image, keys(images))
}

# _ask(images): the transport's answer. A transport whose builtin failed is undefined (Gatekeeper
# and opa run without strict builtin errors); that reads as a failed call, never as "no problem".
_ask(images) := response if {
	response := transport.verdicts(keys(images))
} else := {
	"responses": null,
	"errors": null,
	"system_error": "the call to the provider failed inside the policy engine (the transport builtin returned nothing)",
	"status_code": "none",
}

# verdict(image) is the usable verdict for one image (undefined when provider_errors names it).
verdict(image) := verdicts([image])[image]

# _problem(response, image, requested): why image has no usable verdict in response. A system
# error is charged to the images it left without a verdict, or, when every requested image got
# one anyway, to all of them: a system error never passes unnoticed.
_problem(response, image, requested) := sprintf(
	"the StellaOps provider refused image <%s>: %s",
	[image, concat("; ", _key_errors(response, image))],
) if {
	count(_key_errors(response, image)) > 0
} else := sprintf(
	"the StellaOps provider could not verify image <%s> now (status %v): %s; nothing was cached, the next admission retries",
	[image, _status(response), _system_error(response)],
) if {
	_system_error(response) != ""
	_charged_with_system_error(response, image, requested)
} else := sprintf(
	"the StellaOps provider returned no responses for image <%s> (status %v, responses %v); check that the provider is reachable",
	[image, _status(response), _field(response, "responses")],
) if {
	not is_array(_field(response, "responses"))
} else := sprintf(
	"the StellaOps provider returned no verdict for image <%s>; it must answer every key it is asked",
	[image],
) if {
	count(_values(response, image)) == 0
} else := sprintf(
	"the StellaOps provider returned %d different verdicts for image <%s>; expected exactly one",
	[count(_values(response, image)), image],
) if {
	count(_values(response, image)) > 1
} else := sprintf(
	"the StellaOps provider returned a malformed verdict for image <%s>: expected an object with an attestations list (and platforms, if any, a list of digests), got %v",
	[image, _verdict(response, image)],
) if {
	not _well_formed(_verdict(response, image))
} else := sprintf(
	"the verdict for image <%s> has schemaVersion %v; this library reads schemaVersion %d: use the library that ships with the provider",
	[image, object.get(_verdict(response, image), "schemaVersion", "none"), schema_version],
) if {
	object.get(_verdict(response, image), "schemaVersion", null) != schema_version
}

_charged_with_system_error(response, image, _) if count(_values(response, image)) != 1

_charged_with_system_error(response, _, requested) if {
	every key in requested {
		count(_values(response, key)) == 1
	}
}

# _field reads a field that may be missing, so null and absent read alike.
_field(response, name) := object.get(response, name, null) if is_object(response)

_field(response, _) := null if not is_object(response)

_system_error(response) := message if {
	message := _field(response, "system_error")
	is_string(message)
} else := ""

_status(response) := object.get(response, "status_code", "none") if is_object(response)

_status(response) := "none" if not is_object(response)

_pairs(response, name) := [pair |
	some pair in _field(response, name)
	is_array(pair)
	count(pair) == 2
] if {
	is_array(_field(response, name))
} else := []

_key_errors(response, image) := {sprintf("%v", [pair[1]]) | some pair in _pairs(response, "errors"); pair[0] == image}

_values(response, image) := {pair[1] | some pair in _pairs(response, "responses"); pair[0] == image}

_verdict(response, image) := value if {
	values := _values(response, image)
	count(values) == 1
	some value in values
}

_well_formed(verdict) if {
	is_object(verdict)
	is_array(verdict.attestations)
	_platforms_well_formed(verdict)
}

# An index's platforms must be a list of digest strings: a platform the library cannot read is a
# platform it cannot judge, so the whole verdict is refused rather than judged without it.
_platforms_well_formed(verdict) if not "platforms" in object.keys(verdict)

_platforms_well_formed(verdict) if {
	is_array(verdict.platforms)
	every p in verdict.platforms {
		is_string(p)
	}
}

# ---------------------------------------------------------------------------------------------
# Choosing attestations
# ---------------------------------------------------------------------------------------------

# attestations_in(verdict, predicate_type) lists the verdict's attestations of that predicate
# type (cosign aliases accepted) about the verdict's own digest, best first: verified before
# unverified, then newest first by the *signed* creation time (signed_time_ns); attestations
# without one rank as oldest. It never returns an attestation about another digest: on an
# index's verdict it gives the index's own attestations only, never a platform's (use views).
attestations_in(verdict, predicate_type) := [verdict.attestations[r[2]] |
	want := resolve_predicate_type(predicate_type)
	ranked := sort([[_unverified_rank(a), 0 - _signed_time_ns(a), i] |
		some i, a in verdict.attestations
		is_object(a)
		a.predicateType == want
		_about(a, verdict, _digest(verdict))
	])
	some r in ranked
]

# _digest(x): the digest of a verdict, a view or an attestation ("" when absent or not a string).
_digest(x) := x.digest if {
	is_object(x)
	is_string(x.digest)
} else := ""

# _about(attestation, verdict, digest): the attestation is about digest: it names it. One that
# names no digest (a verdict from an older or hand-made producer) counts only on a verdict with
# no platforms, where it can be about nothing else; on an index it counts for no digest at all.
_about(attestation, _, digest) if _digest(attestation) == digest

_about(attestation, verdict, _) if {
	_digest(attestation) == ""
	count(platforms(verdict)) == 0
}

# ---------------------------------------------------------------------------------------------
# Views: one digest at a time (multi-arch indexes)
# ---------------------------------------------------------------------------------------------
#
# A runtime pulls ONE platform manifest of an index, so an index is admitted only if the index
# digest's own attestations satisfy the constraint, or EACH platform, on its own attestations
# alone, satisfies it. No decision may mix attestations of different digests: a clean scan of
# arm64 says nothing about amd64, nor does a VEX, a signer or a provenance.
#
# A view has the shape of a verdict, with only the attestations whose `digest` is the view's
# digest, `platforms` empty, and `view` saying what it is: {"role": "image"|"index"|"platform",
# "index": the index digest (platforms), "platform": "linux/arm64" when platformDetails says}.
# A policy computes its problems on each view with the usual choosers (they read one view's
# attestations and nothing else), then lets denials() apply the rule.

# views(verdict): the views a constraint must be judged on: the verdict's own digest first, then
# one per platform the verdict lists (none for a single-platform image).
views(verdict) := array.concat([own_view(verdict)], platform_views(verdict))

# own_view(verdict): the verdict seen with its own digest's attestations only.
own_view(verdict) := _view(verdict, _digest(verdict), _own_role(verdict), "")

# platform_views(verdict): one view per platform digest of an index, in the verdict's order.
platform_views(verdict) := [_view(verdict, p, "platform", _platform_name(verdict, p)) | some p in platforms(verdict)]

# platforms(verdict): the platform digests of an index, each once, the index's own left out.
platforms(verdict) := [p |
	some i, p in _platform_list(verdict)
	is_string(p)
	p != _digest(verdict)
	not _listed_before(verdict, i, p)
]

_platform_list(verdict) := verdict.platforms if {
	is_array(verdict.platforms)
} else := []

_listed_before(verdict, i, p) if {
	some j, q in _platform_list(verdict)
	j < i
	q == p
}

_own_role(verdict) := "index" if count(platforms(verdict)) > 0

_own_role(verdict) := "image" if count(platforms(verdict)) == 0

_platform_name(verdict, digest) := name if {
	some detail in object.get(verdict, "platformDetails", [])
	is_object(detail)
	detail.digest == digest
	name := detail.platform
	is_string(name)
} else := ""

_view(verdict, digest, role, platform) := object.union(
	object.remove(verdict, ["platformDetails", "view"]),
	{
		"digest": digest,
		"platforms": [],
		"attestations": [a |
			some a in verdict.attestations
			is_object(a)
			_about(a, verdict, digest)
		],
		"view": {"role": role, "index": _index_of(verdict, role), "platform": platform},
	},
)

_index_of(verdict, "platform") := _digest(verdict)

_index_of(_, role) := "" if role != "platform"

# describe_view(view): how messages name a view: "" for a single-platform image (messages stay as
# they were), `index <sha256:…> itself`, or `platform <sha256:…> (linux/amd64) of index <sha256:…>`.
describe_view(view) := sprintf("index <%s> itself", [view.digest]) if {
	view.view.role == "index"
} else := sprintf("platform <%s>%s of index <%s>", [view.digest, _platform_text(view.view.platform), view.view.index]) if {
	view.view.role == "platform"
} else := ""

_platform_text(name) := sprintf(" (%s)", [name]) if name != ""

_platform_text(name) := "" if name == ""

# denials(verdict, problems): the reasons to deny the image, or an empty set to admit it.
# problems maps the digest of each view in views(verdict) to the set of reasons that view fails
# the constraint (empty when it passes). The image is admitted when its own view passes, or,
# for an index, when every platform view passes. A view missing from problems fails (fail
# closed). For an index, a view counts as passing only if it carries at least one verified
# attestation: an index is never admitted on what its platforms lack, even under a constraint
# that asks for nothing. Each reason of a failing view is prefixed with describe_view, so every
# message names the digest that failed.
denials(verdict, problems) := set() if {
	_view_passes(own_view(verdict), problems)
} else := set() if {
	count(platforms(verdict)) > 0
	every view in platform_views(verdict) {
		_view_passes(view, problems)
	}
} else := {_prefixed(view, reason) |
	some view in views(verdict)
	not _view_passes(view, problems)
	some reason in _view_reasons(view, problems)
}

_view_passes(view, problems) if {
	count(_problems_of(view, problems)) == 0
	_carries_enough(view)
}

# _problems_of: the view's reasons, only when the policy gave a set for it.
_problems_of(view, problems) := problems[view.digest] if is_set(problems[view.digest])

_carries_enough(view) if view.view.role == "image"

_carries_enough(view) if {
	view.view.role != "image"
	some a in view.attestations
	a.verified == true
}

_view_reasons(view, problems) := _problems_of(view, problems) if {
	count(_problems_of(view, problems)) > 0
} else := {"it carries no verified attestation; an index passes when its own attestations pass, or when every platform passes on its own"} if {
	_problems_of(view, problems)
	not _carries_enough(view)
} else := {"the policy gave no decision for it (a policy must give one per view)"}

_prefixed(view, reason) := reason if describe_view(view) == ""

_prefixed(view, reason) := sprintf("%s: %s", [describe_view(view), reason]) if describe_view(view) != ""

_unverified_rank(attestation) := 0 if attestation.verified == true

_unverified_rank(attestation) := 1 if not attestation.verified == true

_signed_time_ns(attestation) := t if {
	t := signed_time_ns(attestation)
} else := 0

# signed_time_ns(attestation): when the attestation was made, in ns, from signed or logged
# evidence only: `created` when the provider marks it signed (createdSigned), else, for a
# verified attestation, the time its signed predicate states (scan-result scannedAt, VEX
# timestamp, as predicateSummary repeats them). Undefined when there is none: an annotation's
# time is not evidence.
signed_time_ns(attestation) := time.parse_rfc3339_ns(attestation.created) if {
	attestation.createdSigned == true
} else := time.parse_rfc3339_ns(_predicate_time(attestation.predicateSummary)) if {
	attestation.verified == true
}

_predicate_time(summary) := summary.scannedAt if {
	is_string(summary.scannedAt)
	summary.scannedAt != ""
} else := summary.timestamp

# get_attestations(image, predicate_type): every attestation of that type on the image, best first.
# It keeps the `get_` prefix because get_attestation is the seed's public name and this is its
# plural; the helpers above do not use the prefix.
get_attestations(image, predicate_type) := attestations_in(verdict(image), predicate_type)

# get_attestation(image, predicate_type): the best attestation of that type on the image.
# The name is the seed guide's public contract (`stellaops.get_attestation`), kept as written.
# Undefined when the image has none, or when the provider gave no usable verdict: the seed's
# `not has_valid_attestation(…)` then denies, so it fails closed.
get_attestation(image, predicate_type) := get_attestations(image, predicate_type)[0]

# ---------------------------------------------------------------------------------------------
# Judging attestations
# ---------------------------------------------------------------------------------------------

# verify_attestation(attestation): the provider verified it, it names at least one signer (an
# authority configured in the provider), and its transparency-log entry verified, unless the
# provider's own trust configuration did not require one for it (tlog.required false: the
# operator's requireTlog: false, cosign's --insecure-ignore-tlog). The name is the seed guide's
# public contract. Policies decide explicitly with verify_attestation_by(attestation,
# {"requireTlog": true|false}).
verify_attestation(attestation) if verify_attestation_by(attestation, {})

# verify_attestation_by(attestation, requirements) is verify_attestation with requirements on
# who signed. requirements is an object; every field is optional:
#   requireTlog  (bool)  true: the log entry must have verified; false: not needed; absent: as
#                the provider required (tlog.required, true unless requireTlog: false there)
#   authorities  ([string])            the signer's authority name is one of these
#   keyIds       ([string])            a key signer's keyId ("sha256:<hex of SPKI DER>") is one of these
#   identities   ([{issuer|issuerRegExp, subject|subjectRegExp}])  a keyless signer matches one
# One signer must satisfy authorities and, when keyIds or identities are given, one of them.
# Regexps (RE2) must match the whole value: "main" never admits "main-evil".
verify_attestation_by(attestation, requirements) if {
	is_object(requirements)
	attestation.verified == true
	_tlog_ok(attestation, requirements)
	some signer in attestation.signers
	signer_accepted(signer, requirements)
}

_tlog_ok(attestation, _) if attestation.tlog.verified == true

_tlog_ok(_, requirements) if requirements.requireTlog == false

_tlog_ok(attestation, requirements) if {
	not "requireTlog" in object.keys(requirements)
	attestation.tlog.required == false
}

# signer_accepted(signer, requirements): this signer satisfies the signer part of requirements.
signer_accepted(signer, requirements) if {
	is_object(signer)
	_authority_ok(signer, object.get(requirements, "authorities", []))
	_identity_ok(signer, requirements)
}

_authority_ok(_, names) if count(names) == 0

_authority_ok(signer, names) if signer.authority in names

_identity_ok(_, requirements) if {
	count(object.get(requirements, "keyIds", [])) == 0
	count(object.get(requirements, "identities", [])) == 0
}

_identity_ok(signer, requirements) if {
	signer.kind == "key"
	signer.keyId in object.get(requirements, "keyIds", [])
}

_identity_ok(signer, requirements) if {
	signer.kind == "keyless"
	some identity in object.get(requirements, "identities", [])
	_field_ok(signer.issuer, identity, "issuer", "issuerRegExp")
	_field_ok(signer.subject, identity, "subject", "subjectRegExp")
}

# _field_ok: the identity names the field (exactly, by regexp, or both) and every given form holds.
_field_ok(value, identity, exact, pattern) if {
	_given(identity, exact, pattern)
	_exact_ok(value, identity, exact)
	_pattern_ok(value, identity, pattern)
}

_given(identity, exact, _) if object.get(identity, exact, "") != ""

_given(identity, _, pattern) if object.get(identity, pattern, "") != ""

_exact_ok(_, identity, exact) if object.get(identity, exact, "") == ""

_exact_ok(value, identity, exact) if value == identity[exact]

_pattern_ok(_, identity, pattern) if object.get(identity, pattern, "") == ""

_pattern_ok(value, identity, pattern) if matches_whole(identity[pattern], value)

# matches_whole(pattern, value): RE2 pattern matches all of value (stricter than cosign's
# search-anywhere MatchString, on purpose: DESIGN.md §5). An invalid pattern matches nothing.
matches_whole(pattern, value) if regex.match(concat("", ["^(?:", pattern, ")$"]), value)

# accepted_attestations(verdict, predicate_type, requirements): the attestations of that type that
# verify_attestation_by accepts, best first.
accepted_attestations(verdict, predicate_type, requirements) := [a |
	some a in attestations_in(verdict, predicate_type)
	verify_attestation_by(a, requirements)
]

# accepted_attestation(verdict, predicate_type, requirements): the best accepted one.
accepted_attestation(verdict, predicate_type, requirements) := accepted_attestations(verdict, predicate_type, requirements)[0]

# why_not_accepted(verdict, predicate_type, requirements) says, for a violation message, why no
# attestation of that type is accepted, and what would pass.
why_not_accepted(verdict, predicate_type, requirements) := sprintf(
	"no attestation of type <%s> is attached%s; attach one signed by a configured authority (stella attest attach)",
	[resolve_predicate_type(predicate_type), _verdict_errors(verdict)],
) if {
	count(attestations_in(verdict, predicate_type)) == 0
} else := sprintf(
	"%d attestation(s) of type <%s> found, none verified by the provider (%s); attach one signed by a configured authority",
	[count(attestations_in(verdict, predicate_type)), resolve_predicate_type(predicate_type), _reasons(attestations_in(verdict, predicate_type))],
) if {
	count(_verified(attestations_in(verdict, predicate_type))) == 0
} else := sprintf(
	"the verified attestation(s) of type <%s> have no verified transparency-log entry; sign with a Rekor upload, or set requireTlog: false to accept offline signatures",
	[resolve_predicate_type(predicate_type)],
) if {
	count([a | some a in _verified(attestations_in(verdict, predicate_type)); _tlog_ok(a, requirements)]) == 0
} else := sprintf(
	"the verified attestation(s) of type <%s> are signed by %s; the constraint accepts only %s",
	[resolve_predicate_type(predicate_type), _signers_text(_verified(attestations_in(verdict, predicate_type))), _requirements_text(requirements)],
)

_verified(attestations) := [a | some a in attestations; a.verified == true]

_verdict_errors(verdict) := sprintf(" (provider: %s)", [concat("; ", _error_texts(verdict.errors))]) if {
	count(_error_texts(verdict.errors)) > 0
} else := ""

_error_texts(errors) := [sprintf("%v: %v", [object.get(e, "reason", "?"), object.get(e, "message", "")]) |
	some e in errors
	is_object(e)
]

_reasons(attestations) := concat("; ", {text |
	some a in attestations
	some text in _error_texts(object.get(a, "errors", []))
}) if {
	some a in attestations
	count(_error_texts(object.get(a, "errors", []))) > 0
} else := "no reason given"

_signers_text(attestations) := concat(", ", {_signer_text(s) | some a in attestations; some s in a.signers})

_signer_text(signer) := sprintf("authority <%v> (keyless %v from %v)", [signer.authority, signer.subject, signer.issuer]) if {
	signer.kind == "keyless"
} else := sprintf("authority <%v> (key %v)", [object.get(signer, "authority", "?"), object.get(signer, "keyId", "?")])

_requirements_text(requirements) := sprintf("%v", [object.remove(requirements, ["requireTlog"])])
