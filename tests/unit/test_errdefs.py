"""errdefs.wrap: context in front, the same class (so the same gRPC code) behind."""

from pycontainerd import errdefs
from pycontainerd.ttrpc.wire import RemoteError
from pycontainerd.wire.errors import code_of


def test_wrap_keeps_class_code_and_message():
    err = errdefs.NotFound("task x")
    wrapped = errdefs.wrap(err, "failed to create containerd task")
    assert type(wrapped) is errdefs.NotFound and code_of(wrapped) == code_of(err)
    assert str(wrapped) == "failed to create containerd task: task x: not found"
    assert str(err) == "task x: not found"  # the original is left alone
    runc = RemoteError("UNKNOWN", "OCI runtime create failed: exec: no such file")
    unknown = errdefs.wrap(runc, "failed to create containerd task")
    assert isinstance(unknown, RemoteError) and code_of(unknown).name == "UNKNOWN"
    assert str(unknown) == "failed to create containerd task: OCI runtime create failed: exec: no such file"
