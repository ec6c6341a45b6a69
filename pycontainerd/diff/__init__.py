"""Differs: apply a layer onto mounts, compare two mount sets into a layer
(``io.containerd.differ.v1``)."""
