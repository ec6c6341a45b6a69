"""Namespaced metadata in LMDB: the schema (:mod:`.db`, on :mod:`pycontainerd.lmdb_env`),
the key layout (:mod:`.keys`) and one store per object kind (:mod:`.namespaces`, …). The
records the stores keep are plain types in :mod:`pycontainerd.records`."""
