"""pyproject.toml: the license is an SPDX expression (PEP 639), not the deprecated TOML
table that makes setuptools print ``BuildBackendWarning`` on every install, and the build
requires a setuptools that reads that form (77 and later)."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_license_is_an_spdx_expression_setuptools_understands():
    data = tomllib.loads(PYPROJECT.read_text())
    assert data["project"]["license"] == "Apache-2.0"
    (setuptools_req,) = [r for r in data["build-system"]["requires"] if r.startswith("setuptools")]
    minimum = re.fullmatch(r"setuptools>=(\d+)(?:\.\d+)*", setuptools_req)
    assert minimum is not None and int(minimum.group(1)) >= 77, setuptools_req
    # what the installed distribution says (core metadata 2.4's License-Expression)
    assert importlib.metadata.metadata("pycontainerd")["License-Expression"] == "Apache-2.0"
