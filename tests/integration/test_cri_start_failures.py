"""One container failing to start takes nothing else down (issue 13).

A pod's containers share one shim. Here a pod runs a ``sleep`` container; then a second
container fails to start in each way of :mod:`tests.support.start_failures` (missing
binary, bad working dir, a user who may not run the command, a mount that fails). Each
time that container alone ends EXITED with reason ``StartError``, exit code 128 and
runc's message (containerd's CRI), while the pod stays READY, its shim keeps its pid,
the running container keeps running and answers exec, and the daemon never sees its
shim disconnect. Afterwards a new container still starts in the same pod.
"""

from __future__ import annotations

import grpc
import pytest

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.testing import processes_mentioning
from tests.support.cri import container_config, cri_env, pod_config
from tests.support.start_failures import START_FAILURES

pytestmark = [pytest.mark.integration, pytest.mark.root]


@pytest.fixture(scope="module")
def env(tmp_path_factory, registry):
    with cri_env(tmp_path_factory.mktemp("startfail") / "cri", registry) as e:
        e.client.pull(e.images.busybox)
        yield e


@pytest.fixture(scope="module")
def pod(env):
    cfg = pod_config("startfail-pod", host_network=True)
    pid = env.client.run_pod(cfg)
    keeper = env.client.create(pid, container_config("keeper", env.images.busybox, command=["sleep", "100000"]), cfg)
    env.client.start(keeper)
    return pid, cfg, keeper


def shim_pids(env, sandbox_id: str) -> list[int]:
    """The pod's shim: the one process whose command line names the sandbox (ours retitles
    itself ``pycontainerd-shim … -id <sandbox id>``, as far as its argv area holds: the id
    may be cut short)."""
    return [p for p in processes_mentioning(sandbox_id[:12]) if _comm(p).startswith("pycontainerd-sh")]


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


@pytest.mark.parametrize("failure", START_FAILURES, ids=lambda f: f.name)
def test_failed_start_leaves_pod_and_neighbours_alone(env, pod, failure, tmp_path):
    c = env.client
    pid, cfg, keeper = pod
    shims = shim_pids(env, pid)
    assert len(shims) == 1, shims
    keeper_pid = c.exec(keeper, "cat", "/proc/1/stat").stdout.split()[0]  # pid 1 in its own pid ns
    cid = c.create(pid, failure.config(failure.name, env.images.busybox, tmp_path), cfg)
    with pytest.raises(grpc.RpcError) as err:
        c.start(cid)
    assert err.value.code() == grpc.StatusCode.UNKNOWN, err.value.details()
    assert failure.expect in err.value.details()
    # that container alone: EXITED, StartError, 128 and runc's message (containerd's CRI)
    st = c.status(cid).status
    assert (st.state, st.reason, st.exit_code) == (cri.CONTAINER_EXITED, "StartError", 128)
    assert failure.expect in st.message, st.message
    # containerd's words around runc's
    assert st.message.startswith("failed to create containerd task: failed to create shim task: "
                                 "OCI runtime create failed: runc create failed: "), st.message
    assert st.finished_at > 0 and st.started_at == 0
    # the pod, its shim and the running container: untouched
    assert c.pod_status(pid).status.state == cri.SANDBOX_READY
    assert shim_pids(env, pid) == shims
    ks = c.status(keeper).status
    assert ks.state == cri.CONTAINER_RUNNING, (ks.state, ks.reason, ks.exit_code, ks.message)
    r = c.exec(keeper, "sh", "-c", "echo alive; cut -d' ' -f1 /proc/1/stat")
    assert r.stdout.split() == [b"alive", keeper_pid]
    assert "shim disconnected" not in env.daemon.log()
    # the failed one is removed cleanly; its bundle is gone, the pod's stays
    tasks = env.daemon.state / "io.containerd.runtime.v2.task" / "k8s.io"
    assert not (tasks / cid).exists() and (tasks / pid).exists() and (tasks / keeper).exists()
    c.RemoveContainer(cri.RemoveContainerRequest(container_id=cid))
    assert cid not in env.containerd_containers()


def test_pod_still_starts_containers_after_failures(env, pod):
    c = env.client
    pid, cfg, keeper = pod
    cid = c.create(pid, container_config("after", env.images.busybox, command=["sh", "-c", "echo fine"]), cfg)
    c.start(cid)
    st = c.wait_state(cid, cri.CONTAINER_EXITED)
    assert (st.exit_code, st.reason) == (0, "Completed")
    assert c.status(keeper).status.state == cri.CONTAINER_RUNNING
    # stopping the pod ends everything it holds, and only then its shim
    c.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pid))
    assert c.status(keeper).status.state == cri.CONTAINER_EXITED
    c.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pid))
    assert shim_pids(env, pid) == []
