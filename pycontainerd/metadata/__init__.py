"""Namespaced metadata in LMDB: the schema and transactions (:mod:`.db`) and one store per
object kind (:mod:`.namespaces`, …)."""
