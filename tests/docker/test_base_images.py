"""The images every job runs on: the local Debian base, the CPU runtime, the CUDA recipe."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.docker.setup_scripts import REPO_ROOT, run_script, script_result

pytestmark = pytest.mark.docker

PYTHON_LABEL = "nemo-run-k8s.io/python-version"
HOST_MINOR = f"{sys.version_info.major}.{sys.version_info.minor}"
PRINT_MINOR = 'import sys; print("%d.%d" % sys.version_info[:2])'

# Each of two ranks adds rank + 1, so both must see 1 + 2 = 3.
ALL_REDUCE = """
import os
import torch
import torch.distributed as dist

dist.init_process_group("gloo")
value = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(value)
# One write per line: print() may split it, and the two ranks share one stdout.
line = f"rank {dist.get_rank()} of {dist.get_world_size()}: sum {value.item():g}\\n"
os.write(1, line.encode())
dist.destroy_process_group()
"""


@pytest.fixture(scope="module")
def base_image(docker_client: Any) -> str:
    """The base image by its content tag, as its setup script reports it (built if missing)."""
    return script_result(".ci/setup-base-image.sh")


@pytest.fixture(scope="module")
def torch_base_image(docker_client: Any) -> str:
    """The base with Debian's python3-torch, by its content tag (built if missing)."""
    return script_result(".ci/setup-base-image.sh", "torch")


@pytest.fixture(scope="module")
def cpu_image(torch_base_image: str) -> str:
    """The CPU runtime image by its content tag, as images/build.sh reports it."""
    return script_result("images/build.sh", "cpu")


def run_container(client: Any, image: str, command: list[str], timeout: float = 300) -> str:
    """Run ``command`` in a fresh container; return stdout+stderr, failing on a non-zero exit."""
    container = client.containers.run(image, command, detach=True)
    try:
        status = container.wait(timeout=timeout)
        output: str = container.logs(stdout=True, stderr=True).decode()
    finally:
        container.remove(force=True)
    assert status["StatusCode"] == 0, f"{command} exited {status['StatusCode']}:\n{output}"
    return output


def test_base_image_carries_the_hosts_python_minor_version(docker_client: Any, base_image: str):
    output = run_container(docker_client, base_image, ["python3", "-c", PRINT_MINOR])
    assert output.strip() == "3.11"
    assert output.strip() == HOST_MINOR, (
        f"the base image carries Python {output.strip()} but this host runs {HOST_MINOR}:"
        " bundles pickled here would not load reliably in it"
    )


def test_base_image_is_also_tagged_local_and_starts_a_shell(docker_client: Any, base_image: str):
    assert docker_client.images.get(base_image).id == (
        docker_client.images.get("nemo-run-k8s/base-python:local").id
    )
    # `docker import` images have no config of their own; the script gives PATH and CMD.
    output = run_container(docker_client, base_image, ["bash", "-c", "echo $PATH; command -v env"])
    assert output.split() == [
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "/usr/bin/env",
    ]
    assert docker_client.images.get(base_image).attrs["Config"]["Cmd"] == ["/bin/bash"]


def test_cpu_image_runs_a_two_process_gloo_all_reduce(docker_client: Any, cpu_image: str):
    # Debian's torch 1.13 takes only underscore flags, and its torchrun needs our repair on
    # Python 3.11 (nemo_run_k8s.runtime.torchrun), which job images carry; here from the repo.
    command = ["python", "-m", "nemo_run_k8s.runtime.torchrun", "--standalone"]
    command += ["--nproc_per_node=2", "--no_python", "python", "-c", ALL_REDUCE]
    container = docker_client.containers.run(
        cpu_image,
        command,
        environment={"PYTHONPATH": "/repo"},
        volumes={str(REPO_ROOT): {"bind": "/repo", "mode": "ro"}},
        detach=True,
    )
    try:
        status = container.wait(timeout=300)
        output = container.logs().decode()
    finally:
        container.remove(force=True)
    assert status["StatusCode"] == 0, output
    results = sorted(line for line in output.splitlines() if line.startswith("rank "))
    assert results == ["rank 0 of 2: sum 3", "rank 1 of 2: sum 3"], output


def test_cpu_image_has_debian_torch_and_numpy_seen_from_its_venv(
    docker_client: Any, cpu_image: str
):
    script = (
        "import os, sys, numpy, torch;"
        "print(sys.prefix, torch.__version__, torch.__file__, numpy.__version__,"
        " int(torch.from_numpy(numpy.arange(4)).sum()), os.environ['PYTHONUNBUFFERED'],"
        " os.path.exists('/tmp/wheels'))"
    )
    output = run_container(docker_client, cpu_image, ["python", "-c", script])
    assert "NumPy" not in output, f"torch complains about numpy:\n{output}"
    prefix, torch_version, torch_file, numpy_version, total, unbuffered, wheels_left = (
        output.split()
    )
    assert prefix == "/opt/venv"
    # python3-torch and python3-numpy from bookworm, in the base's system site-packages.
    assert torch_version.startswith("1.13.")
    assert torch_file == "/usr/lib/python3/dist-packages/torch/__init__.py"
    assert numpy_version.startswith("1.24.")
    assert (total, unbuffered, wheels_left) == ("6", "1", "False")
    labels = docker_client.images.get(cpu_image).attrs["Config"]["Labels"]
    assert labels[PYTHON_LABEL] == HOST_MINOR


def test_cpu_image_build_is_skipped_when_its_content_tag_exists(cpu_image: str):
    started = time.monotonic()
    proc = run_script("images/build.sh", "cpu")
    assert proc.stdout.split() == [cpu_image]
    assert f"{cpu_image} is up to date" in proc.stderr
    assert time.monotonic() - started < 30


def test_venv_step_refuses_a_python_version_the_image_does_not_carry(
    docker_client: Any, base_image: str
):
    # The image label comes from PYTHON_VERSION; the build must stop rather than label wrongly.
    common = str(REPO_ROOT / "images" / "common")
    container = docker_client.containers.run(
        base_image,
        ["sh", "/common/install-venv.sh", "3.12"],
        volumes={common: {"bind": "/common", "mode": "ro"}},
        detach=True,
    )
    try:
        status = container.wait(timeout=60)
        output = container.logs().decode()
    finally:
        container.remove(force=True)
    assert status["StatusCode"] != 0
    assert "carries Python 3.11 but the build says 3.12" in output


@pytest.mark.timeout(1800)
def test_cuda_recipe_builds_on_the_local_base(docker_client: Any, base_image: str):
    # The CUDA base cannot be pulled here; the same recipe on the local base exercises it.
    image = script_result("images/build.sh", "cuda", "--base", "nemo-run-k8s/base-python:local")
    assert image.startswith("nemo-run-k8s/cuda:")
    flavor = (Path(REPO_ROOT) / "images" / "cuda" / "flavor").read_text()
    assert "BASE_IMAGE=nvidia/cuda:" in flavor
    # The label follows the Python the base really carries, not the flavor's 3.12 default.
    assert docker_client.images.get(image).attrs["Config"]["Labels"][PYTHON_LABEL] == "3.11"
    # A plain venv: torch 2.13 (PyPI's CUDA build, which runs on CPU) from the wheels.
    script = "import torch; print(torch.__version__, torch.__file__, torch.ones(2).sum().item())"
    output = run_container(docker_client, image, ["python", "-c", script])
    version, path, total = output.split()
    assert version.startswith("2.13.0")
    assert path == "/opt/venv/lib/python3.11/site-packages/torch/__init__.py"
    assert total == "2.0"
    config = run_container(docker_client, image, ["cat", "/opt/venv/pyvenv.cfg"])
    assert "include-system-site-packages = false" in config
