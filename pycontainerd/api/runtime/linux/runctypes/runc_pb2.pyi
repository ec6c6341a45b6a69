from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class RuncOptions(_message.Message):
    __slots__ = ("runtime", "runtime_root", "criu_path", "systemd_cgroup")
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ROOT_FIELD_NUMBER: _ClassVar[int]
    CRIU_PATH_FIELD_NUMBER: _ClassVar[int]
    SYSTEMD_CGROUP_FIELD_NUMBER: _ClassVar[int]
    runtime: str
    runtime_root: str
    criu_path: str
    systemd_cgroup: bool
    def __init__(self, runtime: _Optional[str] = ..., runtime_root: _Optional[str] = ..., criu_path: _Optional[str] = ..., systemd_cgroup: _Optional[bool] = ...) -> None: ...
