"""The package metadata a user checks: one version everywhere, the Python
versions and platform the project tests, project URLs, a licence."""

from __future__ import annotations

import importlib.metadata
import os
import re

from tests.helpers import REPO, ferroloop


def _cargo_version() -> str:
    with open(os.path.join(REPO, "Cargo.toml")) as f:
        return re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)


def test_one_version_everywhere():
    assert ferroloop.__version__ == _cargo_version()
    assert importlib.metadata.version("ferroloop") == ferroloop.__version__


def test_metadata_a_user_checks():
    meta = importlib.metadata.metadata("ferroloop")
    classifiers = meta.get_all("Classifier")
    for ver in ("3.11", "3.13", "3.14", "3.15"):
        assert f"Programming Language :: Python :: {ver}" in classifiers
    assert "Operating System :: POSIX :: Linux" in classifiers
    assert meta["Requires-Python"] == ">=3.11"  # the oldest tested CPython
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert {"Source", "Issues", "Changelog"} <= set(urls)
    assert meta["License-Expression"] == "MIT" or meta["License"] == "MIT"
    assert meta["Author"] or meta["Author-email"]


def test_license_and_changelog_exist():
    for name in ("LICENSE", "CHANGELOG.md"):
        assert os.path.getsize(os.path.join(REPO, name)) > 100
