"""Kubernetes' critest runs (and passes) the specs it skipped while Status denied the two
features (issue 13): ``runtime should support readonly mounts`` (recursive read-only mounts,
and refusing them with the wrong read-only flag or propagation) and ``SupplementalGroupsPolicy``
Merge and Strict (``id -G`` in the container and the user in ContainerStatus), on a node
configured like the README's CRI example (:func:`tests.support.critest.cri_node`).
"""

from __future__ import annotations

import pytest

from tests.support.critest import cri_node, run_critest

pytestmark = [pytest.mark.root, pytest.mark.interop]

FOCUS = "recursive readonly mount|SupplementalGroupsPolicy"
SPECS = 7   # 5 under "runtime should support readonly mounts" (non-recursive too) + Merge + Strict


def test_critest_recursive_read_only_and_supplemental_groups_policy(tmp_path_factory):
    with cri_node(tmp_path_factory.mktemp("critest-rro") / "node", "ours") as node:
        result = run_critest(node, f"-ginkgo.focus={FOCUS}", timeout=900)
        assert result.specs, f"critest ran no spec:\n{result.output[-5000:]}"
        print(result.describe())
        assert result.passed == SPECS and not result.failed, result.describe()
