"""The Kubernetes API side of the KubernetesExecutor: connections, errors in words, pods.

``kubernetes`` is imported only inside functions. One ``ApiClient`` per
(kubeconfig, context) is created on first use and reused, so a sweep costs one
request per job. Every failure becomes a :class:`~nemo_run_k8s.errors.BackendError`
that says what the API server refused and what to do.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nemo_run_k8s.errors import BackendError, SubmissionError
from nemo_run_k8s.executors.kubernetes.manifest import CONTAINER_NAME, GROUP, KIND, PLURAL
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
_TIMEOUT = (10.0, 60.0)  # (connect, read) seconds for ordinary calls
_RESOURCE_NAMES = {"pytorchjobs": f"{PLURAL}.{GROUP}", "pods": "pods", "log": "pods/log"}

# --- connection ---------------------------------------------------------------------------


@dataclasses.dataclass
class Conn:
    api: Any  # kubernetes.client.ApiClient
    server: str
    where: str  # "context 'x' of kubeconfig /path" for messages

    def custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.api)

    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api)


_CONNS: dict[tuple[str | None, str | None], Conn] = {}
_CONNS_LOCK = threading.Lock()


def default_kubeconfig() -> str | None:
    path = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    first = path.split(os.pathsep)[0]
    return path if first and Path(first).exists() else None


def connect(kubeconfig: str | None, context: str | None) -> Conn:
    """The shared client for (kubeconfig, context), created on first use."""
    key = (kubeconfig, context)
    with _CONNS_LOCK:
        if key not in _CONNS:
            _CONNS[key] = _new_conn(kubeconfig, context)
        return _CONNS[key]


def _new_conn(kubeconfig: str | None, context: str | None) -> Conn:
    from kubernetes import client, config

    cfg = client.Configuration()
    path = kubeconfig or default_kubeconfig()
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
    cfg.retries = 1  # fail fast when the server is unreachable
    return Conn(api=client.ApiClient(cfg), server=cfg.host, where=where)


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

    kwargs.setdefault("_request_timeout", _TIMEOUT)
    kwargs["_preload_content"] = False
    try:
        resp = fn(*args, **kwargs)
        return resp if raw else _json(resp)
    except ApiException as err:
        if missing_ok and _object_missing(err):
            return None
        raise _translate(err, conn, verb, resource, ns, name) from err
    except urllib3.exceptions.HTTPError as err:
        raise (SubmissionError if verb == "create" else BackendError)(
            f"cannot reach the Kubernetes API server {conn.server} ({conn.where}): "
            f"{type(err).__name__}. Check that the cluster is up and that KUBECONFIG / "
            "kube_context point at it (kubectl cluster-info)."
        ) from err


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
                reasons.append(f"pod {name}: {term.get('reason')} with exit code {code}{detail}")
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


def read_log(conn: Conn, handle: Handle, pod: str, tail_lines: int | None = None) -> list[str]:
    ns = handle["namespace"]
    kwargs: dict[str, Any] = {"container": CONTAINER_NAME, "raw": True}
    if tail_lines is not None:
        kwargs["tail_lines"] = tail_lines
    resp = call(conn, "get", "log", ns, pod, conn.core().read_namespaced_pod_log, pod, ns, **kwargs)
    return resp.data.decode("utf-8", errors="replace").splitlines()


def follow_log(conn: Conn, handle: Handle, pod: str) -> Iterator[str]:
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
        follow=True,
        raw=True,
        _request_timeout=(_TIMEOUT[0], 30 * 86400.0),  # quiet jobs may log rarely
    )
    pending = b""
    try:
        for chunk in resp.stream(4096, decode_content=True):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.decode("utf-8", errors="replace")
        if pending:
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
