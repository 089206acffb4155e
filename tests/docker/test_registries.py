"""The loopback registries of .ci/setup-registry.sh: pushes land, unauthenticated ones do not."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.docker.setup_scripts import run_script

pytestmark = pytest.mark.docker

PLAIN = "127.0.0.1:5000"
AUTH = "127.0.0.1:5001"


@pytest.fixture(scope="module")
def registries(docker_client: Any) -> None:
    run_script(".ci/setup-registry.sh", "--auth")


@pytest.fixture
def small_image(docker_client: Any, base_image: str) -> Iterator[str]:
    """A repository name unique to the test; its local tags are removed afterwards."""
    repository = f"nemo-run-k8s-test/registry-{uuid.uuid4().hex[:8]}"
    yield repository
    for registry in (PLAIN, AUTH):
        try:
            docker_client.images.remove(f"{registry}/{repository}:v1", noprune=True)
        except docker_errors().ImageNotFound:
            pass


def docker_errors() -> Any:
    import docker.errors

    return docker.errors


def push(client: Any, reference: str, auth_config: dict[str, str] | None = None) -> list[str]:
    """Push ``reference``; return the error messages the engine streamed (none on success)."""
    repository, tag = reference.rsplit(":", 1)
    events = client.images.push(repository, tag, stream=True, decode=True, auth_config=auth_config)
    return [event["error"] for event in events if "error" in event]


def test_push_to_the_plain_registry_lands(
    docker_client: Any, registries: None, base_image: str, small_image: str
):
    reference = f"{PLAIN}/{small_image}:v1"
    docker_client.images.get(base_image).tag(reference)
    assert push(docker_client, reference) == []
    with urllib.request.urlopen(f"http://{PLAIN}/v2/{small_image}/tags/list", timeout=10) as r:
        assert json.load(r) == {"name": small_image, "tags": ["v1"]}


def test_auth_registry_refuses_anonymous_and_wrong_password_and_accepts_tester(
    docker_client: Any, registries: None, base_image: str, small_image: str
):
    reference = f"{AUTH}/{small_image}:v1"
    docker_client.images.get(base_image).tag(reference)
    for credentials in (None, {"username": "tester", "password": "wrong"}):
        errors = push(docker_client, reference, auth_config=credentials)
        assert errors, f"push with {credentials} was accepted"
        assert "no basic auth credentials" in errors[0] or "unauthorized" in errors[0], errors
    good = {"username": "tester", "password": "secret"}
    assert push(docker_client, reference, auth_config=good) == []
