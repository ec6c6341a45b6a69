"""Namespace records ⇄ ``containerd.services.namespaces.v1.Namespace``."""

from __future__ import annotations

from ...api.services.namespaces.v1 import namespace_pb2
from ...records.namespaces import Namespace


def namespace_to_pb(ns: Namespace) -> namespace_pb2.Namespace:
    return namespace_pb2.Namespace(name=ns.name, labels=ns.labels)


def namespace_from_pb(ns: namespace_pb2.Namespace) -> Namespace:
    return Namespace(ns.name, dict(ns.labels))
