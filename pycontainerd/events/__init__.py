"""Events: the in-process exchange (:mod:`.exchange`) and containerd's topic names."""
