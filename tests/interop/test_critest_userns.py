"""Kubernetes' critest runs (and passes) its pod user namespace specs, which containerd 1.6.20
skips (issue 13): with Status reporting ``user_namespaces`` for the runtime handler, the six
specs under ``Security Context UserNamespaces`` — NamespaceMode_POD (a 0:1000:100000 mapping
read back from ``/proc/self/uid_map``; critest runs it only when the host can id-map), NODE
(the host's mapping), and RunPodSandbox refusing two mapping lines, a mapping without
container id 0, mode CONTAINER and mode TARGET — on a node configured like the README's CRI
example (:func:`tests.support.critest.cri_node`) under a directory the pod's remapped root can
reach, as ``/run`` on a node. Any of them skipped fails the test.
"""

from __future__ import annotations

import pytest

from tests.support.cri import reachable_base
from tests.support.critest import cri_node, run_critest

pytestmark = [pytest.mark.root, pytest.mark.interop]

FOCUS = "UserNamespaces"
SPECS = 6


def test_critest_user_namespaces():
    with reachable_base("critest-userns-") as base, cri_node(base / "node", "ours") as node:
        result = run_critest(node, f"-ginkgo.focus={FOCUS}", timeout=900)
        assert result.specs, f"critest ran no spec:\n{result.output[-5000:]}"
        print(result.describe())
        assert result.passed == SPECS and not result.failed, result.describe()
