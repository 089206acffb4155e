"""DockerExecutor: one container per node on the local Docker engine.

A job of ``num_nodes`` nodes runs as that many containers of the job image
(built by :mod:`nemo_run_k8s.image.builder`). By default they share the host's
network, each with its own hostname, and every node's name resolves to
127.0.0.1 in every container: Docker starts a container there several times
faster than on a bridge network (bench/run_all.py shows both), and there is no
network to create or remove. ``network="job"`` gives the job a bridge network
of its own instead, where the containers find each other through Docker's DNS
and each node has its own ports, as pods do. Node 0 is the master. Each
container gets the environment the Kubeflow training operator gives the pods of
a PyTorchJob (``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE``, ``RANK``,
``PET_NNODES``, ``PET_NODE_RANK``, ``PET_NPROC_PER_NODE``, ...), so one image
and one entrypoint run unchanged in both places.

Who watches the job once ``submit`` has returned: a small supervisor process
(``executors/docker/supervisor.py``), started detached from the submitter. It copies
every container's output into ``<job dir>/logs`` (prefixed with node and
rank), stops all nodes as soon as one fails, removes the containers when all
have ended, and only then writes ``<job dir>/exit.json``; last it removes the
job's network if it has one (a slow step for Docker, which a user waiting for
the result does not wait for). So a final state means no container is left, an
empty network goes a moment later (``cancel()`` returns once it has), and the
logs and rank 0's result (``<job dir>/output``, bind-mounted into node 0) stay
on the host. Should the supervisor die, the next ``state()`` call reads the
containers from Docker and finishes the job itself.

The pure half (option checks, per-node environment, container specs, the GPU
refusal) lives in :mod:`nemo_run_k8s.executors.docker.spec`.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import random
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from nemo_run_k8s.errors import SubmissionError
from nemo_run_k8s.executors.base import reject_unknown_options
from nemo_run_k8s.executors.docker import spec as ds
from nemo_run_k8s.executors.docker import supervisor as sup
from nemo_run_k8s.executors.host import (
    HostExecutor,
    alive,
    importable_env,
    start_detached,
    start_time,
)
from nemo_run_k8s.exit_status import ExitStatus
from nemo_run_k8s.image.context import atomic_write
from nemo_run_k8s.labels import job_labels
from nemo_run_k8s.paths import JobPaths
from nemo_run_k8s.spec import Handle, ImageSpec, JobIdentity, JobState, Plan, Resources

T = TypeVar("T")
_SUPERVISOR = str(Path(sup.__file__).resolve())
_CANCEL_WAIT_SECONDS = 30.0


@reject_unknown_options
@dataclasses.dataclass
class DockerExecutor(HostExecutor):
    """Runs the job in local Docker containers, one per node.

    Args:
      num_nodes: containers to start; node 0 is the master.
      gpus_per_node: GPUs given to each container (node i gets GPUs i*g ... i*g+g-1).
      nproc_per_node: processes per container (default: ``gpus_per_node``, or 1
        without GPUs); more than one starts them with torchrun.
      base_image: the image the job image is built on (it needs python3 of the
        same minor version as this client).
      shm_size: size of /dev/shm in each container (e.g. ``"8g"``); PyTorch data
        loaders and NCCL need more than Docker's 64 MB default.
      env_vars: environment variables for every container (plain values).
      secret_env_vars: environment variables passed to the containers at run
        time only: never in the image, the labels, the bundle or the dry run.
      volumes: bind mounts ``"HOST_PATH:CONTAINER_PATH[:ro]"``.
      code_dir: a directory baked into the image at /workspace (importable);
        modules under it are imported by reference instead of being pickled.
      network: ``"host"`` (default): the nodes share the host's network; a
        port a node listens on is the host's, so two nodes of one job cannot
        listen on the same one, and the job is reachable as any process on the
        host is. ``"job"``: a bridge network of the job's own; each node has
        its own address and ports (as pods do) and nothing outside the host
        reaches them; Docker takes ~0.25 s longer per container there.
      master_port: the port node 0 listens on for the rendezvous (default: a
        free port of the host on the host's network, 29500 on the job's own).
    """

    num_nodes: int = 1
    gpus_per_node: int = 0
    nproc_per_node: int | None = None
    base_image: str = "nemo-run-k8s/cpu:local"
    shm_size: str = "8g"
    env_vars: dict[str, str] | None = None
    secret_env_vars: dict[str, str] | None = None
    volumes: list[str] | None = None
    code_dir: str | None = None
    network: str = "host"
    master_port: int | None = None

    kind = "docker"
    poll_interval = 0.02  # a file read and /proc while the job runs: cheap to ask often

    def __post_init__(self) -> None:
        ds.check_int("num_nodes", self.num_nodes, 1, ds.MAX_NODES)
        ds.check_int("gpus_per_node", self.gpus_per_node, 0, ds.MAX_GPUS)
        if self.num_nodes * self.gpus_per_node > ds.MAX_GPUS:
            raise ds.invalid(
                "gpus_per_node",
                f"{self.num_nodes} nodes x {self.gpus_per_node} GPUs is more than one host can "
                f"give a job (at most {ds.MAX_GPUS} GPUs in all)",
            )
        if self.nproc_per_node is not None:
            ds.check_int("nproc_per_node", self.nproc_per_node, 1, ds.MAX_NPROC_PER_NODE)
        if self.network not in ds.NETWORKS:
            raise ds.invalid(
                "network", f"{self.network!r} is not one of {', '.join(map(repr, ds.NETWORKS))}"
            )
        if self.master_port is not None:
            ds.check_int("master_port", self.master_port, 1)
            if self.master_port > 65535:
                raise ds.invalid("master_port", f"{self.master_port} is not a port (1-65535)")
        if not isinstance(self.base_image, str) or not self.base_image.strip():
            raise ds.invalid("base_image", "give an image name, e.g. 'nemo-run-k8s/cpu:local'")
        self.shm_size = ds.checked_shm_size(self.shm_size)
        self.env_vars = ds.checked_env("env_vars", self.env_vars)
        self.secret_env_vars = ds.checked_secret_env(self.secret_env_vars)
        both = sorted(set(self.env_vars) & set(self.secret_env_vars))
        if both:
            raise ds.invalid("secret_env_vars", f"{both} also appear in env_vars; set each once")
        self.volumes = [ds.checked_volume(v) for v in self.volumes or []]
        if self.code_dir is not None:
            self.code_dir = os.path.abspath(os.fspath(self.code_dir))
        ds.check_volume_targets(self.volumes, self.code_dir)

    def resources(self) -> Resources:
        """Containers, processes per container (default: one per GPU, or 1) and GPUs each."""
        nproc = self.nproc_per_node if self.nproc_per_node is not None else self.gpus_per_node or 1
        return Resources(self.num_nodes, nproc, self.gpus_per_node)

    def image_spec(self) -> ImageSpec:
        return ImageSpec(self.base_image, self.code_dir)

    def __repr__(self) -> str:  # secret values never printed
        fields = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "secret_env_vars" and value:
                value = {k: ds.SECRET_MASK for k in value}
            fields.append(f"{f.name}={value!r}")
        return f"DockerExecutor({', '.join(fields)})"

    # ------------------------------------------------------------------ checks

    def check_backend(self) -> None:
        """Refuses what the engine cannot do before anything is created."""
        from nemo_run_k8s.image.builder import ImageBuilder

        builder = ImageBuilder()  # checks that the engine answers
        if self.gpus_per_node:
            info = builder.client.info()
            ds.check_gpus(info, self.num_nodes, self.gpus_per_node, _host_gpu_count())
        _check_base_image(builder, self.base_image)
        for volume in self.volumes or []:
            host = volume.split(":", 1)[0]
            if not os.path.exists(host):
                raise ds.invalid("volumes", f"{host} does not exist on this host ({volume!r})")
        if self.code_dir is not None and not os.path.isdir(self.code_dir):
            raise ds.invalid("code_dir", f"{self.code_dir} is not a directory")
        port = self.master_port
        if self.network == "host" and port is not None and not _port_is_free(port):
            raise ds.invalid(
                "master_port",
                f"port {port} is in use on this host, whose network the nodes share "
                "(network='host'); leave master_port unset to get a free port",
            )

    # ------------------------------------------------------------------ plan / launch

    def plan(self, bundle: Any, job: JobIdentity) -> Plan:
        from nemo_run_k8s.image.builder import env_recipe, job_layer_recipe

        documents: list[dict[str, Any]] = []
        if self.network == "job":
            labels = job_labels(job.job_id, job.name, job.experiment)
            name = ds.network_name(job.job_id)
            documents.append(
                {"kind": "network", "name": name, "driver": "bridge", "labels": labels}
            )
        port = self.master_port or (ds.JOB_NETWORK_PORT if self.network == "job" else _free_port())
        documents += [
            ds.container_spec(self, bundle.image_path, job, node, port)
            for node in range(self.num_nodes)
        ]
        return self._plan(
            bundle,
            job,
            documents=documents,
            details={
                "base image": self.base_image,
                "code_dir": self.code_dir or "(none)",
                "job image": f"{ds.IMAGE_PLACEHOLDER} (environment image + bundle layer)",
                "environment image recipe": env_recipe(),
                "job layer recipe": job_layer_recipe(ds.ENV_IMAGE_PLACEHOLDER),
            },
        )

    def launch(self, plan: Plan, bundle: Any, job: JobIdentity) -> Handle:
        """Builds the image, creates network and containers, starts them, hands over.

        The supervisor starts first (a fork of this process, before the thread
        pool exists; see ``fork.py``) and waits for the go on a pipe; a network
        of the job's own is created while the image is built.
        """
        from concurrent.futures import ThreadPoolExecutor

        from nemo_run_k8s.image.builder import ImageBuilder

        builder = ImageBuilder()  # also checks that the engine answers
        paths = JobPaths(job.job_dir)
        for directory in (paths.output, paths.logs):
            directory.mkdir(parents=True, exist_ok=True)
        network_doc = next((d for d in plan.documents if d["kind"] == "network"), None)
        containers = [d for d in plan.documents if d["kind"] == "container"]
        spec: dict[str, Any] = {"network_id": None, "nodes": []}
        go_read, go_write = os.pipe()
        try:
            supervisor = _start_supervisor(job.job_dir, go_read, job.job_id)
        except BaseException:
            os.close(go_write)
            raise
        finally:
            os.close(go_read)
        pool = ThreadPoolExecutor(max_workers=max(2, len(containers)))
        try:
            network = pool.submit(_create_network, builder, network_doc) if network_doc else None
            try:
                if job.image:  # an experiment's shared image, already holding this bundle
                    image_ref, env_ref = job.image, None
                else:
                    image = builder.build([bundle], self.image_spec())
                    image_ref, env_ref = image.ref, image.env_ref
            finally:
                spec["network_id"] = network.result() if network else None
            env = [{**doc["env"], **(self.secret_env_vars or {})} for doc in containers]
            created = pool.map(
                _create_container,
                [builder] * len(containers),
                containers,
                [image_ref] * len(containers),
                env,
            )
            spec["nodes"] = [
                {"node": doc["node"], "id": cid, "nproc": self.resources().nproc_per_node}
                for doc, cid in zip(containers, created, strict=True)
            ]
            _start_all(builder, [n["id"] for n in spec["nodes"]])
            atomic_write(paths.docker_spec, json.dumps(spec, sort_keys=True))
            os.write(go_write, sup.GO)
        except BaseException:
            # Ctrl-C or a refusal mid-launch: take down what exists, so nothing is left behind
            # (after the pool's calls in flight have returned, so none creates more later).
            # The supervisor gets no go and exits.
            pool.shutdown(wait=True, cancel_futures=True)
            _remove_partial(builder.client.api, job.job_id)
            raise
        finally:
            os.close(go_write)
            pool.shutdown(wait=True)
        return {
            "job_id": job.job_id,
            "job_dir": str(job.job_dir),
            "output_dir": str(paths.output),
            "network": network_doc["name"] if network_doc else "host",
            "containers": [doc["name"] for doc in containers],
            "image": image_ref,
            "env_image": env_ref,
            "supervisor": supervisor,
            "log_files": [str(paths.log(d["node"])) for d in containers],
        }

    # ------------------------------------------------------------------ by handle

    @classmethod
    def state(cls, handle: Handle) -> JobState:
        job_dir = Path(handle["job_dir"])
        final = _read_exit(job_dir)
        if final is not None:
            if not alive(handle["supervisor"]):
                _remove_network_left(job_dir)
            return JobState(final.state)
        if alive(handle["supervisor"]):
            return JobState.RUNNING  # launch returns once every container has started
        return _finish_unsupervised(handle)

    @classmethod
    def settle(cls, handle: Handle) -> None:
        """Removes the network a supervisor that died at the very end left behind."""
        paths = JobPaths(Path(handle["job_dir"]))
        if paths.network_removed.exists() or not paths.exit_status.exists():
            return  # removed already, or the job directory is gone
        if not alive(handle["supervisor"]):
            _remove_network_left(paths.root)

    @classmethod
    def reason(cls, handle: Handle) -> str:
        final = _read_exit(Path(handle["job_dir"]))
        return final.reason if final else ""

    @classmethod
    def cancel(cls, handle: Handle) -> None:
        if cls.state(handle).is_terminal:
            return
        job_dir = Path(handle["job_dir"])
        JobPaths(job_dir).cancel_requested.touch()
        spec = sup.load_spec(job_dir)
        sup.stop_all(_api(), [n["id"] for n in spec["nodes"]])
        deadline = time.monotonic() + _CANCEL_WAIT_SECONDS
        while _read_exit(job_dir) is None and time.monotonic() < deadline:
            if not alive(handle["supervisor"]):
                _finish_unsupervised(handle)
                break
            time.sleep(0.05)
        if _read_exit(job_dir) is None:  # the supervisor is stuck: finish here
            sup.remove_containers(_api(), spec)
            sup.write_exit(job_dir, "CANCELLED", "cancelled", {})
        while alive(handle["supervisor"]) and time.monotonic() < deadline:
            time.sleep(0.02)  # it removes the network last
        _remove_network_left(job_dir)


def _remove_network_left(job_dir: Path) -> None:
    """Removes a finished job's network if its supervisor ended before it could."""
    if JobPaths(job_dir).network_removed.exists():
        return
    try:
        sup.remove_network(_api(), sup.load_spec(job_dir))
    except Exception:  # no engine now, or no spec: the next look tries again
        return
    JobPaths(job_dir).network_removed.touch()


def _host_gpu_count() -> int | None:
    """GPUs on this host per ``nvidia-smi -L``, or None when it cannot say."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


#: Ports this process gave to jobs, and when: node 0 listens on one only once it has started,
#: so until then the check cannot see it taken (an experiment plans its next job sooner).
_HANDED_OUT: dict[int, float] = {}
_HANDED_OUT_LOCK = threading.Lock()
_HANDED_OUT_SECONDS = 3600.0


def _free_port() -> int:
    """A port no process listens on here now, from below the kernel's ephemeral range.

    Chosen at random, so that jobs submitted at once from different processes
    are unlikely to pick the same one, and never one this process handed out in
    the last hour (threads and experiments submitting one job after another);
    the range below 32768 keeps clear of the ports outgoing connections take.
    """
    rng = random.SystemRandom()
    with _HANDED_OUT_LOCK:
        now = time.monotonic()
        for port, when in list(_HANDED_OUT.items()):
            if now - when > _HANDED_OUT_SECONDS:
                del _HANDED_OUT[port]
        for _ in range(100):
            port = rng.randrange(20000, 32768)
            if port not in _HANDED_OUT and _port_is_free(port):
                _HANDED_OUT[port] = now
                return port
    raise SubmissionError(
        "found no free port for the rendezvous in 100 tries (20000-32767); pass master_port"
    )


def _port_is_free(port: int) -> bool:
    """Whether no socket here holds ``port`` on every IPv4 (or IPv6) address."""
    for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            probe = socket.socket(family, socket.SOCK_STREAM)
        except OSError:  # no IPv6 on this host
            continue
        with probe:
            try:
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind((address, port))
            except OSError as err:  # other errors (no such address here) are not "in use"
                if err.errno == errno.EADDRINUSE:
                    return False
    return True


def _check_base_image(builder: Any, ref: str) -> None:
    if builder.find(ref) is not None:
        return
    import docker.errors

    from nemo_run_k8s.image.builder import base_image_missing

    try:
        builder.client.images.get_registry_data(ref)
    except docker.errors.APIError as err:
        raise base_image_missing(ref, err.explanation) from err


# ---------------------------------------------------------------------- engine plumbing


_CLIENT: list[Any] = []


def _api() -> Any:
    """The low-level docker API client, made (and checked) once per process."""
    from nemo_run_k8s.image.builder import docker_client

    if not _CLIENT:
        _CLIENT.append(docker_client())
    return _CLIENT[0].api


def _create_network(builder: Any, doc: dict[str, Any]) -> str:
    def create() -> str:
        if builder.engine is not None:
            return str(builder.engine.create_network(doc["name"], doc["driver"], doc["labels"]))
        made = builder.client.api.create_network(
            doc["name"], driver=doc["driver"], labels=doc["labels"]
        )
        return str(made["Id"])

    return _engine_call(create, f"cannot create network {doc['name']}")


def _create_container(builder: Any, doc: dict[str, Any], image: str, env: dict[str, str]) -> str:
    config = ds.container_config(doc, image, env)

    def create() -> str:
        if builder.engine is not None:
            return str(builder.engine.create_container(doc["name"], config))
        return str(builder.client.api.create_container_from_config(config, doc["name"])["Id"])

    return _engine_call(create, f"cannot create container {doc['name']}")


def _start_all(builder: Any, ids: list[str]) -> None:
    errors: list[SubmissionError] = []

    def start(cid: str) -> None:
        api = builder.engine if builder.engine is not None else builder.client.api
        try:
            _engine_call(lambda: api.start(cid), "cannot start the job's containers")
        except SubmissionError as err:
            errors.append(err)

    sup._in_parallel(start, ids)
    if errors:
        raise errors[0]


def _engine_call(call: Callable[[], T], what: str) -> T:
    """``call()``, its engine errors (ours or the SDK's) as a SubmissionError saying ``what``."""
    from nemo_run_k8s.image.engine import EngineError

    try:
        return call()
    except (EngineError, OSError) as err:
        raise SubmissionError(f"{what}: {getattr(err, 'explanation', err)}") from err
    except Exception as err:
        if type(err).__module__.startswith("docker.") and hasattr(err, "explanation"):
            raise SubmissionError(f"{what}: {err.explanation}") from err
        raise


def _start_supervisor(job_dir: Path, go_read: int, job_id: str) -> dict[str, Any]:
    """Starts the job's supervisor, detached; it reads the go from ``go_read``.

    It keeps only ``go_read`` of the pipe (a fork closes inherited pipes; a new
    interpreter gets only the descriptors passed), so the submitter's end closing,
    or its death, ends the wait.
    """
    try:
        pid, _ = start_detached(
            lambda: sup.watch(job_dir, go_read, job_id),
            [_SUPERVISOR, str(job_dir), str(go_read), job_id],
            stdout=str(JobPaths(job_dir).supervisor_log),
            env=importable_env(os.environ),
            keep_fds=(go_read,),
        )
    except OSError as err:
        raise SubmissionError(f"cannot start the job's supervisor: {err}") from err
    return {"pid": pid, "start_time": start_time(pid)}


def _remove_partial(api: Any, job_id: str) -> None:
    """Removes whatever a failed launch created: every container and network with its label."""
    sup.remove_labelled(api, job_id)


def _read_exit(job_dir: Path) -> ExitStatus | None:
    return ExitStatus.read(JobPaths(job_dir).exit_status)


def _finish_unsupervised(handle: Handle) -> JobState:
    """Does the supervisor's work when it is gone: stop on failure, finish when all ended."""
    import docker.errors

    job_dir = Path(handle["job_dir"])
    try:
        spec = sup.load_spec(job_dir)
    except FileNotFoundError:  # the job directory was removed: nothing says how it ended
        return JobState.FAILED
    api = _api()
    codes: dict[int, int | None] = {}
    running = []
    for node in spec["nodes"]:
        try:
            status = api.inspect_container(node["id"])["State"]
        except docker.errors.NotFound:
            codes[node["node"]] = None
            continue
        if status["Status"] in ("running", "restarting", "paused"):
            running.append(node["id"])
        elif status["Status"] == "created":  # never started: it has no exit code
            codes[node["node"]] = None
        else:
            codes[node["node"]] = int(status["ExitCode"])
    if running:
        if not any(code != 0 for code in codes.values()):
            return JobState.RUNNING
        sup.stop_all(api, running)
        return _finish_unsupervised(handle)
    for node in spec["nodes"]:
        if codes[node["node"]] is not None:
            sup.copy_logs(api, node, JobPaths(job_dir).log(node["node"]), follow=False)
    sup.finish(api, job_dir, spec, codes)
    return JobState(_read_exit(job_dir).state)  # type: ignore[union-attr]
