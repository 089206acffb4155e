"""Watches the containers of one Docker job; stops them all when one fails.

Started detached from the submitter, so it outlives the process that submitted
the job: as a fork of the submitter calling :func:`watch` where that is safe
(see ``executors/fork.py``), otherwise as a script (``python supervisor.py
JOB_DIR GO_FD JOB_ID``) that needs only the standard library and three stdlib-only
modules of ours (``paths``, ``exit_status``, ``image.engine``: the engine's Unix
socket), and the docker SDK only for any other ``DOCKER_HOST`` or a failed launch. It
waits for the submitter's word on the pipe ``GO_FD`` (the containers are
started; nothing comes if the launch failed or the submitter died, and it then
exits), reads ``JOB_DIR/docker.json`` (what the executor launched)
and then:

- copies each container's output into ``JOB_DIR/logs/node-<i>.log`` as it is
  written, each line prefixed with its node and rank, so the logs outlive the
  containers;
- waits for every container; the first that exits non-zero fails the job and
  the others are stopped at once (SIGTERM, then SIGKILL after a grace period);
- when all have exited, removes the containers, writes ``JOB_DIR/exit.json``
  (state, exit code per node, reason), then removes the network: a job whose
  state is final has no container left, and its empty network goes a moment
  later (see :func:`finish`).

The same functions finish a job whose supervisor died (``state()`` calls
:func:`finish` then), which is why this file is also importable as a module.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from nemo_run_k8s.executors.base import LineBuffer
from nemo_run_k8s.exit_status import ExitStatus, describe_exit
from nemo_run_k8s.image import engine
from nemo_run_k8s.image.engine import errors_of
from nemo_run_k8s.paths import JobPaths

GO = b"go"  # what the submitter writes on the supervisor's pipe once every container runs
STOP_GRACE_SECONDS = 10
_LOG_JOIN_SECONDS = 10.0
_STOPPED_CODES = (143, 137)  # SIGTERM, SIGKILL: how a stopped node ends


# ---------------------------------------------------------------------- log lines


def line_prefixer(node: int, nproc: int) -> Callable[[str], str]:
    """How a log line of ``node`` is shown: ``[node1 rank3] text``.

    With one process per node the rank is known here. With several, torchrun
    prefixes each worker line itself (``TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE``
    is set to the same form by the executor); its own lines get ``[node1]``.
    """
    if nproc == 1:
        prefix = f"[node{node} rank{node}] "
        return lambda line: prefix + line
    own = f"[node{node} rank"
    return lambda line: line if line.startswith(own) else f"[node{node}] {line}"


def write_lines(chunks: Iterable[bytes], out: Any, prefix: Callable[[str], str]) -> None:
    """Writes ``chunks`` (arbitrary pieces of output) to ``out`` line by line, prefixed.

    Holds at most one line (see :class:`~nemo_run_k8s.executors.base.LineBuffer`).
    """
    buffer = LineBuffer()
    for chunk in chunks:
        lines = buffer.feed(chunk)
        if lines:
            text = "".join(prefix(line.decode(errors="replace")) + "\n" for line in lines)
            out.write(text.encode())
            out.flush()
    pending = buffer.rest()
    if pending:
        out.write((prefix(pending.decode(errors="replace")) + "\n").encode())
        out.flush()


def copy_logs(api: Any, node: dict[str, Any], log_file: Path, follow: bool) -> None:
    """Copies one container's output into ``log_file`` (following it while it runs).

    Without ``follow`` (finishing a job whose supervisor died) the copy is made
    aside and then written over the file in place: a reader following the file
    keeps its position, and a container that is already gone (another process
    finished the job first) leaves the log as it was, with a note.
    """
    prefix = line_prefixer(node["node"], node["nproc"])
    if follow:
        with open(log_file, "wb", buffering=0) as out:
            try:
                stream = api.logs(node["id"], stdout=True, stderr=True, stream=True, follow=True)
                write_lines(stream, out, prefix)
            except Exception as err:  # the daemon or the container went away mid-copy
                out.write(f"[node{node['node']}] nemo_run_k8s: log copy ended: {err}\n".encode())
        return
    with tempfile.TemporaryFile() as copy:
        try:
            stream = api.logs(node["id"], stdout=True, stderr=True, stream=True, follow=False)
            write_lines(stream, copy, prefix)
        except Exception as err:
            with open(log_file, "ab") as out:
                out.write(f"[node{node['node']}] nemo_run_k8s: log copy ended: {err}\n".encode())
            return
        copy.seek(0)
        with open(log_file, "r+b" if log_file.exists() else "wb") as out:
            shutil.copyfileobj(copy, out)
            out.truncate()


# ---------------------------------------------------------------------- ending the job


def stop_all(api: Any, container_ids: Iterable[str], grace: int = STOP_GRACE_SECONDS) -> None:
    """Stops containers in parallel (SIGTERM, SIGKILL after ``grace`` s); gone ones are fine."""
    _, api_errors = errors_of(api)

    def stop(cid: str) -> None:
        with contextlib.suppress(*api_errors):
            api.stop(cid, timeout=grace)

    _in_parallel(stop, container_ids)


def remove_all(api: Any, spec: dict[str, Any]) -> None:
    """Removes the job's containers (forced) and then its network (if any)."""
    remove_containers(api, spec)
    remove_network(api, spec)


def remove_containers(api: Any, spec: dict[str, Any]) -> None:
    """Removes the job's containers (forced, in parallel); gone ones are fine."""
    not_found, _ = errors_of(api)

    def remove(cid: str) -> None:
        with contextlib.suppress(*not_found):
            api.remove_container(cid, force=True)

    _in_parallel(remove, [n["id"] for n in spec["nodes"]])


def remove_network(api: Any, spec: dict[str, Any]) -> None:
    """Removes the job's network once its containers are gone (Docker needs a moment)."""
    not_found, api_errors = errors_of(api)
    if not spec.get("network_id"):
        return
    for attempt in range(20):  # endpoints are released a moment after removal
        try:
            api.remove_network(spec["network_id"])
            return
        except not_found:
            return
        except api_errors:
            if attempt == 19:
                raise
            time.sleep(0.05)


def final_state(
    job_dir: Path, codes: dict[int, int | None], first_failed: int | None = None
) -> tuple[str, str]:
    """``(state, reason)`` from each node's exit code (None: the container was lost).

    ``first_failed`` is the node that failed first, when known; otherwise a node
    that ended by a stop signal (143, 137) is taken for a consequence, not the cause.
    """
    if codes and all(code == 0 for code in codes.values()):
        return "SUCCEEDED", ""
    if JobPaths(job_dir).cancel_requested.exists():
        return "CANCELLED", "cancelled"
    failed = sorted(
        (n for n, c in codes.items() if c != 0),
        key=lambda n: (n != first_failed, codes[n] in _STOPPED_CODES, n),
    )
    node = failed[0] if failed else 0
    code = codes.get(node)
    if code is None:
        return "FAILED", f"the container of node {node} disappeared"
    return "FAILED", describe_exit(code, f"node {node}")


def write_exit(job_dir: Path, state: str, reason: str, codes: dict[int, int | None]) -> None:
    """Records how the job ended; the first writer wins (a later one changes nothing)."""
    ExitStatus(state, reason, codes).write(JobPaths(job_dir).exit_status)


def finish(
    api: Any,
    job_dir: Path,
    spec: dict[str, Any],
    codes: dict[int, int | None],
    first_failed: int | None = None,
) -> None:
    """Removes the job's containers, records how it ended, then removes its network.

    The state is final once no container is left. The network, empty by then,
    goes right after: removing a bridge network is slow for Docker, and
    nobody waiting for the result needs to wait for it. ``network-removed`` says
    it is gone (``DockerExecutor.state`` finishes the removal should this
    process die in between).
    """
    state, reason = final_state(job_dir, codes, first_failed)
    remove_containers(api, spec)
    write_exit(job_dir, state, reason, codes)
    remove_network(api, spec)
    JobPaths(job_dir).network_removed.touch()


def remove_labelled(api: Any, job_id: str) -> None:
    """Removes every container and network labelled with ``job_id`` (an unfinished launch)."""
    import docker.errors

    from nemo_run_k8s.labels import JOB_ID_LABEL

    label = {"label": f"{JOB_ID_LABEL}={job_id}"}
    try:
        nodes = [{"id": c["Id"]} for c in api.containers(all=True, filters=label)]
        network_ids = [n["Id"] for n in api.networks(filters=label)]
    except docker.errors.APIError:
        return
    for network_id in network_ids or [None]:
        remove_all(api, {"nodes": nodes, "network_id": network_id})
        nodes = []


def load_spec(job_dir: Path) -> dict[str, Any]:
    return dict(json.loads(JobPaths(job_dir).docker_spec.read_text()))


# ---------------------------------------------------------------------- the watcher


def supervise_containers(api: Any, job_dir: Path, spec: dict[str, Any]) -> None:
    """Follows logs, waits for every node, stops the rest on a failure, then finishes."""
    not_found, _ = errors_of(api)
    nodes = spec["nodes"]
    paths = JobPaths(job_dir)
    paths.logs.mkdir(exist_ok=True)
    pumps = [
        threading.Thread(target=copy_logs, args=(api, n, paths.log(n["node"]), True)) for n in nodes
    ]
    exits: queue.Queue[tuple[int, int | None]] = queue.Queue()

    def wait(node: dict[str, Any]) -> None:
        try:
            code: int | None = int(api.wait(node["id"], timeout=None)["StatusCode"])
        except not_found:
            code = None
        except Exception:  # the daemon went away: the container is lost to us
            code = None
        exits.put((node["node"], code))

    waiters = [threading.Thread(target=wait, args=(n,), daemon=True) for n in nodes]
    for thread in [*pumps, *waiters]:
        thread.start()
    codes: dict[int, int | None] = {}
    first_failed = None
    while len(codes) < len(nodes):
        node, code = exits.get()
        codes[node] = code
        if code != 0 and first_failed is None:
            first_failed = node  # one node failed (or was stopped): the job is over for all
            others = [n["id"] for n in nodes if n["node"] not in codes]
            threading.Thread(target=stop_all, args=(api, others), daemon=True).start()
    deadline = time.monotonic() + _LOG_JOIN_SECONDS
    for pump in pumps:
        pump.join(max(0.0, deadline - time.monotonic()))
    finish(api, job_dir, spec, codes, first_failed)


def _in_parallel(fn: Callable[[str], None], items: Iterable[str]) -> None:
    threads = [threading.Thread(target=fn, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def watch(job_dir: Path, go_fd: int, job_id: str | None = None) -> int:
    """Waits for the submitter's go on ``go_fd``, then supervises the job in ``job_dir``.

    No go (the launch failed, or the submitter died during it, e.g. killed during
    the image build): removes whatever was created with the job's label (the
    network is created while the image builds), so a killed submitter leaks nothing.
    """
    # Started before the containers are created: the go comes once they all run.
    with os.fdopen(go_fd, "rb") as go:
        if go.read() != GO:
            print("the launch did not finish (the submitter failed or was stopped)")
            if job_id:
                import docker

                remove_labelled(docker.from_env(timeout=60).api, job_id)
            return 1
    spec = load_spec(job_dir)
    # The submitter's DOCKER_HOST, no read timeout; the SDK only where the socket client cannot.
    api = engine.from_env(timeout=None)
    if api is None:
        import docker

        api = docker.from_env(timeout=None).api
    supervise_containers(api, job_dir, spec)
    return 0


def main() -> int:
    if len(sys.argv) not in (3, 4):
        print("usage: supervisor.py JOB_DIR GO_FD [JOB_ID]", file=sys.stderr)
        return 2
    return watch(Path(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:])


if __name__ == "__main__":
    sys.exit(main())
