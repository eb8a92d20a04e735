"""One staged package root (wheel + virtualenv + layout) for every .deb test in this directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from boothguard.install import deb

BUILD_TOOLS = ("dpkg-deb", "dpkg-shlibdeps", "strip")


@pytest.fixture(scope="session")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root tree `deb.pack` turns into a .deb (several minutes: pip installs every dependency)."""
    for tool in BUILD_TOOLS:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (tests/apt-packages.txt: dpkg-dev)")
    work = tmp_path_factory.mktemp("deb")
    wheel = deb.build_wheel(deb.REPO, work / "wheel")
    return deb.stage(work / "stage", wheel)
