"""Ways a container's start can fail in runc, for tests that check a failure stays the
failing container's own (its pod, its shim and its neighbours carry on).

Each :class:`StartFailure` makes a CRI ``ContainerConfig`` (busybox image) whose
``StartContainer`` fails in ``runc create`` on any Linux host, and names a piece of
runc's message that the container's status must carry:

- ``missing-binary``: the command does not exist;
- ``bad-workdir``: the working directory is a regular file;
- ``bad-user``: the user may not reach the command (in a root-only directory; uid 1000
  without capabilities);
- ``bad-mount``: a host file bind-mounted onto a directory of the image.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from tests.support.cri import container_config


@dataclass(frozen=True)
class StartFailure:
    name: str
    expect: str  # in runc's message (and so in ContainerStatus.message)
    config: Callable[[str, str, Path], cri.ContainerConfig]  # (name, image, scratch dir)


def _missing_binary(name: str, image: str, scratch: Path) -> cri.ContainerConfig:
    return container_config(name, image, command=["/nonexistent"])


def _bad_workdir(name: str, image: str, scratch: Path) -> cri.ContainerConfig:
    return container_config(name, image, command=["sleep", "1000"], working_dir="/etc/passwd")


def _bad_user(name: str, image: str, scratch: Path) -> cri.ContainerConfig:
    tools = scratch / f"{name}-tools"
    tools.mkdir()
    os.chmod(tools, 0o700)  # root's alone: uid 1000 (without DAC capabilities) cannot reach into it
    script = tools / "only-root"
    script.write_text("#!/bin/sh\necho ran\n")
    os.chmod(script, 0o755)
    cfg = container_config(name, image, command=["/tools/only-root"], mounts=[
        cri.Mount(container_path="/tools", host_path=str(tools), readonly=True)])
    sc = cfg.linux.security_context
    sc.run_as_user.value = 1000
    sc.capabilities.drop_capabilities.append("ALL")
    return cfg


def _bad_mount(name: str, image: str, scratch: Path) -> cri.ContainerConfig:
    a_file = scratch / f"{name}-file"
    a_file.write_text("not a directory\n")
    return container_config(name, image, command=["sleep", "1000"], mounts=[
        cri.Mount(container_path="/etc", host_path=str(a_file))])


START_FAILURES = (
    StartFailure("missing-binary", "/nonexistent", _missing_binary),
    StartFailure("bad-workdir", "not a directory", _bad_workdir),
    StartFailure("bad-user", "permission denied", _bad_user),
    StartFailure("bad-mount", "not a directory", _bad_mount),
)


def as_crictl_config(msg) -> dict:
    """``msg`` (a CRI config) as the JSON crictl reads: proto field names, enums as numbers
    and 64-bit integers as numbers (protobuf's JSON writes those as strings, which Go's
    ``encoding/json`` refuses for an ``int64``)."""
    from google.protobuf import json_format

    out = json_format.MessageToDict(msg, preserving_proto_field_name=True, use_integers_for_enums=True)
    _numbers(msg.DESCRIPTOR, out)
    return out


_INT64 = {3, 4, 6, 16, 18}  # FieldDescriptor.TYPE_INT64, UINT64, FIXED64, SFIXED64, SINT64


def _numbers(desc, data: dict) -> None:
    for field in desc.fields:
        if field.name not in data:
            continue
        value = data[field.name]
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            continue  # string maps only in the CRI configs used here
        items = value if isinstance(value, list) else [value]
        if field.message_type is not None:
            for item in items:
                _numbers(field.message_type, item)
        elif field.type in _INT64:
            data[field.name] = [int(v) for v in items] if isinstance(value, list) else int(value)
