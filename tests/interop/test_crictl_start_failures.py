"""Kubernetes' crictl sees a failed start stay the failing container's own (issue 13).

Through crictl itself (not our client): a pod runs a ``sleep`` container, then a second
container fails ``crictl start`` in each way of :mod:`tests.support.start_failures`.
``crictl inspect`` shows that container EXITED with reason ``StartError``, exit code 128
and runc's message, as containerd's CRI reports it; ``crictl inspectp`` shows the pod
still Ready, ``crictl ps`` the sleeper still Running, and ``crictl exec -s`` still reaches it.
"""

from __future__ import annotations

import json

import pytest

from tests.support.cri import container_config, cri_env, pod_config
from tests.support.crictl import crictl
from tests.support.start_failures import START_FAILURES, as_crictl_config

pytestmark = [pytest.mark.interop, pytest.mark.root]


def inspect(env, *args: str) -> dict:
    return json.loads(crictl(env, *args[:-1], "-o", "json", args[-1]).stdout)  # flags before the id


def write_config(path, msg) -> str:
    path.write_text(json.dumps(as_crictl_config(msg)))
    return str(path)


def test_crictl_start_failures_leave_the_pod_running(tmp_path, registry):
    with cri_env(tmp_path / "cri", registry) as env:
        crictl(env, "pull", env.images.busybox)
        pod_json = write_config(tmp_path / "pod.json", pod_config("crictl-startfail", host_network=True))
        pod = crictl(env, "runp", pod_json).stdout.strip()
        keeper_json = write_config(tmp_path / "keeper.json",
                                   container_config("keeper", env.images.busybox, command=["sleep", "100000"]))
        keeper = crictl(env, "create", pod, keeper_json, pod_json).stdout.strip()
        crictl(env, "start", keeper)
        for failure in START_FAILURES:
            cfg = failure.config(failure.name, env.images.busybox, tmp_path)
            cid = crictl(env, "create", pod, write_config(tmp_path / f"{failure.name}.json", cfg),
                         pod_json).stdout.strip()
            started = crictl(env, "start", cid, check=False)
            assert started.returncode != 0 and failure.expect in started.stderr, (failure.name, started.stderr)
            st = inspect(env, "inspect", cid)["status"]
            assert (st["state"], st["reason"], st["exitCode"]) == ("CONTAINER_EXITED", "StartError", 128), st
            assert failure.expect in st["message"], (failure.name, st["message"])
            assert inspect(env, "inspectp", pod)["status"]["state"] == "SANDBOX_READY", failure.name
            running = crictl(env, "ps", "--state", "Running", "-q").stdout.split()
            assert running == [keeper], (failure.name, running)
            out = crictl(env, "exec", "-s", keeper, "echo", "alive").stdout  # ExecSync
            assert out.split() == ["alive"], failure.name
            crictl(env, "rm", cid)
        assert "shim disconnected" not in env.daemon.log()
        crictl(env, "stopp", pod)
        crictl(env, "rmp", pod)
