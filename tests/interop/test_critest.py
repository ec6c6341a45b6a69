"""Kubernetes' CRI validation suite (critest, cri-tools v1.37.0) against pycontainerd (issue 13).

The node is configured as a new user would (:func:`tests.support.critest.cri_node`): critest's
images built by ../shared/cri-tools/images/build.sh into a registry inside the node's network
namespace, reached through hosts.toml mirrors; a CNI bridge + portmap network;
``restrict_oom_score_adj = true``. The same harness gives containerd 1.6.20 its published
91 passed / 3 failed / 48 skipped (``python -m tests.interop.run_critest --runtime containerd``).

The bar (issue 13): at least 105 specs pass and at most 1 fails (``public image with digest``:
no offline image can have upstream's digest). Skipped for want of a feature today: NRI,
AppArmor (not enabled on these hosts) and the benchmark specs. The summary
and every failed spec with its message are printed, pass or fail.
"""

from __future__ import annotations

import pytest

from tests.support.cri import reachable_base
from tests.support.critest import cri_node, run_critest

pytestmark = [pytest.mark.root, pytest.mark.interop]

MIN_PASSED = 105  # issue 13's bar; main passes 108 (of 142: 1 fails, 33 skip), 114 with the 6 user namespace specs
ALLOWED_FAILURES = {"[k8s.io] Image Manager public image with digest should be pulled and removed [Conformance]"}


def test_critest(request):
    # a base the pod user namespace spec's remapped root can reach (not pytest's 0700 tree)
    with reachable_base("critest-") as base, cri_node(base / "node", "ours") as node:
        result = run_critest(node)
    # shown in CI's log whether the test passes or not (past pytest's output capture)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("\n" + result.describe())
    else:
        print(result.describe())
    assert result.specs, f"critest ran no spec:\n{result.output[-5000:]}"
    assert not {s.name for s in result.failed} - ALLOWED_FAILURES, result.describe()
    assert result.passed >= MIN_PASSED, result.describe()
