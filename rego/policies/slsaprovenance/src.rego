# Every image carries verified SLSA provenance from an allowed builder and source.
package stellaopsslsaprovenance

import data.lib.stellaops

_parameters := object.get(input, "parameters", {})

_requirements := stellaops.requirements(_parameters)

_types := object.get(_parameters, "predicateTypes", ["https://slsa.dev/provenance/v1", "https://slsa.dev/provenance/v0.2"])

_builders := object.get(_parameters, "builderIds", [])

_source_pattern := object.get(_parameters, "sourcePattern", "")

_containers := stellaops.checked_containers(input.review.object, _parameters)

_verdicts := stellaops.verdicts({c.image | some c in _containers})

# _provenance maps each image to its accepted provenance attestations, of any accepted type.
_provenance[image] := accepted if {
	some image, verdict in _verdicts
	accepted := [a |
		some predicate_type in _types
		some a in stellaops.accepted_attestations(verdict, predicate_type, _requirements)
	]
}

violation contains {"msg": msg} if {
	some msg in stellaops.provider_violations(_containers)
}

violation contains {"msg": msg} if {
	some c in _containers
	verdict := _verdicts[c.image]
	count(_provenance[c.image]) == 0
	msg := sprintf("%s: %s", [
		stellaops.describe(c),
		concat(" and ", [stellaops.why_not_accepted(verdict, t, _requirements) | some t in _types]),
	])
}

violation contains {"msg": msg} if {
	some c in _containers
	provenance := _provenance[c.image]
	count(provenance) > 0
	not _some_acceptable(provenance, _builders, _source_pattern)
	msg := sprintf("%s: no verified SLSA provenance comes from an allowed builder and source: found %s; allowed builders %v, source pattern <%s>", [
		stellaops.describe(c),
		concat(", ", [sprintf("builder <%v> source <%v>", [object.get(p.predicateSummary, "builderId", ""), object.get(p.predicateSummary, "source", "")]) | some p in provenance]),
		_builders,
		_source_pattern,
	])
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
