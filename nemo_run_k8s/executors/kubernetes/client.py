"""The Kubernetes API side of the KubernetesExecutor: connections, errors in words, pods.

``kubernetes`` is imported only inside functions. One ``ApiClient`` per
cluster is created on first use and reused, so a sweep costs one request per
job. The cache is keyed on what was resolved, not on what was asked: the
kubeconfig file(s) that ``KUBECONFIG`` (or ``~/.kube/config``) names now, their
content hash, and the context; so a process that switches ``KUBECONFIG``, or
whose kubeconfig changes (``kubectl config use-context``), talks to the new
cluster at once. Calls time out after :data:`CONNECT_TIMEOUT` /
:data:`READ_TIMEOUT` seconds, without retrying a read; a cluster that did not
answer is not asked again for :data:`UNREACHABLE_PAUSE` seconds (each call
fails at once, saying so), so listing many jobs of a cluster that went away
costs one timeout, not one per job. Every failure becomes a
:class:`~nemo_run_k8s.errors.BackendError` that says what the API server
refused and what to do.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nemo_run_k8s.errors import BackendError, SubmissionError
from nemo_run_k8s.executors.base import LineBuffer
from nemo_run_k8s.executors.kubernetes.manifest import CONTAINER_NAME, GROUP, KIND, PLURAL
from nemo_run_k8s.exit_status import describe_exit
from nemo_run_k8s.spec import Handle, JobState

JOB_NAME_SELECTOR = "training.kubeflow.org/job-name"
REPLICA_TYPE_SELECTOR = "training.kubeflow.org/replica-type"
REPLICA_INDEX_SELECTOR = "training.kubeflow.org/replica-index"
OPERATOR_INSTALL = (
    "kubectl apply --server-side -k "
    "'github.com/kubeflow/training-operator.git/manifests/overlays/standalone?ref=v1.9.0'"
)
# Waiting reasons that do not heal by themselves: report them instead of waiting.
FATAL_WAITING = {
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
}
#: Seconds to open a connection to the API server, and to wait for an answer.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 20.0
#: Seconds a cluster that did not answer is not asked again.
UNREACHABLE_PAUSE = 15.0
_MAX_CONNS = 16
_RESOURCE_NAMES = {"pytorchjobs": f"{PLURAL}.{GROUP}", "pods": "pods", "log": "pods/log"}

# --- connection ---------------------------------------------------------------------------


@dataclasses.dataclass
class Conn:
    api: Any  # kubernetes.client.ApiClient
    server: str
    where: str  # "context 'x' of kubeconfig /path" for messages
    context: str | None = None  # the context it resolved to (None: in-cluster)
    down_until: float = 0.0  # monotonic time before which the server is not asked again
    down_reason: str = ""

    def custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.api)

    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api)


_CONNS: dict[tuple[Any, ...], Conn] = {}
_CONNS_LOCK = threading.Lock()


def default_kubeconfig() -> str | None:
    path = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    first = path.split(os.pathsep)[0]
    return path if first and Path(first).exists() else None


def _fingerprint(path: str) -> tuple[tuple[str, str], ...]:
    """Each file of a kubeconfig path list, resolved, with a hash of what it holds now."""
    files = []
    for part in filter(None, path.split(os.pathsep)):
        real = os.path.realpath(os.path.expanduser(part))
        try:
            with open(real, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
        except OSError:
            digest = "missing"
        files.append((real, digest))
    return tuple(files)


def connect(kubeconfig: str | None, context: str | None) -> Conn:
    """The shared client for the cluster that (kubeconfig, context) names now.

    ``kubeconfig`` None means ``$KUBECONFIG`` or ``~/.kube/config`` as they are
    at this call (or the in-cluster service account); ``context`` None means
    the kubeconfig's current context as the file says now.
    """
    path = kubeconfig or default_kubeconfig()
    if path is None:
        key: tuple[Any, ...] = (
            "in-cluster",
            os.environ.get("KUBERNETES_SERVICE_HOST"),
            os.environ.get("KUBERNETES_SERVICE_PORT"),
            context,
        )
    else:
        key = ("kubeconfig", _fingerprint(path), context)
    with _CONNS_LOCK:
        if key not in _CONNS:
            while len(_CONNS) >= _MAX_CONNS:  # the oldest goes first
                del _CONNS[next(iter(_CONNS))]
            _CONNS[key] = _new_conn(path, context)
        return _CONNS[key]


def _new_conn(path: str | None, context: str | None) -> Conn:
    import urllib3
    from kubernetes import client, config

    cfg = client.Configuration()
    try:
        if path is None and os.environ.get("KUBERNETES_SERVICE_HOST") and not context:
            config.load_incluster_config(client_configuration=cfg)
            where = "the in-cluster service account"
        elif path is None:
            raise BackendError(
                "no kubeconfig found (KUBECONFIG unset, ~/.kube/config missing, not in a pod): "
                "point KUBECONFIG at your cluster's kubeconfig or pass kubeconfig=..."
            )
        else:
            config.load_kube_config(
                config_file=path, context=context, client_configuration=cfg, persist_config=False
            )
            if context is None:
                _, active = config.list_kube_config_contexts(config_file=path)
                context = (active or {}).get("name")
            where = f"context {context!r} of kubeconfig {path}"
    except config.ConfigException as err:
        raise BackendError(
            f"cannot use kubeconfig {path} (context {context!r}): {err}; check the file and "
            "kube_context (kubectl config get-contexts lists them)"
        ) from err
    # One more try to connect (cheap when refused), none after a read timed out.
    cfg.retries = urllib3.util.Retry(total=1, read=0, redirect=0, status=0)
    return Conn(api=client.ApiClient(cfg), server=cfg.host, where=where, context=context)


def _status_body(err: Any) -> dict[str, Any]:
    try:
        body = json.loads(err.body or "{}")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def _object_missing(err: Any) -> bool:
    """A 404 for one named object (as opposed to the whole resource type)."""
    return err.status == 404 and bool(_status_body(err).get("details", {}).get("name"))


def _translate(err: Any, conn: Conn, verb: str, resource: str, ns: str, name: str) -> Exception:
    """An error that says what the API server refused, and what to do.

    A refused ``create`` is a :class:`SubmissionError`; anything else a :class:`BackendError`.
    """
    error = SubmissionError if verb == "create" else BackendError
    body = _status_body(err)
    message = body.get("message") or str(err.reason or "")
    what = _RESOURCE_NAMES.get(resource, resource)
    if err.status == 401:
        return error(
            f"the API server {conn.server} rejected the credentials of {conn.where} "
            f"(401 Unauthorized): refresh them (e.g. re-run your cloud's get-credentials)"
        )
    if err.status == 403:
        return error(
            f"permission denied: cannot {verb!r} {what} in namespace {ns!r} ({message}). "
            f"The Helm chart helm/nemo-run-k8s grants this in its Role: "
            f"`helm install nemo-run-k8s helm/nemo-run-k8s -n {ns}`, then submit with its "
            f"ServiceAccount or bind the Role to your user."
        )
    if err.status == 404 and resource == "pytorchjobs" and not _object_missing(err):
        return error(
            f"the cluster at {conn.server} has no {what} API (404 for the resource type): "
            f"the Kubeflow training operator is not installed. Install it with: {OPERATOR_INSTALL}"
        )
    if err.status == 409:
        return error(
            f"name clash: a PyTorchJob named {name!r} already exists in namespace {ns!r}; "
            f"delete it (kubectl delete pytorchjob {name} -n {ns}) or submit with another name"
        )
    if err.status == 422:
        causes = body.get("details", {}).get("causes") or []
        fields = [f"{c.get('field', '?')}: {c.get('message', '')}" for c in causes] or [message]
        return error(
            f"the API server rejected {KIND} {name!r} as invalid:\n  " + "\n  ".join(fields)
        )
    return error(
        f"{verb} {what} {name!r} in namespace {ns!r} failed: HTTP {err.status} "
        f"{err.reason}: {message}"
    )


def call(
    conn: Conn,
    verb: str,
    resource: str,
    ns: str,
    name: str,
    fn: Callable[..., Any],
    *args: Any,
    missing_ok: bool = False,
    raw: bool = False,
    **kwargs: Any,
) -> Any:
    """Calls ``fn``; returns the JSON body as a dict (with ``raw``, the HTTP response).

    Every failure becomes a :class:`BackendError` that says what to do. With
    ``missing_ok``, a 404 for the named object returns None.
    """
    import urllib3
    from kubernetes.client.exceptions import ApiException

    error = SubmissionError if verb == "create" else BackendError
    if time.monotonic() < conn.down_until:
        raise error(conn.down_reason + f" (not asked again for {UNREACHABLE_PAUSE:.0f} s)")
    kwargs.setdefault("_request_timeout", (CONNECT_TIMEOUT, READ_TIMEOUT))
    kwargs["_preload_content"] = False
    try:
        resp = fn(*args, **kwargs)
        return resp if raw else _json(resp)
    except ApiException as err:
        if missing_ok and _object_missing(err):
            return None
        raise _translate(err, conn, verb, resource, ns, name) from err
    except urllib3.exceptions.HTTPError as err:
        cause = getattr(err, "reason", None) or err
        # (urllib3 counts a refused connection, NewConnectionError, as a time-out too.)
        timed_out = isinstance(cause, urllib3.exceptions.TimeoutError) and not isinstance(
            cause, urllib3.exceptions.NewConnectionError
        )
        if timed_out:
            what = (
                f"the Kubernetes API server {conn.server} ({conn.where}) did not answer "
                f"(time-outs: {CONNECT_TIMEOUT:.0f} s to connect, {READ_TIMEOUT:.0f} s to answer)"
            )
        else:
            what = (
                f"cannot reach the Kubernetes API server {conn.server} ({conn.where}): "
                f"{type(err).__name__}"
            )
        conn.down_reason = (
            f"{what}. Check that the cluster is up and that KUBECONFIG / kube_context point "
            "at it (kubectl cluster-info)."
        )
        conn.down_until = time.monotonic() + UNREACHABLE_PAUSE
        raise error(conn.down_reason) from err


# --- pods and reasons -------------------------------------------------------------------


def _json(resp: Any) -> dict[str, Any]:
    """The body of a ``_preload_content=False`` response, as plain JSON.

    Plain dicts rather than the client's models: the same code works across client
    versions, and nothing rejects a field a newer server adds.
    """
    data = json.loads(resp.data or b"{}")
    return data if isinstance(data, dict) else {}


def _age_seconds(timestamp: Any) -> float:
    if not timestamp:
        return 0.0
    if isinstance(timestamp, str):
        timestamp = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return (datetime.datetime.now(datetime.timezone.utc) - timestamp).total_seconds()


def pod_reasons(pod: dict[str, Any], unschedulable_timeout: float | None) -> tuple[bool, list[str]]:
    """(fatal?, reasons) for one pod: stuck waits, unschedulable, failed containers."""
    fatal, reasons = False, []
    name = pod["metadata"]["name"]
    status = pod.get("status") or {}
    for cond in status.get("conditions") or ():
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "Unschedulable":
            age = _age_seconds(cond.get("lastTransitionTime"))
            reasons.append(f"pod {name}: Unschedulable for {age:.0f}s: {cond.get('message', '')}")
            fatal = fatal or (unschedulable_timeout is not None and age >= unschedulable_timeout)
    for cs in status.get("containerStatuses") or ():
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in FATAL_WAITING:
            fatal = True
            message = waiting.get("message", "")
            reasons.append(f"pod {name}: {waiting['reason']}" + (f": {message}" if message else ""))
        for state in (cs.get("state"), cs.get("lastState")):
            term = (state or {}).get("terminated") or {}
            code = term.get("exitCode", 0)
            if code or term.get("reason") == "OOMKilled":
                detail = f" ({term['message'].strip()})" if term.get("message") else ""
                signal = term.get("signal") or (code - 128 if code > 128 else 0)
                how = describe_exit(-signal, "killed").split(" by ")[-1] if signal else ""
                killed = f", killed by {how}" if how else ""  # e.g. SIGKILL: the OOM killer
                reasons.append(
                    f"pod {name}: {term.get('reason')} with exit code {code}{killed}{detail}"
                )
                break
    return fatal, reasons


def condition_state(job: dict[str, Any]) -> tuple[JobState, str]:
    conditions = {
        c.get("type"): c
        for c in job.get("status", {}).get("conditions") or []
        if c.get("status") == "True"
    }
    for ctype, state in (
        ("Succeeded", JobState.SUCCEEDED),
        ("Failed", JobState.FAILED),
        ("Running", JobState.RUNNING),
        ("Restarting", JobState.RUNNING),
        ("Suspended", JobState.PENDING),
    ):
        if ctype in conditions:
            return state, conditions[ctype].get("message", "")
    return JobState.PENDING, ""


def handle_conn(handle: Handle) -> Conn:
    return connect(handle.get("kubeconfig"), handle.get("kube_context"))


def list_pods(conn: Conn, handle: Handle, extra: str = "") -> list[Any]:
    ns, name = handle["namespace"], handle["name"]
    selector = f"{JOB_NAME_SELECTOR}={name}" + (f",{extra}" if extra else "")
    api = conn.core().list_namespaced_pod
    pods = call(conn, "list", "pods", ns, name, api, ns, label_selector=selector)
    return sorted(pods.get("items") or [], key=lambda p: p["metadata"]["name"])


def warning_events(conn: Conn, handle: Handle) -> list[str]:
    ns, name = handle["namespace"], handle["name"]
    events = call(
        conn,
        "list",
        "events",
        ns,
        name,
        conn.core().list_namespaced_event,
        ns,
        field_selector=f"involvedObject.name={name},involvedObject.kind={KIND}",
    )
    items = [e for e in events.get("items") or [] if e.get("type") == "Warning"]
    return [f"event {e.get('reason')}: {e.get('message', '')}" for e in items][-3:]


def read_log(
    conn: Conn, handle: Handle, pod: str, tail_lines: int | None = None, previous: bool = False
) -> list[str]:
    """A pod's ``pytorch`` log so far (``previous``: of the container before its restart)."""
    ns = handle["namespace"]
    kwargs: dict[str, Any] = {"container": CONTAINER_NAME, "raw": True}
    if previous:
        kwargs["previous"] = True
    if tail_lines is not None:
        kwargs["tail_lines"] = tail_lines
    resp = call(conn, "get", "log", ns, pod, conn.core().read_namespaced_pod_log, pod, ns, **kwargs)
    return resp.data.decode("utf-8", errors="replace").splitlines()


def follow_log(conn: Conn, handle: Handle, pod: str, follow: bool = True) -> Iterator[str]:
    """The pod's log lines as they arrive (with ``follow``, until the container exits).

    Streamed in chunks, never read whole: memory stays bounded by the longest
    line (see :class:`~nemo_run_k8s.executors.base.LineBuffer`).
    """
    ns = handle["namespace"]
    resp = call(
        conn,
        "get",
        "log",
        ns,
        pod,
        conn.core().read_namespaced_pod_log,
        pod,
        ns,
        container=CONTAINER_NAME,
        follow=follow,
        raw=True,
        _request_timeout=(CONNECT_TIMEOUT, 30 * 86400.0),  # quiet jobs may log rarely
    )
    buffer = LineBuffer()
    try:
        for chunk in resp.stream(65536, decode_content=True):
            for line in buffer.feed(chunk):
                yield line.decode("utf-8", errors="replace")
        if pending := buffer.rest():
            yield pending.decode("utf-8", errors="replace")
    finally:
        resp.release_conn()


def started(pod: dict[str, Any]) -> bool:
    """Whether the pod's ``pytorch`` container has run (so it has logs)."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or ():
        state = cs.get("state") or {}
        if cs.get("name") == CONTAINER_NAME and (state.get("running") or state.get("terminated")):
            return True
    return False
