"""The shim's posix_spawn runner (pycontainerd.shim.spawn, in place of subprocess), and the
small file helpers and mount option parsing it shares with the core (pycontainerd.sysutil)."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from pycontainerd.shim import spawn
from pycontainerd.shim.runc import Stdio, spawn_runner
from pycontainerd.sysutil import files, mounts

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


# MS_* values of <linux/mount.h>, written out so the table is checked against the kernel's
_RDONLY, _NOSUID, _NODEV, _NOEXEC, _REMOUNT, _BIND, _REC = 1, 2, 4, 8, 32, 4096, 16384
_UNBINDABLE, _PRIVATE, _SLAVE, _SHARED = 1 << 17, 1 << 18, 1 << 19, 1 << 20


@pytest.mark.parametrize("options, parsed", [
    ([], (0, 0, "")),
    (["ro"], (_RDONLY, 0, "")),
    (["rw", "nosuid", "nodev"], (_NOSUID | _NODEV, 0, "")),
    (["rbind", "ro", "rprivate"], (_BIND | _REC | _RDONLY, _PRIVATE | _REC, "")),
    (["bind", "rw", "noexec", "slave"], (_BIND | _NOEXEC, _SLAVE, "")),
    (["ro", "nosuid", "defaults", "exec", "suid", "dev", "rw"], (0, 0, "")),
    (["remount", "ro", "shared", "unbindable"], (_REMOUNT | _RDONLY, _SHARED | _UNBINDABLE, "")),
    (["lowerdir=/a:/b", "upperdir=/u", "workdir=/w", "index=off"],
     (0, 0, "lowerdir=/a:/b,upperdir=/u,workdir=/w,index=off")),
    (["size=64m", "mode=755", "ro", "runbindable"], (_RDONLY, _UNBINDABLE | _REC, "size=64m,mode=755")),
])
def test_mount_options_parse_as_mount_8_does(options, parsed) -> None:
    assert mounts.parse_options(options) == parsed


def test_long_overlay_options_compact_to_paths_relative_to_their_parent() -> None:
    base = "/var/lib/pycontainerd/io.containerd.snapshotter.v1.overlayfs/snapshots"
    lower = ":".join(f"{base}/{i}/fs" for i in range(200))
    data = f"lowerdir={lower},upperdir={base}/201/fs,workdir={base}/201/work,index=off"
    short, cwd = mounts.compact_overlay(data)
    assert cwd == base
    assert short == ("lowerdir=" + ":".join(f"{i}/fs" for i in range(200))
                     + ",upperdir=201/fs,workdir=201/work,index=off")
    assert len(data) > mounts.PAGE_SIZE > len(short)
    assert mounts.compact_overlay("lowerdir=/a:/b") is None  # nothing in common but /
