"""Fixtures for the DockerExecutor and job-image tests (marker ``docker``, real engine).

Without an engine these tests skip, except under CI (``CI`` set), where they fail: CI starts
one, so a missing engine there is a broken setup. Each session records its jobs under its own
``NEMO_RUN_K8S_HOME``; at the end every container and network labelled with one of its jobs
is removed, and so is every image the session made (set NEMO_RUN_K8S_KEEP_TEST_IMAGES=1 to keep
them as a cache between local runs).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.docker import engine

BASE_IMAGE = "nemo-run-k8s/base-python:local"
CPU_IMAGE = "nemo-run-k8s/cpu:local"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A client of the local Docker engine; skips (fails under CI) when none answers."""
    try:
        import docker

        client = docker.from_env(timeout=300)
        client.ping()
    except Exception as err:
        message = f"no Docker engine answers ({err}); start dockerd (CI: .ci/setup-docker.sh)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {message}", pytrace=False)
        pytest.skip(message)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def home(session_home: Any) -> Any:
    """Docker tests share the session's home (its build caches) instead of one per test."""
    return session_home


@pytest.fixture(scope="session")
def made_images(docker_client: Any, job_home: Any) -> Iterator[engine.ImageLedger]:
    """Images this session creates; removed at the end (those that existed before are kept)."""
    ledger = engine.ImageLedger(docker_client)
    yield ledger
    engine.remove_job_resources(docker_client, job_home)
    if not os.environ.get("NEMO_RUN_K8S_KEEP_TEST_IMAGES"):
        ledger.add_from_records(job_home)
        ledger.remove_new()


def require_image(client: Any, ref: str) -> str:
    """``ref`` if the engine has it; skips (fails under CI) otherwise."""
    import docker.errors

    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        message = f"image {ref} is missing; build it with images/build.sh (CI does)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {message}", pytrace=False)
        pytest.skip(message)
    return ref


@pytest.fixture(scope="session")
def base_image(docker_client: Any, made_images: Any) -> str:
    return require_image(docker_client, BASE_IMAGE)


@pytest.fixture(scope="session")
def cpu_image(docker_client: Any, made_images: Any) -> str:
    return require_image(docker_client, CPU_IMAGE)
