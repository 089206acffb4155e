"""Fixtures for the chart tests: the real helm binary, or a skip (a failure under CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helm.chart import REPO_ROOT, Helm, find_helm


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """The helm binary from $HELM or .tools/bin/helm.

    Missing helm skips these tests on a developer machine, but fails them when $CI is set:
    CI must run `.ci/setup-helm.sh` first, and a silent skip there would hide a broken chart.
    """
    binary = find_helm()
    if binary is None:
        where = os.environ.get("HELM") or str(Path(REPO_ROOT, ".tools", "bin", "helm"))
        message = f"helm not found or not runnable at {where}; run `bash .ci/setup-helm.sh`"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {message}", pytrace=False)
        pytest.skip(message)
    return Helm(binary, tmp_path_factory.mktemp("helm-home"))
