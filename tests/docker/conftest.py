"""Fixtures for tests that need a real Docker engine (marker ``docker``).

Without an engine these tests skip, except under CI (``CI`` set), where they fail: CI starts one
with ``.ci/setup-docker.sh``, so a missing engine there is a broken setup, not a reason to skip.
Images come from the project's own scripts, which skip the build when the content tag exists.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.docker.setup_scripts import running_in_ci, script_result


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A client of the local Docker engine; skips (fails under CI) when none answers."""
    try:
        import docker
    except ImportError:
        message = "the `docker` Python package is missing: pip install 'nemo_run_k8s[docker]'"
        if running_in_ci():
            pytest.fail(message)
        pytest.skip(message)
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as e:
        message = (
            f"no Docker engine answers ({e}); start one with `sudo bash .ci/setup-docker.sh`"
            " (installs Debian's docker.io if needed)"
        )
        if running_in_ci():
            pytest.fail(f"CI is set but {message}")
        pytest.skip(message)
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_client: Any) -> str:
    """The local Debian + Python base image (content tag), built once by its setup script."""
    return script_result(".ci/setup-base-image.sh")


@pytest.fixture(scope="session")
def cpu_image(base_image: str) -> str:
    """The CPU runtime image with torch in /opt/venv (content tag), built by images/build.sh."""
    return script_result("images/build.sh", "cpu")
