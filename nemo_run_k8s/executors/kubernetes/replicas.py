"""Each replica of a PyTorchJob: its pod's status in words, and every pod's log merged.

A job of ``num_nodes`` nodes has one master pod and ``num_nodes - 1`` worker pods,
found by the training operator's labels. Their lines are prefixed like the
Docker backend's: ``[master0 rank0]``, ``[worker1 rank2]`` (with several
processes per pod, torchrun writes the rank: see the manifest's
``TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE``).

Following polls the pod list (one request per poll for the whole job), starts
one log stream per started container, and hands their lines over through a
bounded queue, so a slow reader slows the streams instead of filling memory.
Pods that start late are picked up when they start; a container that restarts
is followed again from its start. Without ``follow``, a restarted pod's
previous container log comes first, under a ``previous container`` line.
The outcome line rank 0 prints last (the job's pickled result, read by
``outcome()``) is protocol, not output: it is left out.
"""

from __future__ import annotations

import contextlib
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from nemo_run_k8s.executors.base import node_label
from nemo_run_k8s.executors.kubernetes import client as kc
from nemo_run_k8s.executors.kubernetes.manifest import CONTAINER_NAME, KUEUE_QUEUE_LABEL
from nemo_run_k8s.runtime.contract import OUTCOME_PREFIX
from nemo_run_k8s.spec import Handle, JobDescription, JobState, ReplicaStatus

_RANK = re.compile(r"^\[rank(\d+)\] ")
_QUEUE_SIZE = 1000  # lines in flight between the streams and the reader
_END_GRACE = 10.0  # seconds streams may run on once the job has ended


# --- who is who ---------------------------------------------------------------------------


def pod_key(pod: dict[str, Any]) -> tuple[str, int]:
    labels = pod["metadata"].get("labels") or {}
    return labels.get(kc.REPLICA_TYPE_SELECTOR, "?"), int(
        labels.get(kc.REPLICA_INDEX_SELECTOR, "0")
    )


def prefixer(replica: str, index: int, nproc: int | None) -> Callable[[str], str]:
    """How a line of one replica is shown: ``[worker1 rank2] text``.

    With one process per pod the rank is the node's; with several, torchrun's
    ``[rankN]`` prefix is rewritten, and torchrun's own lines get ``[worker1]``.
    """
    label = f"{replica}{index}"
    node = 0 if replica == "master" else index + 1

    def prefix(line: str) -> str:
        m = _RANK.match(line)
        if m:
            return f"[{label} rank{m[1]}] {line[m.end() :]}"
        if nproc == 1:
            return f"[{label} rank{node}] {line}"
        return f"[{label}] {line}"

    return prefix


def strip_rank(line: str) -> str:
    """A line without torchrun's ``[rankN] `` prefix."""
    m = _RANK.match(line)
    return line[m.end() :] if m else line


def shown(line: str) -> bool:
    """Whether a log line is for people (the outcome line is not)."""
    return not strip_rank(line).startswith(OUTCOME_PREFIX)


def _container(pod: dict[str, Any]) -> dict[str, Any]:
    for cs in (pod.get("status") or {}).get("containerStatuses") or ():
        if cs.get("name") == CONTAINER_NAME:
            return dict(cs)
    return {}


def restarts(pod: dict[str, Any]) -> int:
    return int(_container(pod).get("restartCount") or 0)


# --- status in words ----------------------------------------------------------------------


def describe(
    conn: kc.Conn,
    handle: Handle,
    state: JobState,
    reason: str,
    job: dict[str, Any] | None,
    pods: list[dict[str, Any]],
) -> JobDescription:
    """Each expected replica's pod phase and why, and the latest warning events."""
    by_key = {pod_key(p): p for p in pods}
    replicas, warnings = [], []
    queue_name = _queue(job)
    for node in range(int(handle.get("num_nodes", 1))):
        replica, index = node_label(node)
        pod = by_key.get((replica, index))
        if pod is None:
            detail = f"queued in {queue_name}" if queue_name and not pods else ""
            replicas.append(ReplicaStatus(replica, index, "not created", detail))
            continue
        name = pod["metadata"]["name"]
        phase = (pod.get("status") or {}).get("phase") or "Unknown"
        events = [] if phase in ("Running", "Succeeded") else pod_events(conn, handle, name)
        warnings += [e for e in events if e.get("type") == "Warning"]
        replicas.append(
            ReplicaStatus(replica, index, phase, pod_detail(pod, events), restarts(pod), name)
        )
    if not state.is_terminal or state is JobState.FAILED:
        warnings += [e for e in job_events(conn, handle) if e.get("type") == "Warning"]
    warnings.sort(key=_event_time)
    return JobDescription(
        state, reason, tuple(replicas), tuple(_event_text(e) for e in warnings[-5:])
    )


def pod_detail(pod: dict[str, Any], events: list[dict[str, Any]]) -> str:
    """Why a pod is where it is, in words: ``pulling image ...``, ``unschedulable: ...``."""
    status = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp"):
        return "terminating"
    for cond in status.get("conditions") or ():
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "Unschedulable":
            return f"unschedulable: {cond.get('message', '')}".rstrip(": ")
    cs = _container(pod)
    state, last = cs.get("state") or {}, cs.get("lastState") or {}
    count = int(cs.get("restartCount") or 0)
    again = f"restarted {count} time(s)" if count else ""
    if "waiting" in state:
        waiting = state["waiting"] or {}
        why = waiting.get("reason", "waiting")
        if why in ("ContainerCreating", "PodInitializing") and events:
            return _latest_words(events) or why
        message = waiting.get("message", "")
        if why == "CrashLoopBackOff":
            code = ((last.get("terminated") or {}).get("exitCode")) or "?"
            return f"CrashLoopBackOff: {again}, last exit code {code}"
        return f"{why}: {message}" if message else why
    if "terminated" in state:
        term = state["terminated"] or {}
        text = f"exit code {term.get('exitCode', '?')} ({term.get('reason', '')})"
        return text + (f", {again}" if again else "")
    if "running" in state:
        return again
    return _latest_words(events)


def _latest_words(events: list[dict[str, Any]]) -> str:
    if not events:
        return ""
    event = max(events, key=_event_time)
    message = (event.get("message") or "").strip()
    if event.get("reason") == "Pulling" and message.startswith("Pulling"):
        return "p" + message[1:]  # 'pulling image "..."'
    return f"{event.get('reason', '')}: {message}"


def _event_time(event: dict[str, Any]) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )


def _event_text(event: dict[str, Any]) -> str:
    who = (event.get("involvedObject") or {}).get("name", "")
    return f"{who}: {event.get('reason', '')}: {(event.get('message') or '').strip()}"


def _queue(job: dict[str, Any] | None) -> str:
    if not job:
        return ""
    labels = job["metadata"].get("labels") or {}
    policy = (job.get("spec") or {}).get("runPolicy", {}).get("schedulingPolicy") or {}
    return str(labels.get(KUEUE_QUEUE_LABEL) or policy.get("queue") or "")


def pod_events(conn: kc.Conn, handle: Handle, pod: str) -> list[dict[str, Any]]:
    return _events(conn, handle, f"involvedObject.name={pod},involvedObject.kind=Pod")


def job_events(conn: kc.Conn, handle: Handle) -> list[dict[str, Any]]:
    name = handle["name"]
    return _events(conn, handle, f"involvedObject.name={name},involvedObject.kind={kc.KIND}")


def _events(conn: kc.Conn, handle: Handle, selector: str) -> list[dict[str, Any]]:
    ns = handle["namespace"]
    api = conn.core().list_namespaced_event
    found = kc.call(conn, "list", "events", ns, handle["name"], api, ns, field_selector=selector)
    return list(found.get("items") or [])


# --- logs ---------------------------------------------------------------------------------


def read_logs(conn: kc.Conn, handle: Handle, nodes: list[int]) -> Iterator[str]:
    """The logs of ``nodes`` as they are now, one replica after the other."""
    by_key = {pod_key(p): p for p in kc.list_pods(conn, handle)}
    for node in nodes:
        replica, index = node_label(node)
        pod = by_key.get((replica, index))
        if pod is None:
            continue
        prefix = prefixer(replica, index, handle.get("nproc_per_node"))
        name = pod["metadata"]["name"]
        if restarts(pod):
            count = restarts(pod)
            yield prefix(f"--- previous container (the pod restarted {count} time(s)) ---")
            with contextlib.suppress(Exception):  # the kubelet keeps only the last one
                for line in kc.read_log(conn, handle, name, previous=True):
                    if shown(line):
                        yield prefix(line)
            yield prefix("--- current container ---")
        if kc.started(pod):  # streamed, never read whole: memory stays bounded
            for line in kc.follow_log(conn, handle, name, follow=False):
                if shown(line):
                    yield prefix(line)


def follow_logs(
    conn: kc.Conn,
    handle: Handle,
    nodes: list[int],
    status: Callable[[], tuple[JobState, str]],
    poll: float,
) -> Iterator[str]:
    """Every line of ``nodes`` as it is written, until the job ends and the streams are read.

    ``status`` gives the job's (state, reason); a replica that never starts is
    reported in one line when the job ends.
    """
    lines: queue.Queue[str] = queue.Queue(maxsize=_QUEUE_SIZE)
    stop = threading.Event()
    followed: dict[tuple[str, int], tuple[str, int]] = {}  # replica -> (pod uid, restarts)
    streams: dict[tuple[str, int], threading.Thread] = {}
    ended: tuple[float, JobState, str] | None = None  # when the job was seen ending, how, why
    try:
        while True:
            # After the job ended, one more pass starts streams for pods that ran in between.
            pods = {pod_key(p): p for p in kc.list_pods(conn, handle)}
            for node in nodes:
                key = node_label(node)
                pod = pods.get(key)
                if pod is None or not kc.started(pod) or _alive(streams.get(key)):
                    continue
                container = (pod["metadata"].get("uid", pod["metadata"]["name"]), restarts(pod))
                if followed.get(key) == container:
                    continue  # this container's log was followed to its end
                followed[key] = container
                prefix = prefixer(*key, handle.get("nproc_per_node"))
                streams[key] = threading.Thread(
                    target=_stream,
                    args=(conn, handle, pod["metadata"]["name"], prefix, lines, stop),
                    daemon=True,  # a stream blocked on a silent pod never holds the process
                )
                streams[key].start()
            yield from _drain(lines, poll)
            running = any(_alive(t) for t in streams.values())
            if ended is not None and (not running or time.monotonic() - ended[0] > _END_GRACE):
                yield from _drain(lines, 0)
                missing = [f"{r}{i}" for r, i in map(node_label, nodes) if (r, i) not in followed]
                if missing:
                    _, state, reason = ended
                    note = f": {reason}" if reason else ""
                    yield (
                        f"[nemo-run-k8s] {', '.join(missing)} never started; "
                        f"job {state.value}{note}"
                    )
                return
            if ended is None:
                state, reason = status()
                if state.is_terminal:
                    ended = (time.monotonic(), state, reason)
    finally:
        stop.set()


def _alive(thread: threading.Thread | None) -> bool:
    return thread is not None and thread.is_alive()


def _drain(lines: queue.Queue[str], wait: float) -> Iterator[str]:
    """Lines as they arrive for ``wait`` seconds; then (or with 0 at once) what is left."""
    deadline = time.monotonic() + wait
    while True:
        remaining = deadline - time.monotonic()
        try:
            yield lines.get(timeout=remaining) if remaining > 0 else lines.get_nowait()
        except queue.Empty:
            return


def _stream(
    conn: kc.Conn,
    handle: Handle,
    pod: str,
    prefix: Callable[[str], str],
    lines: queue.Queue[str],
    stop: threading.Event,
) -> None:
    try:
        for line in kc.follow_log(conn, handle, pod):
            if not shown(line):
                continue
            while not stop.is_set():
                try:
                    lines.put(prefix(line), timeout=0.5)
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return
    except Exception as err:  # the reader is told, and the other streams go on
        with contextlib.suppress(queue.Full):
            lines.put_nowait(prefix(f"[nemo-run-k8s] log stream ended: {err}"))
