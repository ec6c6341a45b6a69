"""Opaque typed values (``google.protobuf.Any`` without protobuf): a type URL and bytes.

containerd 1.6 writes bare message names as type URLs (``containerd.events.TaskExit``,
``types.containerd.io/opencontainers/runtime-spec/1/Spec`` for OCI specs in JSON), so the
core keeps whatever URL a client sent and :func:`pack` uses the bare full name.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from google.protobuf.message import Message

OCI_SPEC_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
"""Type URL containerd uses for a JSON-encoded OCI runtime spec."""


@dataclass(frozen=True)
class AnyValue:
    type_url: str
    value: bytes

    def to_json(self) -> dict[str, str]:
        return {"type_url": self.type_url, "value": base64.b64encode(self.value).decode()}

    @classmethod
    def from_json(cls, data: dict[str, str] | None) -> AnyValue | None:
        if not data:
            return None
        return cls(data["type_url"], base64.b64decode(data["value"]))


def pack(message: Message) -> AnyValue:
    """Wrap a protobuf message with containerd's bare type URL."""
    return AnyValue(message.DESCRIPTOR.full_name, message.SerializeToString())
