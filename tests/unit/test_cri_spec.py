"""OCI specs the CRI builds for sandboxes and containers (no root: the image's rootfs is a
directory here), and the helpers behind them (names, signals, oom_score_adj clamping)."""

from __future__ import annotations

import os
import signal

import pytest

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.cri import spec as crispec
from pycontainerd.cri import util
from pycontainerd.cri.state import SandboxState
from pycontainerd.cri.store import Container, Sandbox
from pycontainerd.errdefs import FailedPrecondition, InvalidArgument, Unknown
from pycontainerd.oci import opts as oci_opts

IMAGE = {"config": {"Entrypoint": ["/entry"], "Cmd": ["run"], "Env": ["PATH=/bin", "FROM_IMAGE=1"],
                    "WorkingDir": "/work", "User": "", "StopSignal": "SIGQUIT"}}
PAUSE = {"config": {"Entrypoint": ["/pause"]}}


@pytest.fixture
def rootfs(tmp_path):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nextra:x:2000:app\n")
    return str(root)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sandbox(**kw) -> Sandbox:
    cfg = cri.PodSandboxConfig(metadata=cri.PodSandboxMetadata(name="web", uid="uid1", namespace="ns"),
                               hostname="web-0", log_directory="/var/log/pods/x")
    for k, v in kw.items():
        if k == "privileged":
            cfg.linux.security_context.privileged = v
        elif k == "network":
            cfg.linux.security_context.namespace_options.network = v
        elif k == "pid":
            cfg.linux.security_context.namespace_options.pid = v
        elif k == "ipc":
            cfg.linux.security_context.namespace_options.ipc = v
        elif k == "cgroup_parent":
            cfg.linux.cgroup_parent = v
        elif k == "sysctls":
            cfg.linux.sysctls.update(v)
    sb = Sandbox(id="s" * 64, name="web_ns_uid1_0", config=cfg, runtime_handler="", runtime_name="runc",
                 created_at=1, image="pause", netns_path="/var/run/netns/cni-1")
    sb.state = SandboxState.READY
    sb.pid = 4242
    return sb


def sandbox_spec(sb, rootfs=None, oom=-998):
    return oci_opts.generate("k8s.io", sb.id, *crispec.sandbox_spec_opts(
        sb, PAUSE, resolv_path="/r/resolv.conf", shm_path="/s/shm", oom_score_adj=oom), image_config=PAUSE,
        rootfs=rootfs)


def container_spec(config: cri.ContainerConfig, sb=None, rootfs=None, image=IMAGE, oom=0, **kw):
    sb = sb or sandbox()
    ct = Container(id="c" * 64, name="n", sandbox_id=sb.id, config=config, created_at=1, image_ref="img",
                   image_id="sha256:1")
    files = {"/etc/hostname": "/nonexistent/hostname", "/etc/hosts": "/etc/hosts",
             "/etc/resolv.conf": "/etc/resolv.conf", "/dev/shm": "/dev/shm"}
    opts = crispec.container_spec_opts(ct, sb, image, files=files, sandbox_pid=sb.pid, oom_score_adj=oom,
                                       hostname="web-0", swap=kw.pop("swap", True), hugetlb=kw.pop("hugetlb", True),
                                       **kw)
    return oci_opts.generate("k8s.io", ct.id, *opts, image_config=image, rootfs=rootfs)


def ns_of(spec) -> dict:
    return {n["type"]: n.get("path", "") for n in spec["linux"]["namespaces"]}


def mounts_of(spec) -> dict:
    return {m["destination"]: m for m in spec["mounts"]}


# --- helpers --------------------------------------------------------------------------------


def test_names():
    sm = cri.PodSandboxMetadata(name="web", namespace="default", uid="u1", attempt=2)
    assert util.sandbox_name(sm) == "web_default_u1_2"
    assert util.container_name(cri.ContainerMetadata(name="app", attempt=1), sm) == "app_web_default_u1_1"
    assert len(util.new_id()) == 64 and util.new_id() != util.new_id()


def test_signals():
    assert util.parse_signal("SIGTERM") == signal.SIGTERM == util.parse_signal("TERM") == util.parse_signal("15")
    assert util.parse_signal("") == signal.SIGTERM and util.parse_signal(None, signal.SIGKILL) == signal.SIGKILL
    assert util.parse_signal("SIGRTMIN+3") == signal.SIGRTMIN + 3
    with pytest.raises(InvalidArgument):
        util.parse_signal("SIGNOPE")
    assert util.cri_signal_name(cri.RUNTIME_DEFAULT) is None
    assert util.cri_signal_name(cri.SIGKILL) == "SIGKILL"
    assert util.cri_signal_name(cri.SIGRTMINPLUS2) == "SIGRTMIN+2"
    assert util.cri_signal_value("SIGQUIT") == cri.SIGQUIT and util.cri_signal_value("bogus") == cri.RUNTIME_DEFAULT


def test_oom_score_adj_clamp_and_capability_detection(tmp_path):
    assert util.clamp_oom_score_adj(-998, False, current=0) == -998
    assert util.clamp_oom_score_adj(-998, True, current=0) == 0
    assert util.clamp_oom_score_adj(500, True, current=0) == 500
    assert util.clamp_oom_score_adj(-998, True, current=-999) == -998
    with_cap = tmp_path / "with"
    with_cap.write_text("Name:\tx\nCapEff:\t000001ffffffffff\n")
    without = tmp_path / "without"
    without.write_text("CapEff:\t000001fffeffffff\n")  # bit 24 (CAP_SYS_RESOURCE) clear, as on these hosts
    assert util.can_lower_oom_score_adj(str(with_cap)) is True
    assert util.can_lower_oom_score_adj(str(without)) is False


def test_cgroups_path():
    assert util.cgroups_path("", "id") == ""
    assert util.cgroups_path("/kubepods/besteffort/pod1", "id") == "/kubepods/besteffort/pod1/id"
    with pytest.raises(InvalidArgument, match="systemd"):
        util.cgroups_path("kubepods-besteffort.slice", "id")


def test_mount_of(tmp_path):
    mi = tmp_path / "mountinfo"
    mi.write_text("22 1 0:1 / / rw shared:1 - ext4 /dev/sda rw\n"
                  "30 22 0:2 / /data rw master:5 - ext4 /dev/sdb rw\n"
                  "31 22 0:3 / /priv rw - tmpfs tmpfs rw\n")
    assert util.mount_of("/data/x/y", str(mi)).slave and util.mount_of("/data/x", str(mi)).mount_point == "/data"
    assert util.mount_of("/etc", str(mi)).shared
    priv = util.mount_of("/priv/q", str(mi))
    assert not priv.shared and not priv.slave


# --- process args ---------------------------------------------------------------------------


@pytest.mark.parametrize("command, args, want", [
    ([], [], ["/entry", "run"]),
    (["/bin/sh"], [], ["/bin/sh"]),                    # command drops the image's Cmd
    (["/bin/sh"], ["-c", "x"], ["/bin/sh", "-c", "x"]),
    ([], ["other"], ["/entry", "other"]),              # args replace Cmd only
])
def test_kubelet_command_semantics(command, args, want):
    assert crispec.process_args(command, args, IMAGE) == want


def test_nothing_to_run():
    with pytest.raises(InvalidArgument):
        crispec.process_args([], [], {"config": {}})


def test_user_string():
    v = cri.Int64Value
    assert crispec.user_string("", None, None) == ""
    assert crispec.user_string("app", None, None) == "app"
    assert crispec.user_string("", v(value=1000), v(value=2000)) == "1000:2000"
    assert crispec.user_string("", v(value=0), None) == "0"
    with pytest.raises(InvalidArgument, match="without user"):
        crispec.user_string("", None, v(value=5))


# --- sandbox --------------------------------------------------------------------------------


def test_sandbox_spec(rootfs):
    sb = sandbox(cgroup_parent="/kubepods/pod1", sysctls={"net.ipv4.ip_forward": "1"})
    spec = sandbox_spec(sb, rootfs, oom=-998)
    p = spec["process"]
    assert p["args"] == ["/pause"] and p["oomScoreAdj"] == -998 and "rlimits" not in p
    assert spec["root"]["readonly"] is True and spec["hostname"] == "web-0"
    assert ns_of(spec) == {"pid": "", "ipc": "", "uts": "", "mount": "", "network": "/var/run/netns/cni-1"}
    m = mounts_of(spec)
    assert "/run" not in m
    assert m["/dev/shm"] == {"destination": "/dev/shm", "type": "bind", "source": "/s/shm",
                            "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]}
    assert m["/etc/resolv.conf"]["source"] == "/r/resolv.conf"
    assert spec["linux"]["cgroupsPath"] == "/kubepods/pod1/" + sb.id
    assert spec["linux"]["resources"]["cpu"]["shares"] == 2
    assert spec["linux"]["sysctl"] == {"net.ipv4.ip_forward": "1"}
    assert "seccomp" not in spec["linux"]          # unset seccomp is unconfined
    a = spec["annotations"]
    assert (a["io.kubernetes.cri.container-type"], a["io.kubernetes.cri.sandbox-id"],
            a["io.kubernetes.cri.sandbox-name"], a["io.kubernetes.cri.sandbox-namespace"],
            a["io.kubernetes.cri.sandbox-log-directory"]) == ("sandbox", sb.id, "web", "ns", "/var/log/pods/x")


def test_sandbox_host_namespaces(rootfs):
    spec = sandbox_spec(sandbox(network=cri.NODE, pid=cri.NODE, ipc=cri.NODE), rootfs)
    assert set(ns_of(spec)) == {"mount"}
    assert "hostname" not in spec                   # no UTS namespace of its own: no hostname


def test_sandbox_spec_needs_a_command():
    with pytest.raises(InvalidArgument, match="entrypoint"):
        crispec.sandbox_spec_opts(sandbox(), {"config": {}}, resolv_path="r", shm_path="s", oom_score_adj=0)


# --- containers -----------------------------------------------------------------------------


def test_container_spec_defaults(rootfs):
    cfg = cri.ContainerConfig(metadata=cri.ContainerMetadata(name="app"), image=cri.ImageSpec(image="busybox"),
                              envs=[cri.KeyValue(key="FROM_IMAGE", value="2"), cri.KeyValue(key="X", value="y")])
    spec = container_spec(cfg, rootfs=rootfs)
    p = spec["process"]
    assert p["args"] == ["/entry", "run"] and p["cwd"] == "/work"
    assert p["env"] == ["PATH=/bin", "HOSTNAME=web-0", "FROM_IMAGE=2", "X=y"]
    assert p["user"] == {"uid": 0, "gid": 0, "additionalGids": [0]}
    assert p.get("noNewPrivileges", False) is False
    sid = "s" * 64
    # the CRI default PID mode is POD: every namespace but mount is the sandbox's
    assert ns_of(spec) == {"pid": "/proc/4242/ns/pid", "ipc": "/proc/4242/ns/ipc", "uts": "/proc/4242/ns/uts",
                           "mount": "", "network": "/proc/4242/ns/net"}
    m = mounts_of(spec)
    assert "/run" not in m and "/etc/hostname" not in m        # the hostname file does not exist here
    assert m["/etc/hosts"]["options"] == ["rbind", "rprivate", "rw"]
    assert m["/dev/shm"]["type"] == "bind"
    assert "maskedPaths" not in spec["linux"] and "readonlyPaths" not in spec["linux"]
    assert "seccomp" not in spec["linux"] and p["oomScoreAdj"] == 0
    a = spec["annotations"]
    assert (a["io.kubernetes.cri.container-type"], a["io.kubernetes.cri.sandbox-id"],
            a["io.kubernetes.cri.container-name"], a["io.kubernetes.cri.image-name"]) == ("container", sid, "app",
                                                                                           "busybox")


def test_container_security_context(rootfs, tmp_path):
    profile = tmp_path / "seccomp.json"
    profile.write_text('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}')
    cfg = cri.ContainerConfig(metadata=cri.ContainerMetadata(name="app"), command=["sh"])
    sc = cfg.linux.security_context
    sc.run_as_username = "app"
    sc.supplemental_groups.extend([3000])
    sc.no_new_privs = True
    sc.readonly_rootfs = True
    sc.masked_paths.extend(["/proc/kcore"])
    sc.readonly_paths.extend(["/proc/sys"])
    sc.capabilities.add_capabilities.extend(["NET_ADMIN"])
    sc.capabilities.drop_capabilities.extend(["CHOWN", "CAP_KILL"])
    sc.seccomp.profile_type = cri.SecurityProfile.Localhost
    sc.seccomp.localhost_ref = str(profile)
    spec = container_spec(cfg, rootfs=rootfs)
    p = spec["process"]
    assert p["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 2000, 3000]}
    assert p["noNewPrivileges"] is True and spec["root"]["readonly"] is True
    caps = p["capabilities"]["bounding"]
    assert "CAP_NET_ADMIN" in caps and "CAP_CHOWN" not in caps and "CAP_KILL" not in caps
    assert spec["linux"]["maskedPaths"] == ["/proc/kcore"] and spec["linux"]["readonlyPaths"] == ["/proc/sys"]
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    # read-only rootfs: the sandbox files come read-only too
    assert mounts_of(spec)["/etc/hosts"]["options"][-1] == "ro"


def test_seccomp_choices(rootfs):
    def seccomp(profile_type=None, ref="", legacy=""):
        cfg = cri.ContainerConfig(metadata=cri.ContainerMetadata(name="a"), command=["sh"])
        sc = cfg.linux.security_context
        if profile_type is not None:
            sc.seccomp.profile_type = profile_type
            sc.seccomp.localhost_ref = ref
        sc.seccomp_profile_path = legacy
        return container_spec(cfg, rootfs=rootfs)["linux"].get("seccomp")

    assert seccomp(cri.SecurityProfile.RuntimeDefault)["defaultAction"] == "SCMP_ACT_ERRNO"
    assert seccomp(cri.SecurityProfile.Unconfined) is None
    assert seccomp(None, legacy="runtime/default") is not None and seccomp(None, legacy="unconfined") is None
    with pytest.raises(InvalidArgument, match="seccomp"):
        seccomp(cri.SecurityProfile.Localhost, ref="/no/such/profile.json")
    with pytest.raises(InvalidArgument, match="absolute"):
        seccomp(cri.SecurityProfile.Localhost, ref="relative.json")


def test_capabilities_all():
    cfg = cri.Capability(add_capabilities=["ALL"], drop_capabilities=["CHOWN"])
    spec = {"process": {"capabilities": {"bounding": []}}}
    oci_opts.apply(spec, oci_opts.SpecContext("k8s.io", "c"), *crispec.capability_opts(cfg))
    caps = spec["process"]["capabilities"]["effective"]
    # ALL is this process's own effective set (containerd's cap.Current), not every known one
    assert caps == [c for c in oci_opts.current_capabilities() if c != "CAP_CHOWN"]
    spec = {"process": {"capabilities": {"bounding": ["CAP_KILL"]}}}
    oci_opts.apply(spec, oci_opts.SpecContext("k8s.io", "c"),
                   *crispec.capability_opts(cri.Capability(drop_capabilities=["ALL"], add_capabilities=["KILL"])))
    assert spec["process"]["capabilities"]["bounding"] == ["CAP_KILL"]


def test_privileged(rootfs):
    cfg = cri.ContainerConfig(metadata=cri.ContainerMetadata(name="a"), command=["sh"])
    cfg.linux.security_context.privileged = True
    with pytest.raises(InvalidArgument, match="no privileged container allowed in sandbox"):
        container_spec(cfg, rootfs=rootfs)
    spec = container_spec(cfg, sb=sandbox(privileged=True), rootfs=rootfs)
    assert spec["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert "seccomp" not in spec["linux"] and "maskedPaths" not in spec["linux"]
    assert any(m["type"] == "sysfs" and "rw" in m["options"] for m in spec["mounts"])


def test_resources_and_cgroup(rootfs):
    cfg = cri.ContainerConfig(metadata=cri.ContainerMetadata(name="a"), command=["sh"])
    r = cfg.linux.resources
    r.cpu_period, r.cpu_quota, r.cpu_shares, r.memory_limit_in_bytes = 100000, 50000, 512, 64 << 20
    r.cpuset_cpus, r.cpuset_mems = "0", "0"
    r.hugepage_limits.add(page_size="2MB", limit=1 << 21)
    spec = container_spec(cfg, sb=sandbox(cgroup_parent="/kubepods/pod9"), rootfs=rootfs, oom=100)
    res = spec["linux"]["resources"]
    assert res["cpu"] == {"period": 100000, "quota": 50000, "shares": 512, "cpus": "0", "mems": "0"}
    assert res["memory"] == {"limit": 64 << 20, "swap": 64 << 20}   # swap = limit: no swapping by default
    assert res["hugepageLimits"] == [{"pageSize": "2MB", "limit": 1 << 21}]
    assert spec["linux"]["cgroupsPath"] == "/kubepods/pod9/" + "c" * 64
    assert spec["process"]["oomScoreAdj"] == 100
    back = crispec.resources_from_spec(spec)
    assert (back.cpu_quota, back.memory_limit_in_bytes, back.oom_score_adj, back.hugepage_limits[0].page_size) == (
        50000, 64 << 20, 100, "2MB")
    no_swap = container_spec(cfg, rootfs=rootfs, swap=False, hugetlb=False)["linux"]["resources"]
    assert no_swap["memory"] == {"limit": 64 << 20} and "hugepageLimits" not in no_swap


def test_pid_namespace_modes(rootfs):
    def pid_ns(mode, sb=None, **kw):
        cfg = cri.ContainerConfig(metadata=cri.ContainerMetadata(name="a"), command=["sh"])
        cfg.linux.security_context.namespace_options.pid = mode
        return ns_of(container_spec(cfg, sb=sb, rootfs=rootfs, **kw)).get("pid")

    assert pid_ns(cri.POD) == "/proc/4242/ns/pid"
    assert pid_ns(cri.CONTAINER) == ""
    assert pid_ns(cri.NODE) is None
    assert pid_ns(cri.POD, sb=sandbox(pid=cri.NODE)) is None
    assert pid_ns(cri.TARGET, target_pid=77) == "/proc/77/ns/pid"
    with pytest.raises(InvalidArgument, match="target"):
        pid_ns(cri.TARGET)


def test_mounts(rootfs, tmp_path):
    src = tmp_path / "data"
    src.mkdir()
    link = tmp_path / "link"
    link.symlink_to(src)

    def spec_with(*mounts, check=None):
        cfg = cri.ContainerConfig(metadata=cri.ContainerMetadata(name="a"), command=["sh"], mounts=list(mounts))
        return container_spec(cfg, rootfs=rootfs, check_propagation=check)

    spec = spec_with(cri.Mount(container_path="/data/sub", host_path=str(src)),
                     cri.Mount(container_path="/data", host_path=str(link), readonly=True),
                     cri.Mount(container_path="/etc/hosts", host_path=str(src)))
    m = mounts_of(spec)
    assert m["/data"] == {"destination": "/data", "type": "bind", "source": str(src),      # symlink followed
                          "options": ["rbind", "rprivate", "ro"]}
    dests = [x["destination"] for x in spec["mounts"]]
    assert dests.index("/data") < dests.index("/data/sub")                                  # parents first
    assert m["/etc/hosts"]["source"] == str(src)                                           # the config wins
    missing = tmp_path / "missing" / "deeper"                     # made, a directory, as containerd's CRI does
    assert mounts_of(spec_with(cri.Mount(container_path="/x", host_path=str(missing))))["/x"]["source"] == str(missing)
    assert missing.is_dir() and (missing.stat().st_mode & 0o777) == 0o755 & ~_umask()
    (tmp_path / "file").write_text("")
    with pytest.raises(Unknown, match="failed to stat .*Not a directory"):   # a file in the way
        spec_with(cri.Mount(container_path="/x", host_path=str(tmp_path / "file" / "sub")))
    with pytest.raises(InvalidArgument, match="NUL byte"):
        spec_with(cri.Mount(container_path="/x", host_path=str(tmp_path / "a\0b")))
    with pytest.raises(InvalidArgument, match="no host path"):       # an image volume not mounted yet
        spec_with(cri.Mount(container_path="/img", image=cri.ImageSpec(image="busybox")))

    shared = util.MountInfo("/", ("shared:1",))
    slave = util.MountInfo("/", ("master:1",))
    private = util.MountInfo("/", ())
    bi = cri.Mount(container_path="/b", host_path=str(src), propagation=cri.PROPAGATION_BIDIRECTIONAL)
    h2c = cri.Mount(container_path="/h", host_path=str(src), propagation=cri.PROPAGATION_HOST_TO_CONTAINER)
    spec = spec_with(bi, check=lambda p: shared)
    assert "rshared" in mounts_of(spec)["/b"]["options"] and spec["linux"]["rootfsPropagation"] == "rshared"
    spec = spec_with(h2c, check=lambda p: slave)
    assert "rslave" in mounts_of(spec)["/h"]["options"] and spec["linux"]["rootfsPropagation"] == "rslave"
    with pytest.raises(FailedPrecondition, match="not a shared mount"):
        spec_with(bi, check=lambda p: slave)
    with pytest.raises(FailedPrecondition, match="shared or slave"):
        spec_with(h2c, check=lambda p: private)


def test_recursive_read_only_mounts(rootfs, tmp_path):
    def spec_with(mount, supported=True):
        cfg = cri.ContainerConfig(metadata=cri.ContainerMetadata(name="a"), command=["sh"], mounts=[mount])
        return container_spec(cfg, rootfs=rootfs, rro_supported=supported)

    rro = cri.Mount(container_path="/r", host_path=str(tmp_path), readonly=True, recursive_read_only=True)
    assert mounts_of(spec_with(rro))["/r"]["options"] == ["rbind", "rprivate", "ro", "rro"]
    with pytest.raises(InvalidArgument, match="not supported by the OCI runtime"):
        spec_with(rro, supported=False)
    with pytest.raises(InvalidArgument, match="needs to be read-only"):
        spec_with(cri.Mount(container_path="/r", host_path=str(tmp_path), recursive_read_only=True))
    for prop in (cri.PROPAGATION_HOST_TO_CONTAINER, cri.PROPAGATION_BIDIRECTIONAL):
        with pytest.raises(InvalidArgument, match="needs private propagation"):   # before the host is looked at
            spec_with(cri.Mount(container_path="/r", host_path=str(tmp_path), readonly=True,
                                recursive_read_only=True, propagation=prop))


@pytest.mark.parametrize("policy,gids", [(cri.Merge, [1000, 2000, 3000]), (cri.Strict, [1000, 3000])])
def test_supplemental_groups_policy(rootfs, policy, gids):
    cfg = cri.ContainerConfig(metadata=cri.ContainerMetadata(name="a"), command=["sh"])
    sc = cfg.linux.security_context
    sc.run_as_user.value = 1000
    sc.supplemental_groups.extend([3000])
    sc.supplemental_groups_policy = policy
    assert container_spec(cfg, rootfs=rootfs)["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": gids}
    sb = sandbox()
    sb.config.linux.security_context.run_as_user.value = 1000
    sb.config.linux.security_context.supplemental_groups_policy = policy
    assert sandbox_spec(sb, rootfs)["process"]["user"]["additionalGids"] == gids[:-1]


def test_log_path_with_a_nul_byte_is_refused_at_create():
    from pycontainerd.cri.handlers.container_create import log_path

    pod = cri.PodSandboxConfig(log_directory="/var/log/pods/x")
    assert log_path(pod, cri.ContainerConfig(log_path="c/0.log")) == "/var/log/pods/x/c/0.log"
    assert log_path(pod, cri.ContainerConfig()) == ""
    with pytest.raises(InvalidArgument, match="NUL byte"):
        log_path(pod, cri.ContainerConfig(log_path="c/\0.log"))
