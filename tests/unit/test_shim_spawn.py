"""The shim's posix_spawn runner (pycontainerd.shim.spawn, in place of subprocess), its
small file helpers, and its rootfs mount option parsing against pycontainerd.mount's."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from pycontainerd import mount as core_mount
from pycontainerd.shim import files, mounts, spawn
from pycontainerd.shim.runc import Stdio, spawn_runner

PY = [sys.executable, "-S", "-c"]


def test_capture_stdout_stderr_input_and_exit_status() -> None:
    code = ("import sys; d = sys.stdin.buffer.read(); sys.stdout.buffer.write(d[::-1]); sys.stderr.write('e');"
            "sys.exit(3)")
    res = spawn.run([*PY, code], capture=True, input=b"abc" * 50_000)  # more than a pipe holds
    assert res.returncode == 3 and res.stdout == (b"abc" * 50_000)[::-1] and res.stderr == b"e"


def test_without_input_stdin_is_dev_null() -> None:
    res = spawn.run([*PY, "import sys; print(repr(sys.stdin.read()))"], capture=True)
    assert (res.returncode, res.stdout.strip()) == (0, b"''")


def test_given_fds_become_the_child_stdio(tmp_path) -> None:
    out = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        res = spawn_runner([*PY, "print('to the file')"], Stdio(stdout=out), None)
    finally:
        os.close(out)
    assert res.returncode == 0 and res.stdout == b"" and (tmp_path / "out").read_text() == "to the file\n"


def test_the_child_gets_no_other_fd() -> None:
    r, w = os.pipe()
    os.set_inheritable(w, True)  # even one the shim made inheritable is closed in the child
    try:
        res = spawn.run(["ls", "/proc/self/fd"], capture=True)
    finally:
        os.close(r)
        os.close(w)
    fds = sorted(int(f) for f in res.stdout.split())
    assert res.returncode == 0 and w not in fds and max(fds) <= 3  # 0-2 and the listing's own


def test_sigpipe_and_sigxfsz_are_at_their_default_in_the_child() -> None:
    # Python ignores SIGPIPE and SIGXFSZ; an ignored signal stays ignored across exec
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN
    res = spawn.run(["cat", "/proc/self/status"], capture=True)
    ignored = int(next(ln for ln in res.stdout.decode().splitlines() if ln.startswith("SigIgn:")).split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1)) and not ignored & (1 << (signal.SIGXFSZ - 1))


def test_a_missing_binary_raises_oserror_and_a_timeout_kills() -> None:
    with pytest.raises(OSError):
        spawn.run(["/nonexistent/runc", "--version"], capture=True)
    with pytest.raises(TimeoutError):
        spawn.run(["sleep", "30"], capture=True, timeout=0.2)
    with pytest.raises(TimeoutError):
        spawn.run(["sleep", "30"], timeout=0.2)


def test_killed_child_reports_minus_signal() -> None:
    res = spawn.run(["sh", "-c", "kill -TERM $$"], capture=True)
    assert res.returncode == -signal.SIGTERM


def test_files_read_write_append_and_offset(tmp_path) -> None:
    p = str(tmp_path / "f")
    files.write(p, "héllo")
    files.write(p, b" world", append=True)
    assert files.read(p) == "héllo world".encode() and files.read_text(p) == "héllo world"
    assert files.read(p, offset=7) == b"world"
    files.write(p, "x")
    assert files.read(p) == b"x"
    with pytest.raises(FileNotFoundError):
        files.read(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError):
        files.write(str(tmp_path / "missing"), "x", create=False)


@pytest.mark.parametrize("options", [
    [], ["ro"], ["rw", "nosuid", "nodev"], ["rbind", "ro", "rprivate"], ["bind", "rw", "noexec", "slave"],
    ["defaults", "exec", "suid", "dev"], ["remount", "ro", "shared", "unbindable"],
    ["lowerdir=/a:/b", "upperdir=/u", "workdir=/w", "index=off"], ["size=64m", "mode=755", "ro", "runbindable"],
])
def test_mount_options_parse_as_pycontainerd_mount_does(options) -> None:
    assert mounts.parse_options(options) == core_mount.parse_options(options)


def test_long_overlay_options_compact_as_pycontainerd_mount_does() -> None:
    base = "/var/lib/pycontainerd/io.containerd.snapshotter.v1.overlayfs/snapshots"
    lower = ":".join(f"{base}/{i}/fs" for i in range(200))
    data = f"lowerdir={lower},upperdir={base}/201/fs,workdir={base}/201/work,index=off"
    assert mounts.compact_overlay(data) == core_mount._compact_overlay(data)
    assert mounts.compact_overlay("lowerdir=/a:/b") == core_mount._compact_overlay("lowerdir=/a:/b")
