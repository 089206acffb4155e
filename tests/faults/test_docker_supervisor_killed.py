"""Item 2, Docker: when a job's supervisor dies, its state comes from the containers.

``DockerExecutor.state`` then reads each container from the engine: RUNNING
while they run, a failed node stops the others, and once all have ended it
does the supervisor's work (copies the logs, removes containers and network,
writes ``exit.json``). These tests drive that recovery against an in-memory
engine (no daemon needed); ``tests/docker`` runs the supervisor itself on a
real one.

Found here: finishing such a job from two processes at once made the second
overwrite the first one's log copy with an error line (the containers were gone
by then). The recovery copy now goes aside and replaces the log only when it
succeeded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from nemo_run_k8s.executors.docker import executor as docker_executor
from nemo_run_k8s.executors.docker import supervisor as sup
from nemo_run_k8s.executors.docker.executor import DockerExecutor
from nemo_run_k8s.exit_status import ExitStatus
from nemo_run_k8s.paths import JobPaths
from nemo_run_k8s.spec import JobState


class FakeEngine:
    """The part of the docker API the recovery uses, for containers c0, c1 and network n1."""

    def __init__(self, nodes: int) -> None:
        self.containers = {f"c{i}": {"Status": "running", "ExitCode": 0} for i in range(nodes)}
        self.output = {
            f"c{i}": [f"step {j} of node {i}\n".encode() for j in range(3)] for i in range(nodes)
        }
        self.networks = {"n1"}

    def end(self, cid: str, code: int) -> None:
        self.containers[cid] = {"Status": "exited", "ExitCode": code}

    def inspect_container(self, cid: str) -> dict[str, Any]:
        if cid not in self.containers:
            raise docker.errors.NotFound(f"no container {cid}")
        return {"State": dict(self.containers[cid])}

    def stop(self, cid: str, timeout: int = 10) -> None:
        if self.containers.get(cid, {}).get("Status") == "running":
            self.end(cid, 143)

    def remove_container(self, cid: str, force: bool = False) -> None:
        if self.containers.pop(cid, None) is None:
            raise docker.errors.NotFound(f"no container {cid}")

    def remove_network(self, nid: str) -> None:
        if nid not in self.networks:
            raise docker.errors.NotFound(f"no network {nid}")
        self.networks.remove(nid)

    def logs(self, cid: str, **_: Any) -> Iterator[bytes]:
        if cid not in self.containers:
            raise docker.errors.NotFound(f"no container {cid}")
        return iter(self.output[cid])


@pytest.fixture
def job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], FakeEngine]:
    """A launched two-node job whose supervisor is dead; returns (handle, engine)."""
    engine = FakeEngine(2)
    monkeypatch.setattr(docker_executor, "_api", lambda: engine)
    paths = JobPaths(tmp_path / "job")
    paths.logs.mkdir(parents=True)
    nodes = [{"node": i, "id": f"c{i}", "nproc": 1} for i in range(2)]
    paths.docker_spec.write_text(json.dumps({"network_id": "n1", "nodes": nodes}))
    handle = {
        "job_dir": str(paths.root),
        "output_dir": str(paths.output),
        "supervisor": {"pid": os.getpid(), "start_time": "not this process"},  # gone
        "log_files": [str(paths.log(i)) for i in range(2)],
    }
    return handle, engine


def test_running_containers_keep_the_job_running_then_it_finishes(job) -> None:  # type: ignore[no-untyped-def]
    handle, engine = job
    assert DockerExecutor.state(handle) == JobState.RUNNING
    engine.end("c1", 0)
    assert DockerExecutor.state(handle) == JobState.RUNNING
    engine.end("c0", 0)
    assert DockerExecutor.state(handle) == JobState.SUCCEEDED
    assert engine.containers == {} and engine.networks == set()
    status = ExitStatus.read(JobPaths(Path(handle["job_dir"])).exit_status)
    assert status is not None and status.exit_codes == {0: 0, 1: 0}
    lines = list(DockerExecutor.logs(handle))
    assert "[node0 rank0] step 2 of node 0" in lines and "[node1 rank1] step 0 of node 1" in lines


def test_a_failed_node_stops_the_others(job) -> None:  # type: ignore[no-untyped-def]
    handle, engine = job
    engine.end("c1", 1)
    assert DockerExecutor.state(handle) == JobState.FAILED
    assert DockerExecutor.reason(handle) == "node 1 exited with code 1"
    assert engine.containers == {}


def test_cancel_stops_the_containers(job) -> None:  # type: ignore[no-untyped-def]
    handle, engine = job
    DockerExecutor.cancel(handle)
    assert DockerExecutor.state(handle) == JobState.CANCELLED
    assert engine.containers == {} and engine.networks == set()


def test_a_second_finisher_keeps_the_logs(job) -> None:  # type: ignore[no-untyped-def]
    handle, engine = job
    engine.end("c0", 0)
    engine.end("c1", 0)
    kept = Path(handle["log_files"][0])
    sup.copy_logs(engine, {"node": 0, "id": "c0", "nproc": 1}, kept, follow=False)
    before = kept.read_text()
    assert "step 2 of node 0" in before
    engine.remove_container("c0")  # the first finisher removed it
    sup.copy_logs(engine, {"node": 0, "id": "c0", "nproc": 1}, kept, follow=False)
    after = kept.read_text()
    assert after.startswith(before) and "log copy ended" in after


def test_a_finished_job_still_gets_its_network_removed(job) -> None:  # type: ignore[no-untyped-def]
    """The recorded end is final; a look at the job still tidies what a dying supervisor left."""
    from nemo_run_k8s.job import Job
    from tests.faults.helpers import record

    handle, engine = job
    engine.containers.clear()  # the supervisor removed them and wrote exit.json, then died
    paths = JobPaths(Path(handle["job_dir"]))
    ExitStatus("SUCCEEDED", "", {0: 0, 1: 0}).write(paths.exit_status)
    rec = record("orphaned-net-1", state="SUCCEEDED", executor="docker", handle=handle)
    assert Job(rec).state() == JobState.SUCCEEDED
    assert engine.networks == set() and paths.network_removed.exists()


def test_a_removed_job_directory_is_not_a_crash(job) -> None:  # type: ignore[no-untyped-def]
    import shutil

    handle, _ = job
    shutil.rmtree(handle["job_dir"])
    assert DockerExecutor.state(handle) == JobState.FAILED
    DockerExecutor.cancel(handle)  # nothing to read: nothing to do
