"""JSON Schemas of the StellaOps predicates (package data)."""
