"""Jobs on the kinds of base images users bring, from the oldest torch here to the newest.

Every base is built here without a registry: mmdebstrap roots with Debian's packages
(.ci/setup-base-image.sh), a Dockerfile on top, or our own recipe (images/build.sh).

| base                                    | python3 on PATH          | torch                   |
| --------------------------------------- | ------------------------ | ----------------------- |
| system Python (base-torch)              | /usr/bin/python3         | Debian's 1.13 (CPU)     |
| venv --system-site-packages over it     | /opt/venv/bin/python3    | Debian's 1.13 (CPU)     |
| plain venv (the images/cuda recipe)     | /opt/venv/bin/python3    | PyPI's 2.13 (CUDA build)|
| images/cpu                              | /opt/venv/bin/python3    | Debian's 1.13 (CPU)     |

On each, a 2-node x 2-process all-reduce runs through the DockerExecutor: the job image
installs our wheels into what the base has, the preflight checks the bundle there, and the
entrypoint starts torchrun with the flags that torch accepts (torch 1.13 rejects the dashed ones).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

import nemo_run_k8s as run
from nemo_run_k8s.errors import ImageBuildError
from nemo_run_k8s.executors.base import JobState
from tests.docker.engine import build_test_base, leftovers
from tests.docker.setup_scripts import script_result

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]
HOST_MINOR = "{}.{}".format(*sys.version_info[:2])


def all_reduce_report() -> dict[str, Any]:
    """Each of the 4 ranks adds rank + 1: every rank must see 10. Rank 0's view is returned."""
    import sys

    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    value = torch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(value)
    print(f"sum={value.item():g} world={dist.get_world_size()}", flush=True)
    report = {
        "sum": value.item(),
        "world": dist.get_world_size(),
        "torch": str(torch.__version__),  # a str subclass of torch's: not on the host
        "python": "{}.{}".format(*sys.version_info[:2]),
        "prefix": sys.prefix,
    }
    dist.destroy_process_group()
    return report


# What the image's own torchrun parser accepts, next to what the entrypoint would pass.
FLAGS_PROBE = """
import json
from torch.distributed.run import get_args_parser
from nemo_run_k8s.runtime import torchrun
chosen = torchrun.flags()
print(json.dumps({"chosen": chosen, "parser": sorted(get_args_parser()._option_string_actions)}))
"""


@pytest.fixture(scope="module")
def torch_base(docker_client: Any) -> str:
    """bookworm's system Python with Debian's python3-torch 1.13 (built if missing)."""
    return script_result(".ci/setup-base-image.sh", "torch")


@pytest.fixture(scope="module")
def bases(docker_client: Any, torch_base: str, made_images: Any) -> dict[str, str]:
    venv_over_torch = build_test_base(
        docker_client,
        "venv-system-site-packages",
        f"FROM {torch_base}\n"
        "RUN python3 -m venv --system-site-packages /opt/venv\n"
        "ENV PATH=/opt/venv/bin:$PATH\n",
        {},
    )
    made_images.add(venv_over_torch)
    return {
        "system-python": torch_base,
        "venv-system-site-packages": venv_over_torch,
        # The cuda recipe on the local base: a plain /opt/venv with PyPI's newest torch.
        "plain-venv": script_result(
            "images/build.sh", "cuda", "--base", "nemo-run-k8s/base-python:local"
        ),
        "images-cpu": script_result("images/build.sh", "cpu"),
    }


# (base, the prefix python3 runs from in the job, the torch version it must report)
CASES = [
    # A system Python gets a venv of ours that still sees its packages (pip refuses: PEP 668).
    ("system-python", "/opt/nemo_run_k8s/venv", "1.13."),
    ("venv-system-site-packages", "/opt/venv", "1.13."),
    ("plain-venv", "/opt/venv", "2.13."),
    ("images-cpu", "/opt/venv", "1.13."),
]


@pytest.mark.parametrize(("kind", "prefix", "torch_version"), CASES, ids=[c[0] for c in CASES])
def test_two_nodes_two_processes_all_reduce_on_each_kind_of_base(
    kind: str, prefix: str, torch_version: str, bases: dict[str, str], docker_client: Any
) -> None:
    executor = run.DockerExecutor(num_nodes=2, nproc_per_node=2, base_image=bases[kind])
    job = run.submit(run.Partial(all_reduce_report), executor, name=f"matrix-{kind}")
    assert job.wait(timeout=600) is JobState.SUCCEEDED, job.log_tail(60)
    report = job.result()
    assert report["torch"].startswith(torch_version), report
    assert (report["sum"], report["world"], report["python"]) == (10.0, 4, HOST_MINOR), report
    assert report["prefix"] == prefix, report
    lines = list(job.logs())
    assert "unrecognized arguments" not in "\n".join(lines)
    # Every rank's line, prefixed with its node and global rank (torch 1.13 is taught the prefix).
    for node, rank in [(0, 0), (0, 1), (1, 2), (1, 3)]:
        assert f"[node{node} rank{rank}] sum=10 world=4" in lines, "\n".join(lines)
    assert leftovers(docker_client, job.id) == []

    # The flags the entrypoint picked are the ones this torch's own parser declares.
    image = job.record.handle["image"]
    output = docker_client.containers.run(
        image, ["-c", FLAGS_PROBE], entrypoint="python3", remove=True, network_disabled=True
    )
    probe = json.loads(output.decode().strip().splitlines()[-1])
    assert set(probe["chosen"].values()) <= set(probe["parser"]), probe
    dashed = not torch_version.startswith("1.")
    assert (probe["chosen"]["nproc_per_node"] == "--nproc-per-node") is dashed, probe


def test_a_multi_process_job_on_a_base_without_torch_is_refused_at_build_time(
    base_image: str, docker_client: Any
) -> None:
    executor = run.DockerExecutor(num_nodes=1, nproc_per_node=2, base_image=base_image)
    with pytest.raises(ImageBuildError) as caught:
        run.submit(run.Partial(all_reduce_report), executor, name="matrix-no-torch")
    message = str(caught.value)
    assert "nothing was submitted" in message
    assert "nproc_per_node=2: this node runs several processes, which needs torch" in message
    assert "has no module named 'torch'" in message
    assert not docker_client.api.containers(all=True, filters={"name": "matrix-no-torch"})


def python_and_prefix() -> tuple[str, str]:
    import sys

    return "{}.{}".format(*sys.version_info[:2]), sys.prefix


def test_a_venv_without_pip_like_uvs_gets_pip_from_ensurepip(
    torch_base: str, docker_client: Any, made_images: Any
) -> None:
    # uv and `python3 -m venv --without-pip` make venvs with no pip in them.
    base = build_test_base(
        docker_client,
        "venv-without-pip",
        f"FROM {torch_base}\n"
        "RUN python3 -m venv --without-pip --system-site-packages /opt/venv\n"
        "ENV PATH=/opt/venv/bin:$PATH\n",
        {},
    )
    made_images.add(base)
    job = run.run(run.Partial(python_and_prefix), run.DockerExecutor(base_image=base))
    assert job.result() == (HOST_MINOR, "/opt/venv")
