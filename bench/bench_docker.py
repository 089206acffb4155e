"""How long a trivial 2-node DockerExecutor job takes end to end, and where the time goes.

    PYTHONPATH=. python bench/bench_docker.py [-n 10] [--base-image IMAGE] [--network host|job]

One untimed run first builds (or finds) the job image; then each sample, in
this one process, calls ``run.submit(run.Partial(add, a=1),
run.DockerExecutor(num_nodes=2, network=...))`` and waits for ``job.result()``:
bundle, image lookup, (with ``--network job``) the job's network, two
containers, the task on both nodes, and the supervisor removing the containers
(a final state means no container is left). A job network is removed after
that (Docker takes ~0.15 s for it); the next row says when that was done, and
the next sample starts only then, so none pays for its predecessor's clean-up.
The image is present, as the target assumes. A further row times the same from
a fresh ``python -c`` process (adds interpreter start and imports). The floors
do what Docker must for the same shape on the same network (a job network,
two containers, start, wait, remove both, remove the network), without our code.

Target: median <= 1.2 s. Quoted, not measured (they are not installed here):
TorchX local_docker with 2 replicas 2.4-2.9 s, NeMo-Run's single-node docker
executor 5.2 s. Needs a running Docker engine; records go to a temporary
NEMO_RUN_K8S_HOME.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 1.2
REPORTED = {
    "TorchX local_docker, 2 replicas": "2.4-2.9",
    "NeMo-Run docker, 1 node": "5.2",
}


def add(a: int, b: int = 1) -> int:
    return a + b


FRESH_PROCESS = """
import sys
import nemo_run_k8s as run
from bench.bench_docker import add
executor = run.DockerExecutor(num_nodes=2, base_image=sys.argv[1], network=sys.argv[2])
job = run.submit(run.Partial(add, a=1), executor)
assert job.result() == 2
"""


def timed(marks: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            marks[name] = marks.get(name, 0.0) + time.perf_counter() - start

    return wrapper


def one_job(base_image: str, network: str, marks: dict[str, float]) -> float:
    import nemo_run_k8s as run

    start, epoch = time.perf_counter(), time.time()
    executor = run.DockerExecutor(num_nodes=2, base_image=base_image, network=network)
    job = run.submit(run.Partial(add, a=1), executor)
    submitted = time.perf_counter()
    assert job.result() == 2, job.log_tail()
    end = time.perf_counter()
    job_dir = Path(job.record.job_dir)
    finished = (job_dir / "exit.json").stat().st_mtime - epoch  # the final state is written
    marks["submit (returns)"] = submitted - start
    marks["run on 2 nodes + container removal"] = finished - (submitted - start)
    marks["until wait() sees it"] = (end - start) - finished
    # Not timed: the supervisor removes the job's network after the final state; the next
    # sample starts once it has, so no sample pays for its predecessor's clean-up.
    network_gone = job_dir / "network-removed"
    deadline = time.monotonic() + 30
    while not network_gone.exists():
        assert time.monotonic() < deadline, "the job's network was not removed"
        time.sleep(0.01)
    marks["network removed (after the result)"] = network_gone.stat().st_mtime - epoch
    return end - start


def docker_floor(image: str, entrypoint: list[str] | None, network: str) -> float:
    """Docker's own cost for the same shape: (network,) 2 containers, start, wait, remove.

    With ``entrypoint`` None the containers run the job's entrypoint on its
    bundle (Docker plus the Python floor of the job); else that command. With
    ``network`` "job" a network is created and removed, as for such a job;
    with "host" the containers share the host's.
    """
    import threading

    import docker

    api = docker.from_env().api
    bundle = api.inspect_image(image)["Config"]["Labels"]["nemo-run-k8s.io/bundles"].split(",")[0]
    labels = {"app.kubernetes.io/managed-by": "nemo-run-k8s", "nemo-run-k8s.io/bench": "floor"}
    start = time.perf_counter()
    name = f"nrk-bench-floor-{os.getpid()}"
    network_id = api.create_network(name, labels=labels)["Id"] if network == "job" else None
    ids = []
    for node in range(2):
        endpoint = api.create_networking_config({name: api.create_endpoint_config()})
        ids.append(
            api.create_container(
                image,
                command=None if entrypoint else [f"/opt/nemo_run_k8s/bundles/{bundle}"],
                entrypoint=entrypoint,
                name=f"{name}-{node}",
                labels=labels,
                host_config=api.create_host_config(network_mode=name if network_id else "host"),
                networking_config=endpoint if network_id else None,
            )["Id"]
        )
    threads = [threading.Thread(target=api.start, args=(cid,)) for cid in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for cid in ids:
        api.wait(cid)
    for cid in ids:
        api.remove_container(cid, force=True)
    if network_id:
        api.remove_network(network_id)
    return time.perf_counter() - start


def one_job_image(base_image: str, network: str) -> str:
    """The job image of the benchmark's task (present after the warm-up run)."""
    import nemo_run_k8s as run

    executor = run.DockerExecutor(num_nodes=2, base_image=base_image, network=network)
    return str(run.build_image(run.Partial(add, a=1), executor).ref)


def row(name: str, samples: list[float]) -> str:
    return f"{name:<40} {statistics.median(samples):8.3f} {min(samples):8.3f} {max(samples):8.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=10, help="samples per measurement")
    parser.add_argument("--base-image", default="nemo-run-k8s/base-python:local")
    parser.add_argument("--network", choices=["host", "job"], default="host")
    opts = parser.parse_args()

    with tempfile.TemporaryDirectory() as home:
        os.environ["NEMO_RUN_K8S_HOME"] = home
        from harness import wait_for_no_networks  # bench/ is this script's directory

        from nemo_run_k8s.executors.docker import executor as de
        from nemo_run_k8s.image.builder import ImageBuilder
        from nemo_run_k8s.labels import JOB_ID_LABEL

        one_job(opts.base_image, opts.network, {})  # builds or finds the image, warms caches
        image = one_job_image(opts.base_image, opts.network)
        marks: dict[str, float] = {}
        de.DockerExecutor.check_backend = timed(
            marks, "  check_backend", de.DockerExecutor.check_backend
        )
        ImageBuilder.build = timed(marks, "  image lookup (present)", ImageBuilder.build)
        de._start_all = timed(marks, "  start 2 containers", de._start_all)
        samples, phases = [], []
        for _ in range(opts.n):
            marks.clear()
            samples.append(one_job(opts.base_image, opts.network, marks))
            phases.append(dict(marks))
        cleaned = [p.pop("network removed (after the result)") for p in phases]

        floor_true = [docker_floor(image, ["true"], opts.network) for _ in range(opts.n)]
        floor_entry = [docker_floor(image, None, opts.network) for _ in range(opts.n)]

        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO.parent)])}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # cached bytecode, as a user's Python has it
        fresh = []
        for _ in range(opts.n):
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", FRESH_PROCESS, opts.base_image, opts.network],
                env=env,
                check=True,
            )
            fresh.append(time.perf_counter() - start)
            wait_for_no_networks(JOB_ID_LABEL)

    print(f"{'seconds (n=' + str(opts.n) + ')':<40} {'median':>8} {'min':>8} {'max':>8}")
    print(f"network: {opts.network}")
    print(row("2-node job: submit + result (in process)", samples))
    print(row("  ... until its network is removed too", cleaned))
    print(row("the same from a fresh python process", fresh))
    print(row("floor: Docker alone, 2 x `true`", floor_true))
    print(row("floor: Docker + the job's entrypoint", floor_entry))
    median = statistics.median(samples)
    verdict = "meets" if median <= TARGET_S else "MISSES"
    print(f"{'target (median)':<40} {TARGET_S:8.3f}   {verdict} it")
    for name, seconds in REPORTED.items():
        print(f"{name + ' (reported, not measured)':<40} {seconds:>8}")
    print("\nwhere the time goes (median seconds):")
    for key in ["submit (returns)", *[k for k in phases[0] if k.startswith("  ")]]:
        print(f"  {key:<38} {statistics.median(p[key] for p in phases):8.3f}")
    for key in ["run on 2 nodes + container removal", "until wait() sees it"]:
        print(f"  {key:<38} {statistics.median(p[key] for p in phases):8.3f}")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
