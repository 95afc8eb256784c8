# Every image carries verified SLSA provenance from an allowed builder and source.
# Judged per digest (stellaops.views): an index passes on its own provenance or on each
# platform's own, never on a mix.
package stellaopsslsaprovenance

import data.lib.stellaops

_parameters := object.get(input, "parameters", {})

_requirements := stellaops.requirements(_parameters)

_types := object.get(_parameters, "predicateTypes", ["https://slsa.dev/provenance/v1", "https://slsa.dev/provenance/v0.2"])

_builders := object.get(_parameters, "builderIds", [])

_source_pattern := object.get(_parameters, "sourcePattern", "")

_containers := stellaops.checked_containers(input.review.object, _parameters)

_verdicts := stellaops.verdicts({c.image | some c in _containers})

# _provenance(view): this digest's own accepted provenance attestations, of any accepted type.
_provenance(view) := [a |
	some predicate_type in _types
	some a in stellaops.accepted_attestations(view, predicate_type, _requirements)
]

# _problems(view): why this digest's own provenance fails (empty: it passes).
_problems(view) := {concat(" and ", [stellaops.why_not_accepted(view, t, _requirements) | some t in _types])} if {
	count(_provenance(view)) == 0
} else := {sprintf("no verified SLSA provenance comes from an allowed builder and source: found %s; allowed builders %v, source pattern <%s>", [
	concat(", ", [sprintf("builder <%v> source <%v>", [object.get(p.predicateSummary, "builderId", ""), object.get(p.predicateSummary, "source", "")]) | some p in _provenance(view)]),
	_builders,
	_source_pattern,
])} if {
	not _some_acceptable(_provenance(view), _builders, _source_pattern)
} else := set()

violation contains {"msg": msg} if {
	some msg in stellaops.provider_violations(_containers)
}

violation contains {"msg": msg} if {
	some c in _containers
	verdict := _verdicts[c.image]
	some denial in stellaops.denials(verdict, {view.digest: _problems(view) | some view in stellaops.views(verdict)})
	msg := sprintf("%s: %s", [stellaops.describe(c), denial])
}

_some_acceptable(provenance, builders, pattern) if {
	some p in provenance
	_builder_ok(object.get(p.predicateSummary, "builderId", ""), builders)
	_source_ok(object.get(p.predicateSummary, "source", ""), pattern)
}

_builder_ok(_, builders) if count(builders) == 0

_builder_ok(builder, builders) if builder in builders

_source_ok(_, pattern) if pattern == ""

_source_ok(source, pattern) if stellaops.matches_whole(pattern, source)
