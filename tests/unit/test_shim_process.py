"""containerd's ShouldKillAllOnExit, read from a bundle's config.json."""

from __future__ import annotations

import json

import pytest

from pycontainerd.shim.process import should_kill_all_on_exit

CASES = [
    ({"linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}}, False),
    ({"linux": {"namespaces": [{"type": "pid", "path": "/proc/1/ns/pid"}]}}, True),  # joins another's
    ({"linux": {"namespaces": [{"type": "mount"}]}}, True),
    ({"annotations": {"namespaces": "x"}, "linux": {"namespaces": [{"type": "pid"}]}}, False),
    ({"annotations": {"a": "namespaces"}, "linux": {"namespaces": [{"type": "pid"}]}}, False),
    ({"linux": {}}, True),
    ({}, True),
]


@pytest.mark.parametrize("spec,kill_all", CASES)
@pytest.mark.parametrize("indent", [None, 2])
def test_kill_all_unless_the_spec_has_its_own_pid_namespace(tmp_path, spec, kill_all, indent) -> None:
    (tmp_path / "config.json").write_text(json.dumps(spec, indent=indent))
    assert should_kill_all_on_exit(str(tmp_path)) is kill_all


def test_a_missing_or_broken_spec_means_kill_all(tmp_path) -> None:
    assert should_kill_all_on_exit(str(tmp_path)) is True
    (tmp_path / "config.json").write_text('{"linux": {"namespaces": [')
    assert should_kill_all_on_exit(str(tmp_path)) is True
