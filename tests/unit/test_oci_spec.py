"""OCI spec generation (issue 5): containerd 1.6's default spec, the spec options, safe user
lookup in an image rootfs, and the default seccomp profile.

Expected values are spelled out here from containerd 1.6.20 (``oci/spec.go``,
``oci/mounts.go``, ``oci/spec_opts*.go``, ``contrib/seccomp/seccomp_default.go``), not
computed by the code under test.
"""

from __future__ import annotations

import json
import os

import pytest

from pycontainerd.errdefs import FailedPrecondition, InvalidArgument
from pycontainerd.oci import opts as o
from pycontainerd.oci import seccomp
from pycontainerd.oci.spec import cgroup_mode, default_spec, from_any, marshal, to_any
from pycontainerd.oci.user import dir_in_root, read_in_root

CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]  # fmt: skip

CONTAINERD_DEFAULT = {
    "ociVersion": "1.0.2-dev",
    "process": {
        "user": {"uid": 0, "gid": 0},
        "cwd": "/",
        "capabilities": {"bounding": CAPS, "effective": CAPS, "permitted": CAPS},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs"},
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    ],
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "cgroupsPath": "/default/c1",
        "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}],
        "maskedPaths": [
            "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
        ],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
}  # fmt: skip

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def gen(*opts, **kw):
    return o.generate("default", "c1", *opts, **kw)


# --- defaults -----------------------------------------------------------------------------


def test_default_spec_is_containerds():
    assert default_spec("default", "c1") == CONTAINERD_DEFAULT
    assert gen() == CONTAINERD_DEFAULT


def test_default_spec_has_no_args_env_or_seccomp():
    s = default_spec("default", "c1")
    assert "args" not in s["process"] and "env" not in s["process"]
    assert "seccomp" not in s["linux"] and "hostname" not in s


def test_cgroups_path_is_namespace_and_id():
    assert default_spec("k8s.io", "abc")["linux"]["cgroupsPath"] == "/k8s.io/abc"


def test_defaults_are_fresh_copies():
    a = default_spec("default", "c1")
    a["mounts"][0]["options"].append("x")
    a["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    assert default_spec("default", "c1") == CONTAINERD_DEFAULT


def test_namespace_required_and_ids_validated():
    with pytest.raises(FailedPrecondition, match="namespace is required"):
        default_spec("", "c1")
    with pytest.raises(InvalidArgument):
        default_spec("bad/ns", "c1")
    with pytest.raises(InvalidArgument):
        default_spec("default", "../escape")


def test_marshal_round_trip_through_any():
    s = gen(o.with_process_args("true"))
    a = to_any(s)
    assert a.type_url == "types.containerd.io/opencontainers/runtime-spec/1/Spec"
    assert json.loads(a.value) == s
    assert from_any(a) == s
    assert b" " not in marshal({"a": [1, 2]})


def test_cgroup_mode_from_mountinfo(tmp_path):
    def mode(lines):
        p = tmp_path / "mi"
        p.write_text("".join(f"{i} 1 0:{i} / {mp} rw - {fs} {fs} rw\n" for i, (mp, fs) in enumerate(lines)))
        return cgroup_mode(str(p))

    assert mode([("/sys/fs/cgroup", "cgroup2")]) == "unified"
    assert mode([("/sys/fs/cgroup", "tmpfs"), ("/sys/fs/cgroup/cpu", "cgroup"), ("/sys/fs/cgroup/unified", "cgroup2")]) == "hybrid"
    assert mode([("/sys/fs/cgroup", "tmpfs"), ("/sys/fs/cgroup/memory", "cgroup")]) == "legacy"
    assert mode([("/", "ext4")]) == "unavailable"
    assert cgroup_mode(str(tmp_path / "missing")) == "unavailable"


# --- process options ----------------------------------------------------------------------


def test_process_args_and_cwd():
    s = gen(o.with_process_args("sh", "-c", "echo hi"), o.with_process_cwd("/tmp"))
    assert s["process"]["args"] == ["sh", "-c", "echo hi"]
    assert s["process"]["cwd"] == "/tmp"
    with pytest.raises(InvalidArgument, match="absolute"):
        o.with_process_cwd("relative")
    with pytest.raises(InvalidArgument):
        o.with_process_args("sh", 3)


def test_env_merge_replaces_by_key_appends_and_unsets():
    s = gen(o.with_env(["A=1", "B=2", "C=3"]), o.with_env(["B=20", "D=4", "C", "NOPE"]))
    assert s["process"]["env"] == ["A=1", "B=20", "D=4"]
    assert o.replace_or_append_env(["X=1", "Y=2"], ["Y=3", "X=", "Z=z=z"]) == ["X=", "Y=3", "Z=z=z"]
    assert "env" not in gen(o.with_env([]))["process"]
    with pytest.raises(InvalidArgument):
        o.with_env("A=1")


def test_default_path_env():
    s = gen(o.with_env(["PATH=/x", "A=1"]), o.with_default_path_env)
    assert s["process"]["env"] == [DEFAULT_PATH, "A=1"]


def test_tty_appends_term_and_flag_options_work_called_or_not():
    s = gen(o.with_env(["A=1"]), o.with_tty)
    assert s["process"]["terminal"] is True
    assert s["process"]["env"] == ["A=1", "TERM=xterm"]
    assert gen(o.with_tty()) == gen(o.with_tty)
    assert gen(o.with_tty_size(80, 24))["process"]["consoleSize"] == {"height": 24, "width": 80}


def test_hostname():
    assert gen(o.with_hostname("box"))["hostname"] == "box"
    assert "hostname" not in gen(o.with_hostname("box"), o.with_hostname(""))


def test_no_new_privileges_toggle():
    s = gen(o.with_new_privileges)
    assert "noNewPrivileges" not in s["process"]
    assert gen(o.with_new_privileges, o.with_no_new_privileges)["process"]["noNewPrivileges"] is True


def test_rlimits_replace_by_type_and_append():
    s = gen(o.with_rlimits([{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 2048},
                            {"type": "RLIMIT_NPROC", "hard": 10, "soft": 10}]))  # fmt: skip
    assert s["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 2048},
        {"type": "RLIMIT_NPROC", "hard": 10, "soft": 10},
    ]
    with pytest.raises(InvalidArgument, match="unknown rlimit type"):
        o.with_rlimits([{"type": "NOFILE", "hard": 1, "soft": 1}])
    with pytest.raises(InvalidArgument, match="soft limit"):
        o.with_rlimits([{"type": "RLIMIT_CORE", "hard": 1, "soft": 2}])


def test_oom_score_adj_and_restrict_clamp():
    assert gen(o.with_oom_score_adj(-500))["process"]["oomScoreAdj"] == -500
    assert gen(o.with_oom_score_adj(-500, restrict=True, current=-100))["process"]["oomScoreAdj"] == -100
    assert gen(o.with_oom_score_adj(300, restrict=True, current=-100))["process"]["oomScoreAdj"] == 300
    with open("/proc/self/oom_score_adj") as f:
        mine = int(f.read())
    assert gen(o.with_oom_score_adj(-1000, restrict=True))["process"]["oomScoreAdj"] == mine
    assert gen(o.with_oom_score_adj(1000, restrict=True))["process"]["oomScoreAdj"] == 1000
    with pytest.raises(InvalidArgument):
        o.with_oom_score_adj(1001)
    with pytest.raises(InvalidArgument):
        o.with_oom_score_adj("5")


def test_apparmor_and_selinux():
    s = gen(o.with_apparmor_profile("cri-containerd.apparmor.d"), o.with_selinux_label("l"))
    assert s["process"]["apparmorProfile"] == "cri-containerd.apparmor.d"
    assert s["process"]["selinuxLabel"] == "l"
    assert "apparmorProfile" not in gen(o.with_apparmor_profile("x"), o.with_apparmor_profile(""))["process"]


# --- resources, root, mounts ---------------------------------------------------------------


def test_memory_cpu_pids():
    s = gen(o.with_memory_limit(64 << 20), o.with_cpu_shares(512), o.with_pids_limit(20), o.with_memory_swap(-1))
    r = s["linux"]["resources"]
    assert r["memory"] == {"limit": 67108864, "swap": -1}
    assert r["cpu"] == {"shares": 512}
    assert r["pids"] == {"limit": 20}
    assert r["devices"] == [{"allow": False, "access": "rwm"}]
    with pytest.raises(InvalidArgument):
        o.with_memory_limit(0)
    with pytest.raises(InvalidArgument):
        o.with_memory_limit(True)


@pytest.mark.parametrize(
    ("cpus", "quota"), [(1.5, 150000), (0.5, 50000), (2, 200000), (0.001, 100), (0.29, 28999)]
)
def test_cpus_become_quota_over_period_100000(cpus, quota):
    # ctr run --cpus: period 100000, quota int64(cpus * 100000) (truncated, as Go converts).
    cpu = gen(o.with_cpus(cpus))["linux"]["resources"]["cpu"]
    assert cpu == {"quota": quota, "period": 100000}


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "1", True])
def test_cpus_refuses_non_positive(bad):
    with pytest.raises(InvalidArgument, match="cpus"):
        o.with_cpus(bad)


def test_cpuset_and_cfs():
    cpu = gen(o.with_cpuset_cpus("0-1"), o.with_cpuset_mems("0"), o.with_cpu_cfs(-1, 0))["linux"]["resources"]["cpu"]
    assert cpu == {"cpus": "0-1", "mems": "0", "quota": -1, "period": 0}
    with pytest.raises(InvalidArgument):
        o.with_cpuset_cpus("all")


def test_readonly_rootfs_and_rootfs_path():
    s = gen(o.with_readonly_rootfs, o.with_rootfs_path("/abs/rootfs"))
    assert s["root"] == {"path": "/abs/rootfs", "readonly": True}


def test_mounts_append_and_override_by_destination():
    s = gen(o.with_mounts([
        {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind", "ro"]},
        {"destination": "/run/", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
    ]))  # fmt: skip
    dests = [m["destination"] for m in s["mounts"]]
    assert dests == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/data", "/run/"]
    assert s["mounts"][-1]["options"] == ["size=1m"]
    assert s["mounts"][-2] == {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind", "ro"]}
    with pytest.raises(InvalidArgument, match="absolute"):
        o.with_mounts([{"destination": "data", "type": "bind", "source": "/srv"}])
    s = gen(o.without_mounts("/run", "/dev/mqueue"))
    assert [m["destination"] for m in s["mounts"]] == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/sys"]


def test_dev_shm_size():
    s = gen(o.with_dev_shm_size(1024))
    shm = next(m for m in s["mounts"] if m["destination"] == "/dev/shm")
    assert shm["options"] == ["nosuid", "noexec", "nodev", "mode=1777", "size=1024k"]
    with pytest.raises(InvalidArgument, match="no /dev/shm"):
        gen(o.without_mounts("/dev/shm"), o.with_dev_shm_size(1))


def test_masked_and_readonly_paths():
    s = gen(o.with_masked_paths(["/proc/x"]), o.with_readonly_paths(None))
    assert s["linux"]["maskedPaths"] == ["/proc/x"]
    assert "readonlyPaths" not in s["linux"]


# --- capabilities, namespaces, cgroup ---------------------------------------------------


def test_capabilities_set_add_drop():
    s = gen(o.with_capabilities(["CAP_KILL"]))
    assert s["process"]["capabilities"] == {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}
    s = gen(o.with_added_capabilities(["CAP_SYS_ADMIN", "CAP_KILL"]), o.with_dropped_capabilities(["CAP_CHOWN", "CAP_NET_RAW"]))
    want = [c for c in CAPS if c not in ("CAP_CHOWN", "CAP_NET_RAW")] + ["CAP_SYS_ADMIN"]
    for k in ("bounding", "effective", "permitted"):
        assert s["process"]["capabilities"][k] == want
    s = gen(o.with_capabilities([]))
    assert s["process"]["capabilities"] == {}
    with pytest.raises(InvalidArgument, match="'CAP_' prefix"):
        o.with_added_capabilities(["SYS_ADMIN"])
    s = gen(o.with_ambient_capabilities(["CAP_NET_BIND_SERVICE"]))
    assert s["process"]["capabilities"]["ambient"] == ["CAP_NET_BIND_SERVICE"]
    assert s["process"]["capabilities"]["inheritable"] == ["CAP_NET_BIND_SERVICE"]


def test_current_capabilities_parses_capeff(tmp_path):
    p = tmp_path / "status"
    p.write_text("Name:\tx\nCapEff:\t0000000000200001\n")  # bits 0 and 21
    assert o.current_capabilities(str(p)) == ["CAP_CHOWN", "CAP_SYS_ADMIN"]


def test_host_and_linux_namespaces():
    s = gen(o.with_host_namespace("network"), o.with_linux_namespace("ipc", "/proc/1/ns/ipc"), o.with_linux_namespace("user"))
    assert s["linux"]["namespaces"] == [
        {"type": "pid"}, {"type": "ipc", "path": "/proc/1/ns/ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "user"},
    ]  # fmt: skip
    with pytest.raises(InvalidArgument, match="unknown Linux namespace type"):
        o.with_host_namespace("net")
    with pytest.raises(InvalidArgument):
        o.with_linux_namespace("ipc", "relative")


def test_user_namespace_mappings():
    s = gen(o.with_user_namespace([{"containerID": 0, "hostID": 100000, "size": 65536}],
                                  [{"containerID": 0, "hostID": 100000, "size": 65536}]))  # fmt: skip
    assert {"type": "user"} in s["linux"]["namespaces"]
    assert s["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 100000, "size": 65536}]


def test_cgroup_path_and_cgroupns_only_on_unified():
    assert gen(o.with_cgroup("/custom/x"))["linux"]["cgroupsPath"] == "/custom/x"
    assert "cgroupsPath" not in gen(o.with_cgroup(""))["linux"]
    assert gen(o.with_cgroup("/x"), o.with_namespaced_cgroup)["linux"]["cgroupsPath"] == "/default/c1"
    assert {"type": "cgroup"} in gen(o.with_cgroup_namespace_if_unified("unified"))["linux"]["namespaces"]
    assert gen(o.with_cgroup_namespace_if_unified("hybrid")) == CONTAINERD_DEFAULT
    assert gen(o.with_cgroup_namespace_if_unified("legacy")) == CONTAINERD_DEFAULT


def test_annotations_and_sysctls_merge():
    s = gen(o.with_annotations({"a": "1", "b": "2"}), o.with_annotations({"b": "3"}))
    assert s["annotations"] == {"a": "1", "b": "3"}
    s = gen(o.with_sysctls({"net.ipv4.ip_forward": "1"}), o.with_sysctls({"kernel.shm_rmid_forced": "1"}))
    assert s["linux"]["sysctl"] == {"net.ipv4.ip_forward": "1", "kernel.shm_rmid_forced": "1"}
    with pytest.raises(InvalidArgument):
        o.with_annotations({"a": 1})
    with pytest.raises(InvalidArgument, match="sysctl"):
        o.with_sysctls({"../x": "1"})


# --- devices ------------------------------------------------------------------------------


def test_devices_from_host_path():
    s = gen(o.with_devices("/dev/null", "/dev/mynull", "rw"))
    assert s["linux"]["devices"][0]["path"] == "/dev/mynull"
    assert (s["linux"]["devices"][0]["type"], s["linux"]["devices"][0]["major"], s["linux"]["devices"][0]["minor"]) == ("c", 1, 3)
    assert s["linux"]["resources"]["devices"] == [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
    ]
    with pytest.raises(InvalidArgument, match="error stating device path"):
        gen(o.with_devices("/dev/does-not-exist"))
    with pytest.raises(InvalidArgument, match="permissions"):
        o.with_devices("/dev/null", "", "rwx")


def test_default_unix_devices_and_all_allowed():
    rules = gen(o.with_default_unix_devices)["linux"]["resources"]["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}
    assert [(r["major"], r.get("minor")) for r in rules[1:]] == [
        (1, 3), (1, 8), (1, 7), (5, 0), (1, 5), (1, 9), (5, 1), (136, None), (5, 2),
    ]  # fmt: skip
    assert all(r["allow"] and r["type"] == "c" and r["access"] == "rwm" for r in rules[1:])
    assert gen(o.with_all_devices_allowed)["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]


# --- privileged ---------------------------------------------------------------------------


def test_privileged():
    s = gen(o.with_seccomp(), o.with_apparmor_profile("p"), o.with_privileged)
    current = o.current_capabilities()
    # every capability this process holds (none at all when not root: then omitted, as Go's omitempty)
    expected = {"bounding": current, "effective": current, "permitted": current} if current else {}
    assert s["process"].get("capabilities", {}) == expected
    assert "maskedPaths" not in s["linux"] and "readonlyPaths" not in s["linux"]
    assert "seccomp" not in s["linux"] and "apparmorProfile" not in s["process"]
    assert s["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    sysfs = next(m for m in s["mounts"] if m["type"] == "sysfs")
    assert sysfs["options"] == ["nosuid", "noexec", "nodev", "rw"]


# --- image config -------------------------------------------------------------------------


@pytest.fixture
def rootfs(tmp_path):
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "# a comment\n"
        "\n"
        "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
        "alice:x:1000:1000:Alice:/home/alice:/bin/sh\n"
        "bob:x:1001:100::/home/bob:/bin/sh\n"
    )
    (r / "etc" / "group").write_text(
        "root:x:0:root\n"
        "wheel:x:10:root,alice\n"
        "users:x:100:bob\n"
        "docker:x:999:alice,bob\n"
        "alice:x:1000:alice\n"
    )
    return r


def image(**config):
    return {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}, "config": config}


@pytest.mark.parametrize(
    ("config", "args", "want"),
    [
        ({"Entrypoint": ["/bin/ep", "-x"]}, None, ["/bin/ep", "-x"]),
        ({"Cmd": ["sh", "-c", "true"]}, None, ["sh", "-c", "true"]),
        ({"Entrypoint": ["/bin/ep"], "Cmd": ["--flag"]}, None, ["/bin/ep", "--flag"]),
        ({"Entrypoint": ["/bin/ep"], "Cmd": ["--flag"]}, ["--other", "x"], ["/bin/ep", "--other", "x"]),
        ({"Cmd": ["sh"]}, ["echo", "hi"], ["echo", "hi"]),
        ({"Entrypoint": ["/bin/ep"], "Cmd": ["--flag"]}, [], ["/bin/ep", "--flag"]),
    ],
    ids=["entrypoint-only", "cmd-only", "both", "args-replace-cmd-keep-entrypoint", "args-replace-cmd", "empty-args"],
)
def test_image_config_args(rootfs, config, args, want):
    s = gen(o.with_image_config(args=args), image_config=image(**config), rootfs=rootfs)
    assert s["process"]["args"] == want


def test_image_config_no_command_leaves_args_unset(rootfs):
    assert "args" not in gen(o.with_image_config(), image_config=image(), rootfs=rootfs)["process"]


def test_image_config_env_cwd_and_root_groups(rootfs):
    s = gen(o.with_image_config(), image_config=image(Cmd=["sh"]), rootfs=rootfs)
    assert s["process"]["env"] == [DEFAULT_PATH]
    assert s["process"]["cwd"] == "/"
    # no User: root, with root's supplementary groups from /etc/group (wheel), primary first.
    assert s["process"]["user"] == {"uid": 0, "gid": 0, "additionalGids": [0, 10]}


def test_image_config_env_merges_spec_env_over_image_env(rootfs):
    cfg = image(Env=["PATH=/img/bin", "A=img", "B=img"], WorkingDir="/work", Cmd=["x"])
    s = gen(o.with_env(["A=spec", "C=spec"]), o.with_image_config(), o.with_env(["B=late"]), image_config=cfg, rootfs=rootfs)
    assert s["process"]["env"] == ["PATH=/img/bin", "A=spec", "B=late", "C=spec"]
    assert s["process"]["cwd"] == "/work"


def test_image_config_user(rootfs):
    s = gen(o.with_image_config(), image_config=image(User="alice", Cmd=["x"]), rootfs=rootfs)
    assert s["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 10, 999]}
    s = gen(o.with_image_config(), image_config=image(User="1001", Cmd=["x"]), rootfs=rootfs)
    assert s["process"]["user"] == {"uid": 1001, "gid": 100, "additionalGids": [100, 999]}


def test_image_config_accepts_bare_config_section_and_context(rootfs):
    s = gen(o.with_image_config({"Cmd": ["a"]}), rootfs=rootfs)
    assert s["process"]["args"] == ["a"]
    with pytest.raises(InvalidArgument, match="no image config"):
        gen(o.with_image_config(), rootfs=rootfs)
    with pytest.raises(InvalidArgument, match="Cmd"):
        gen(o.with_image_config({"Cmd": "sh"}), rootfs=rootfs)


def test_image_config_needs_linux_section(rootfs):
    spec = default_spec("default", "c1")
    del spec["linux"]
    with pytest.raises(InvalidArgument, match="Linux or Windows"):
        o.apply(spec, o.SpecContext("default", "c1", rootfs=str(rootfs)), o.with_image_config({"Cmd": ["a"]}))


# --- users --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("userstr", "want"),
    [
        ("alice", {"uid": 1000, "gid": 1000, "additionalGids": [1000, 10, 999]}),
        ("bob", {"uid": 1001, "gid": 100, "additionalGids": [100, 999]}),
        ("1000", {"uid": 1000, "gid": 1000, "additionalGids": [1000, 10, 999]}),
        ("4242", {"uid": 4242, "gid": 0, "additionalGids": [0]}),
        ("alice:users", {"uid": 1000, "gid": 100, "additionalGids": [100, 10, 999]}),
        ("1001:wheel", {"uid": 1001, "gid": 10, "additionalGids": [10, 100, 999]}),
        ("daemon:5", {"uid": 1, "gid": 5, "additionalGids": [5]}),
        ("1000:1000", {"uid": 1000, "gid": 1000, "additionalGids": [1000, 10, 999]}),
        ("root", {"uid": 0, "gid": 0, "additionalGids": [0, 10]}),
    ],
)
def test_with_user_resolves_in_rootfs(rootfs, userstr, want):
    assert gen(o.with_user(userstr), rootfs=rootfs)["process"]["user"] == want


def test_with_user_without_supplementary_groups(rootfs):
    assert gen(o.with_user("alice", additional_gids=False), rootfs=rootfs)["process"]["user"] == {
        "uid": 1000, "gid": 1000, "additionalGids": [1000],
    }  # fmt: skip
    # uid:gid needs no rootfs at all
    assert gen(o.with_user("7:8", additional_gids=False))["process"]["user"] == {"uid": 7, "gid": 8, "additionalGids": [8]}


def test_with_user_uses_absolute_root_path(rootfs):
    s = gen(o.with_rootfs_path(str(rootfs)), o.with_user("bob"))
    assert s["process"]["user"]["uid"] == 1001


def test_with_user_errors(rootfs):
    with pytest.raises(InvalidArgument, match="no users found") as e:
        gen(o.with_user("nobody"), rootfs=rootfs)
    assert e.value.code == "INVALID_ARGUMENT" and "nobody" in str(e.value)
    with pytest.raises(InvalidArgument, match="no groups found"):
        gen(o.with_user("alice:nogroup"), rootfs=rootfs)
    with pytest.raises(InvalidArgument, match="no users found"):
        gen(o.with_user("nobody:0"), rootfs=rootfs)
    with pytest.raises(InvalidArgument, match="invalid USER value a:b:c"):
        o.with_user("a:b:c")
    with pytest.raises(InvalidArgument, match="rootfs absolute path is required"):
        gen(o.with_user("alice"))


def test_with_user_large_and_negative_numbers_are_names(rootfs):
    # containerd: a number outside [0, MaxInt32] is taken as a user name.
    with pytest.raises(InvalidArgument, match="no users found"):
        gen(o.with_user("2147483648"), rootfs=rootfs)
    with pytest.raises(InvalidArgument, match="no users found"):
        gen(o.with_user("-1"), rootfs=rootfs)


def test_with_user_rootfs_without_passwd(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert gen(o.with_user("33"), rootfs=empty)["process"]["user"] == {"uid": 33, "gid": 0, "additionalGids": [0]}
    with pytest.raises(InvalidArgument, match="no users found"):
        gen(o.with_user("www-data"), rootfs=empty)


def test_append_additional_groups(rootfs):
    s = gen(o.with_user("bob", additional_gids=False), o.with_append_additional_groups("wheel", "42"), rootfs=rootfs)
    assert s["process"]["user"]["additionalGids"] == [100, 10, 42]


@pytest.fixture
def outside(tmp_path):
    """A passwd/group pair outside the rootfs, as a hostile image would point at."""
    d = tmp_path / "host-etc"
    d.mkdir()
    (d / "passwd").write_text("evil:x:4242:4242::/:/bin/sh\n")
    (d / "group").write_text("evilgroup:x:4343:evil\n")
    return d


@pytest.mark.parametrize("kind", ["absolute", "relative", "dir-absolute"])
def test_symlinked_passwd_is_not_followed_out_of_the_rootfs(rootfs, outside, kind):
    etc = rootfs / "etc"
    (etc / "passwd").unlink()
    (etc / "group").unlink()
    if kind == "absolute":
        os.symlink(str(outside / "passwd"), etc / "passwd")
        os.symlink(str(outside / "group"), etc / "group")
    elif kind == "relative":
        up = "../" * (len(rootfs.parts) + 3)
        os.symlink(f"{up}{str(outside / 'passwd').lstrip('/')}", etc / "passwd")
        os.symlink(f"{up}{str(outside / 'group').lstrip('/')}", etc / "group")
    else:  # /etc itself is a link to the host directory
        etc.rename(rootfs / "etc.orig")
        os.symlink(str(outside), rootfs / "etc")
    assert (rootfs / "etc" / "passwd").read_text().startswith("evil")  # the host would follow it
    with pytest.raises(InvalidArgument, match="no users found"):
        gen(o.with_user("evil"), rootfs=rootfs)
    with pytest.raises(InvalidArgument, match="no groups found"):
        gen(o.with_user("0:evilgroup"), rootfs=rootfs)
    # a bare uid not found in the image: gid 0, never the host file's 4242
    assert gen(o.with_user("4242"), rootfs=rootfs)["process"]["user"] == {"uid": 4242, "gid": 0, "additionalGids": [0]}


def test_symlinks_inside_the_rootfs_resolve_within_it(rootfs):
    lib = rootfs / "lib"
    lib.mkdir()
    (rootfs / "etc" / "passwd").rename(lib / "passwd")
    os.symlink("/lib/passwd", rootfs / "etc" / "passwd")  # absolute: relative to the rootfs
    (rootfs / "etc" / "group").rename(lib / "group")
    os.symlink("../../../../../../../lib/group", rootfs / "etc" / "group")  # .. stops at the root
    assert gen(o.with_user("alice"), rootfs=rootfs)["process"]["user"]["additionalGids"] == [1000, 10, 999]


def test_symlink_loop_is_an_error(rootfs):
    (rootfs / "etc" / "passwd").unlink()
    os.symlink("/etc/passwd", rootfs / "etc" / "passwd")
    with pytest.raises(InvalidArgument, match="/etc/passwd"):
        gen(o.with_user("alice"), rootfs=rootfs)


def test_read_in_root_refuses_non_regular_files(rootfs):
    with pytest.raises(IsADirectoryError):
        read_in_root(str(rootfs), "/etc")
    os.mkfifo(rootfs / "fifo")
    with pytest.raises(OSError):
        read_in_root(str(rootfs), "/fifo")  # must not block on a FIFO
    with pytest.raises(FileNotFoundError):
        read_in_root(str(rootfs), "/nope")
    with pytest.raises(NotADirectoryError):
        read_in_root(str(rootfs), "/etc/passwd/x")
    assert read_in_root(str(rootfs), "etc/../../../etc/./group").startswith(b"root:x:0:")


def test_dir_in_root_stays_inside(rootfs, tmp_path):
    """An image volume's sub path: links resolve with the image as '/', never onto the host."""
    (rootfs / "data" / "sub").mkdir(parents=True)
    os.symlink("/etc", rootfs / "abs")                    # the image's /etc, not the host's
    os.symlink("../../data/sub", rootfs / "data" / "up")  # '..' stops at the root
    real = os.path.realpath(rootfs)
    assert dir_in_root(str(rootfs), "data/sub") == f"{real}/data/sub"
    assert dir_in_root(str(rootfs), "abs") == f"{real}/etc"
    assert dir_in_root(str(rootfs), "/data/up/") == f"{real}/data/sub"
    assert dir_in_root(str(rootfs), "") == real
    (tmp_path / "outside").mkdir()
    os.symlink(str(tmp_path / "outside"), rootfs / "out")
    with pytest.raises(FileNotFoundError):
        dir_in_root(str(rootfs), "out")                   # /<tmp>/outside is not in the image
    with pytest.raises(NotADirectoryError):
        dir_in_root(str(rootfs), "etc/passwd")


# --- seccomp ------------------------------------------------------------------------------

CLONE_NS_FLAGS = 0x7E020000  # NEWNS|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWCGROUP


def rules_by_first_name(profile):
    return {r["names"][0]: r for r in profile["syscalls"]}


def test_seccomp_default_profile_x86_64():
    p = seccomp.default_profile(default_spec("default", "c1"), arch="x86_64", kernel_release="6.1.0-18-amd64")
    assert p["defaultAction"] == "SCMP_ACT_ERRNO"
    assert "defaultErrnoRet" not in p
    assert p["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allow = p["syscalls"][0]
    assert allow["action"] == "SCMP_ACT_ALLOW" and "args" not in allow
    assert len(allow["names"]) == 349
    for name in ("read", "write", "execve", "openat", "futex", "io_uring_setup", "landlock_create_ruleset"):
        assert name in allow["names"]
    for name in ("mount", "unshare", "setns", "keyctl", "add_key", "ptrace", "reboot", "bpf", "clone", "clone3"):
        assert name not in allow["names"]
    persona = [r for r in p["syscalls"] if r["names"] == ["personality"]]
    assert [r["args"] for r in persona] == [
        [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}] for v in (0, 8, 0x20000, 0x20008, 0xFFFFFFFF)
    ]
    names = [r["names"] for r in p["syscalls"][6:]]
    assert names == [["ptrace"], ["arch_prctl", "modify_ldt"], ["chroot"], ["clone"], ["clone3"]]
    by = rules_by_first_name(p)
    assert by["clone"] == {
        "names": ["clone"], "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": CLONE_NS_FLAGS, "op": "SCMP_CMP_MASKED_EQ"}],
    }  # fmt: skip
    assert by["clone3"] == {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
    json.dumps(p)


def test_seccomp_default_profile_aarch64_and_others():
    p = seccomp.default_profile(default_spec("default", "c1"), arch="aarch64", kernel_release="5.10")
    assert p["architectures"] == ["SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64"]
    assert ["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"] in [
        r["names"] for r in p["syscalls"]
    ]
    assert ["arch_prctl", "modify_ldt"] not in [r["names"] for r in p["syscalls"]]
    s390 = seccomp.default_profile(default_spec("default", "c1"), arch="s390x", kernel_release="5.10")
    assert rules_by_first_name(s390)["clone"]["args"][0]["index"] == 1
    assert s390["architectures"] == ["SCMP_ARCH_S390", "SCMP_ARCH_S390X"]
    unknown = seccomp.default_profile(default_spec("default", "c1"), arch="sparc64", kernel_release="5.10")
    assert "architectures" not in unknown


def test_seccomp_ptrace_only_from_kernel_4_8():
    spec = default_spec("default", "c1")
    old = seccomp.default_profile(spec, arch="x86_64", kernel_release="4.4.0-210-generic")
    assert ["ptrace"] not in [r["names"] for r in old["syscalls"]]
    new = seccomp.default_profile(spec, arch="x86_64", kernel_release="4.8.0")
    assert ["ptrace"] in [r["names"] for r in new["syscalls"]]


def test_seccomp_capability_conditional_rules():
    spec = gen(o.with_added_capabilities(["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_TIME", "CAP_DAC_READ_SEARCH"]))
    p = seccomp.default_profile(spec, arch="x86_64", kernel_release="6.1")
    by = rules_by_first_name(p)
    admin = by["bpf"]["names"]
    assert {"mount", "umount2", "unshare", "setns", "clone", "clone3", "sethostname"} <= set(admin)
    assert by["kcmp"]["names"] == ["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"]
    assert by["settimeofday"]["names"] == ["settimeofday", "stime", "clock_settime", "clock_settime64"]
    assert by["open_by_handle_at"]["names"] == ["open_by_handle_at"]
    # with CAP_SYS_ADMIN neither the masked clone rule nor clone3 → ENOSYS
    assert not any(r.get("args") and r["names"] == ["clone"] for r in p["syscalls"])
    assert not any(r.get("errnoRet") for r in p["syscalls"])
    # rules follow the bounding set's order
    order = [r["names"][0] for r in p["syscalls"][8:]]
    assert order == ["chroot", "bpf", "kcmp", "settimeofday", "open_by_handle_at"]


def test_seccomp_without_capabilities_section():
    spec = gen(o.with_capabilities([]))
    p = seccomp.default_profile(spec, arch="x86_64", kernel_release="6.1")
    assert [r["names"] for r in p["syscalls"][-2:]] == [["clone"], ["clone3"]]


def test_with_seccomp_default_custom_file_and_unconfined(tmp_path):
    s = gen(o.with_added_capabilities(["CAP_SYS_ADMIN"]), o.with_seccomp(arch="x86_64", kernel_release="6.1"))
    assert ["bpf" in r["names"] for r in s["linux"]["seccomp"]["syscalls"]].count(True) == 1
    custom = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["keyctl"], "action": "SCMP_ACT_ERRNO"}]}
    assert gen(o.with_seccomp(custom))["linux"]["seccomp"] == custom
    f = tmp_path / "p.json"
    f.write_text(json.dumps(custom))
    assert gen(o.with_seccomp(f))["linux"]["seccomp"] == custom
    assert gen(o.with_seccomp(str(f)))["linux"]["seccomp"] == custom
    with pytest.raises(InvalidArgument, match="cannot load seccomp profile"):
        o.with_seccomp(tmp_path / "missing.json")
    f.write_text("{not json")
    with pytest.raises(InvalidArgument, match="decoding seccomp profile failed"):
        o.with_seccomp(f)
    with pytest.raises(InvalidArgument, match="defaultAction"):
        o.with_seccomp({"syscalls": []})
    assert "seccomp" not in gen(o.with_seccomp(), o.with_seccomp_unconfined)["linux"]


def test_option_that_is_not_callable_is_refused():
    with pytest.raises(InvalidArgument):
        gen("with_tty")
