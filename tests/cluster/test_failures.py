"""How jobs fail on a real cluster, and what the user is told."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

import nemo_run_k8s as run
from tests.cluster import tasks
from tests.cluster.conftest import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]


def test_raising_task_fails_with_the_remote_traceback(executor: Any) -> None:
    job = run.submit(run.Partial(tasks.raises), executor(), name="raises")
    assert job.wait(timeout=300) is run.JobState.FAILED
    error = job.exception()
    assert isinstance(error, run.JobFailed)
    assert "ValueError: broken on purpose in the pod" in error.traceback
    assert "inner_helper" in error.traceback  # the pod's own frames, not ours
    assert "broken on purpose in the pod" in str(error)


def test_memory_limit_fails_naming_oomkilled(executor: Any) -> None:
    job = run.submit(run.Partial(tasks.eat_memory, mib=2048), executor(memory="256Mi"), name="oom")
    assert job.wait(timeout=300) is run.JobState.FAILED
    error = job.exception()
    assert error is not None and "OOMKilled" in str(error), str(error)
    assert "still alive" not in "\n".join(job.logs())


def test_missing_image_fails_naming_the_pull_error(
    executor: Any, image_repo: str, cluster: Cluster, namespace: str
) -> None:
    missing = f"{image_repo}-missing@sha256:{'0' * 64}"

    class MissingImage(run.KubernetesExecutor):  # type: ignore[misc]
        def _resolve_image(self, bundle: Any, prebuilt: str | None = None) -> str:
            return missing  # as if the image was deleted from the registry after the push

    base = executor()
    ex = MissingImage(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)})
    started = time.monotonic()
    job = run.submit(run.Partial(tasks.square, x=2), ex, name="no-image")
    state = job.wait(timeout=180)
    took = time.monotonic() - started
    assert state is run.JobState.FAILED, (state, job.reason())
    assert took < 180
    reason = job.reason()
    assert "ImagePullBackOff" in reason or "ErrImagePull" in reason, reason
    assert missing in reason or "not found" in reason, reason
    job.cancel()


def test_gpu_on_a_gpu_less_node_fails_with_the_schedulers_reason(executor: Any) -> None:
    ex = executor(gpus_per_node=1, unschedulable_timeout=5)
    started = time.monotonic()
    job = run.submit(run.Partial(tasks.square, x=2), ex, name="gpu")
    state = job.wait(timeout=120)
    assert state is run.JobState.FAILED, (state, job.reason())
    assert time.monotonic() - started < 120
    reason = job.reason()
    assert "Insufficient nvidia.com/gpu" in reason, reason
    job.cancel()


def test_restarts_past_the_backoff_limit_still_say_why(executor: Any) -> None:
    # The default restart policy: the container restarts in place until backoff_limit; then the
    # operator deletes the pods (cleanPodPolicy or not). What is left to say why: its events.
    ex = executor(restart_policy="OnFailure", backoff_limit=1)
    job = run.submit(run.Partial(tasks.raises), ex, name="restarts")
    assert job.wait(timeout=300) is run.JobState.FAILED
    error = job.exception()
    assert error is not None
    assert "backoff limit" in str(error), str(error)
    assert "broken on purpose in the pod" in str(error), str(error)
