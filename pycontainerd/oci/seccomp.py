"""containerd's default seccomp profile (``contrib/seccomp.DefaultProfile``, containerd 1.6).

:func:`default_profile` returns a ``linux.seccomp`` object (runtime-spec ``LinuxSeccomp``):

- ``defaultAction`` ``SCMP_ACT_ERRNO`` (EPERM; containerd 1.6 sets no ``defaultErrnoRet``);
- ``architectures``: the host's native and compat ABIs (x86_64 → X86_64, X86, X32;
  aarch64 → ARM, AARCH64; …);
- rules, in containerd's order: the allowlist; ``personality`` for five ``persona`` values;
  ``ptrace`` on kernels ≥ 4.8; the architecture's extra calls; one rule per capability in
  the spec's *bounding* set that unlocks calls (walking the set in its order, as containerd
  does); and without ``CAP_SYS_ADMIN`` ``clone`` only without namespace flags and
  ``clone3`` failing with ``ENOSYS`` so that libc falls back to ``clone``.

Rules with no argument filters carry no ``args`` key (Go's ``omitempty``), so the JSON is
the bytes containerd produces.
"""

from __future__ import annotations

import os
import platform
import re
from typing import Any

ACT_ALLOW = "SCMP_ACT_ALLOW"
ACT_ERRNO = "SCMP_ACT_ERRNO"
OP_EQUAL_TO = "SCMP_CMP_EQ"
OP_MASKED_EQUAL = "SCMP_CMP_MASKED_EQ"

ENOSYS = 38  # the same number on every Linux architecture containerd lists below

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NAMESPACE_FLAGS = (
    CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP
)

ALLOWED = tuple(
    """
    accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32
    clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime
    clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range connect
    copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old
    epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
    exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir
    fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr
    flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync
    ftruncate ftruncate64 futex futex_time64 futex_waitv futimesat getcpu getcwd getdents
    getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32
    getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid
    getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname
    getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr inotify_add_watch
    inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents
    io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit io_uring_enter
    io_uring_register io_uring_setup ipc kill landlock_add_rule landlock_create_ruleset
    landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listxattr llistxattr
    _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise membarrier memfd_create
    memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect
    mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
    mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall
    munmap nanosleep newfstatat _newselect open openat openat2 pause pidfd_open
    pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64
    prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64
    pwritev pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg
    recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat renameat2
    restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo
    rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo
    sched_getaffinity sched_getattr sched_getparam sched_get_priority_max
    sched_get_priority_min sched_getscheduler sched_rr_get_interval
    sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
    sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
    semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32
    setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority
    setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32
    setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid
    setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4
    sigprocmask sigreturn socket socketcall socketpair splice stat stat64 statfs statfs64
    statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create
    timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64
    timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times
    tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat
    utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
    """.split()
)
"""Calls every container may make, whatever its capabilities."""

PERSONALITY_VALUES = (0x0, 0x0008, 0x20000, 0x20008, 0xFFFFFFFF)
"""``personality(2)`` personas allowed: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32,
and 0xffffffff (query)."""

PTRACE_MIN_KERNEL = (4, 8)
"""From 4.8 on, seccomp runs after ptrace, so ptrace cannot be used to bypass the filter."""

ARCHITECTURES = {
    "amd64": ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "arm64": ("SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64"),
    "mips64": ("SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32"),
    "mips64n32": ("SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32"),
    "mipsel64": ("SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32"),
    "mipsel64n32": ("SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32"),
    "s390x": ("SCMP_ARCH_S390", "SCMP_ARCH_S390X"),
    "riscv64": ("SCMP_ARCH_RISCV64",),
}
"""Seccomp architectures per Go ``GOARCH`` (none for the others, as in containerd)."""

ARCH_SYSCALLS = {
    "ppc64le": ("sync_file_range2", "swapcontext"),
    "arm": ("arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"),
    "amd64": ("arch_prctl", "modify_ldt"),
    "386": ("modify_ldt",),
    "s390x": ("s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"),
    "riscv64": ("riscv_flush_icache",),
}
ARCH_SYSCALLS["arm64"] = ARCH_SYSCALLS["arm"]
ARCH_SYSCALLS["s390"] = ARCH_SYSCALLS["s390x"]

CAP_SYSCALLS = {
    "CAP_DAC_READ_SEARCH": ("open_by_handle_at",),
    "CAP_SYS_ADMIN": (
        "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
        "lookup_dcookie", "mount", "mount_setattr", "move_mount", "name_to_handle_at",
        "open_tree", "perf_event_open", "quotactl", "quotactl_fd", "setdomainname",
        "sethostname", "setns", "syslog", "umount", "umount2", "unshare",
    ),
    "CAP_SYS_BOOT": ("reboot",),
    "CAP_SYS_CHROOT": ("chroot",),
    "CAP_SYS_MODULE": ("delete_module", "init_module", "finit_module"),
    "CAP_SYS_PACCT": ("acct",),
    "CAP_SYS_PTRACE": ("kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"),
    "CAP_SYS_RAWIO": ("iopl", "ioperm"),
    "CAP_SYS_TIME": ("settimeofday", "stime", "clock_settime", "clock_settime64"),
    "CAP_SYS_TTY_CONFIG": ("vhangup",),
    "CAP_SYS_NICE": ("get_mempolicy", "mbind", "set_mempolicy"),
    "CAP_SYSLOG": ("syslog",),
    "CAP_BPF": ("bpf",),
    "CAP_PERFMON": ("perf_event_open",),
}  # fmt: skip
"""Calls a capability in the bounding set unlocks."""

_MACHINE_TO_GOARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "i386": "386",
    "i486": "386",
    "i586": "386",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "s390": "s390",
    "riscv64": "riscv64",
    "mips64": "mips64",
    "mips64el": "mipsel64",
}


def goarch(machine: str | None = None) -> str:
    """Go's ``GOARCH`` for a ``uname -m`` machine name (or a GOARCH), default: this host."""
    m = machine if machine is not None else platform.machine()
    if m in _MACHINE_TO_GOARCH:
        return _MACHINE_TO_GOARCH[m]
    if m.startswith("arm"):
        return "arm"
    return m


def kernel_at_least(want: tuple[int, int], release: str | None = None) -> bool | None:
    """Whether the kernel release (default: this one) is at least ``want``; None if unparsable."""
    rel = release if release is not None else os.uname().release
    m = re.match(r"(\d+)\.(\d+)", rel)
    if not m:
        return None
    return (int(m.group(1)), int(m.group(2))) >= want


def _rule(names, action: str = ACT_ALLOW, args=None, errno_ret: int | None = None) -> dict[str, Any]:
    r: dict[str, Any] = {"names": list(names), "action": action}
    if errno_ret is not None:
        r["errnoRet"] = errno_ret
    if args:
        r["args"] = args
    return r


def _arg(index: int, value: int, op: str, value_two: int = 0) -> dict[str, Any]:
    a: dict[str, Any] = {"index": index, "value": value}
    if value_two:
        a["valueTwo"] = value_two
    a["op"] = op
    return a


def default_profile(spec: dict[str, Any], *, arch: str | None = None, kernel_release: str | None = None) -> dict[str, Any]:
    """containerd's default seccomp profile for ``spec``.

    Apply it *after* the capabilities are final: the rules depend on
    ``spec["process"]["capabilities"]["bounding"]``. ``arch`` (a ``uname -m`` name or a
    GOARCH) and ``kernel_release`` default to this host's.
    """
    ga = goarch(arch)
    rules = [_rule(ALLOWED)]
    rules += [_rule(["personality"], args=[_arg(0, v, OP_EQUAL_TO)]) for v in PERSONALITY_VALUES]
    if kernel_at_least(PTRACE_MIN_KERNEL, kernel_release):
        rules.append(_rule(["ptrace"]))
    if ga in ARCH_SYSCALLS:
        rules.append(_rule(ARCH_SYSCALLS[ga]))

    bounding = ((spec.get("process") or {}).get("capabilities") or {}).get("bounding") or []
    admin = False
    for cap in bounding:
        if cap == "CAP_SYS_ADMIN":
            admin = True
        if cap in CAP_SYSCALLS:
            rules.append(_rule(CAP_SYSCALLS[cap]))

    if not admin:
        # s390 passes the clone flags in the second argument.
        index = 1 if ga in ("s390", "s390x") else 0
        rules.append(_rule(["clone"], args=[_arg(index, CLONE_NAMESPACE_FLAGS, OP_MASKED_EQUAL)]))
        rules.append(_rule(["clone3"], ACT_ERRNO, errno_ret=ENOSYS))

    profile: dict[str, Any] = {"defaultAction": ACT_ERRNO}
    if ARCHITECTURES.get(ga):
        profile["architectures"] = list(ARCHITECTURES[ga])
    profile["syscalls"] = rules
    return profile
