"""Package list for setuptools: everything under pycontainerd/, plus cmd/ and plugins/ under the
names given in pyproject.toml's package-dir (kept here because find cannot rename directories)."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["pycontainerd", "pycontainerd.*"])
    + ["pycontainerd_cmd", "pycontainerd_plugins"],
)
