"""Cancel removes everything; a sweep shares one image and every point runs."""

from __future__ import annotations

from typing import Any

import pytest

import nemo_run_k8s as run
from tests.cluster import tasks
from tests.cluster.conftest import Cluster
from tests.cluster.helpers import wait_for_line

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]


def test_cancel_deletes_the_pytorchjob_and_every_pod(
    cluster: Cluster, namespace: str, executor: Any
) -> None:
    job = run.submit(run.Partial(tasks.ticks, seconds=600), executor(num_nodes=2), name="cancel")
    name = job.record.handle["name"]
    wait_for_line(job, "tick 1")
    assert len(cluster.pods(namespace, name)) == 2
    job.cancel()  # returns once no pod of the job is left
    assert job.state() is run.JobState.CANCELLED
    assert cluster.pytorchjob(namespace, name) is None
    assert cluster.pods(namespace, name) == []


def test_ten_point_sweep_one_image_all_succeed(executor: Any) -> None:
    exp = run.sweep(run.Partial(tasks.square, x=0), {"x": list(range(10))}, executor())
    jobs = exp.launch()
    assert len(jobs) == 10
    states = exp.wait(timeout=600)
    assert set(states.values()) == {run.JobState.SUCCEEDED}, exp.status()
    assert sorted(exp.results().values()) == [x * x for x in range(10)]
    images = {job.record.handle["image"] for job in jobs.values()}
    assert len(images) == 1, images  # one image for all ten points
