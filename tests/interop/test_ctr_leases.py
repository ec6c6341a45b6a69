"""Debian's ctr drives the Leases service (create with expiry and labels, ls, rm)."""

from __future__ import annotations

import pytest

from tests.interop.test_ctr_foundation import ctr

pytestmark = pytest.mark.interop


def test_leases_create_ls_rm(ctr_bin, daemon):
    created = ctr(ctr_bin, daemon, "leases", "create", "--id", "build-1", "--expires", "1h", "purpose=test")
    assert created.stdout.strip() == "build-1"
    generated = ctr(ctr_bin, daemon, "leases", "create").stdout.strip()
    assert generated and generated != "build-1"
    rows = ctr(ctr_bin, daemon, "leases", "ls").stdout.splitlines()
    assert rows[0].split() == ["ID", "CREATED", "AT", "LABELS"]
    build = next(r for r in rows if r.startswith("build-1"))
    assert "purpose=test" in build and "containerd.io/gc.expire=" in build
    ids = set(ctr(ctr_bin, daemon, "leases", "ls", "-q").stdout.split())
    assert ids == {"build-1", generated}
    again = ctr(ctr_bin, daemon, "leases", "create", "--id", "build-1", check=False)
    assert again.returncode != 0 and "already exists" in again.stderr
    assert ctr(ctr_bin, daemon, "leases", "rm", "build-1", generated).returncode == 0
    assert ctr(ctr_bin, daemon, "leases", "ls", "-q").stdout.split() == []
    # leases are per namespace
    ctr(ctr_bin, daemon, "leases", "create", "--id", "mine", ns="other")
    assert ctr(ctr_bin, daemon, "leases", "ls", "-q").stdout.split() == []
    assert ctr(ctr_bin, daemon, "leases", "ls", "-q", ns="other").stdout.split() == ["mine"]


def test_images_ls_empty_and_rm_missing(ctr_bin, daemon):
    out = ctr(ctr_bin, daemon, "images", "ls").stdout
    assert out.split() == ["REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"]
    missing = ctr(ctr_bin, daemon, "images", "rm", "docker.io/library/nope:latest", check=False)
    # ctr only warns about a missing image (it checks for NotFound, so our code must be right)
    assert missing.returncode == 0 and "image not found" in missing.stderr
