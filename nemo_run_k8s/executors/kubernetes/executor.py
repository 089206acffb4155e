"""KubernetesExecutor: jobs as Kubeflow PyTorchJobs, through the official client.

The manifest comes from the pure builder in :mod:`nemo_run_k8s.executors.kubernetes.manifest`;
this module does the talking: create, state (with pod-level reasons), logs,
outcome, cancel and list. The API plumbing (connections,
errors in words, pod reasons, log streams) lives in :mod:`nemo_run_k8s.executors.kubernetes.client`.

Every API call and the RBAC rule it needs (the Helm chart grants exactly these):
``create/get/list/delete pytorchjobs.kubeflow.org``, ``list pods``,
``get pods/log``, ``list events``.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from nemo_run_k8s import labels as k8s_labels
from nemo_run_k8s.errors import BackendError, InvalidOptionError
from nemo_run_k8s.executors.base import Executor, reject_unknown_options, select_nodes
from nemo_run_k8s.executors.kubernetes import client as kc
from nemo_run_k8s.executors.kubernetes import replicas
from nemo_run_k8s.executors.kubernetes.manifest import (
    GROUP,
    PLURAL,
    VERSION,
    build_pytorchjob,
    check_pytorchjob,
    entrypoint_command,
    job_name,
)
from nemo_run_k8s.executors.kubernetes.options import KubernetesOptions
from nemo_run_k8s.runtime.contract import decode_outcome_line
from nemo_run_k8s.spec import Handle, JobDescription, JobIdentity, JobState, Plan

if TYPE_CHECKING:
    from nemo_run_k8s.bundle.files import Bundle


_PUSHED: dict[tuple[str, str], str] = {}  # (local image, repo) -> pushed digest ref


@dataclasses.dataclass(frozen=True)
class JobStatus:
    """A job's state and, when something is wrong, why (pod-level reasons)."""

    state: JobState
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class ListedJob:
    """One PyTorchJob found by label: its handle (to reattach) and state."""

    handle: Handle
    state: JobState
    created: str


# --- the executor -------------------------------------------------------------------------


@reject_unknown_options
@dataclasses.dataclass(kw_only=True)
class KubernetesExecutor(KubernetesOptions, Executor):
    """Runs a job as a Kubeflow PyTorchJob: ``num_nodes`` pods of ``nproc_per_node`` processes.

    Options are described on :class:`~nemo_run_k8s.executors.kubernetes.options.KubernetesOptions`.
    """

    kind: ClassVar[str] = "k8s"
    poll_interval: ClassVar[float] = 1.0  # seconds between polls while waiting
    cancel_timeout: ClassVar[float] = 300.0  # seconds cancel() waits for pods to go

    def placeholder_image(self, bundle: Bundle) -> str:
        """The tag shown by a dry run; launch replaces it with the pushed digest."""
        return f"{self.image_repo}:{bundle.sha256[:16]}"

    def plan(self, bundle: Bundle, job: JobIdentity) -> Plan:
        name = job_name(job.name, job.job_id)
        doc = build_pytorchjob(
            self,
            name=name,
            image=self.placeholder_image(bundle),
            command=entrypoint_command(bundle.sha256),
            labels=k8s_labels.job_labels(job.job_id, job.name, job.experiment),
        )
        check_pytorchjob(doc)
        details = {
            "pytorchjob": f"{self.namespace}/{name}",
            "image": f"{self.placeholder_image(bundle)} (UNRESOLVED placeholder: built, pushed "
            "and pinned by digest at launch)",
            "cluster": self.kube_context or "current kubeconfig context",
        }
        return self._plan(
            bundle,
            job,
            documents=[doc],
            details=details,
        )

    def _resolve_image(self, bundle: Bundle, prebuilt: str | None = None) -> str:
        """The job image in ``image_repo``, pinned by digest: ``repo@sha256:...``.

        Builds the image for ``bundle`` (or takes ``prebuilt``, an experiment's
        shared image) and pushes it; a push is done once per image and process.
        """
        if prebuilt and "@sha256:" in prebuilt:
            return prebuilt
        from nemo_run_k8s.image.builder import build_image
        from nemo_run_k8s.image.push import push_image

        local = prebuilt or build_image(bundle, self).ref
        key = (local, str(self.image_repo))
        if key not in _PUSHED:
            _PUSHED[key] = push_image(local, str(self.image_repo))
        return _PUSHED[key]

    def check_backend(self) -> None:
        """Checks that the cluster answers, the operator is installed, and we may list jobs."""
        if self.code_dir is not None and not os.path.isdir(self.code_dir):
            raise InvalidOptionError(
                f"KubernetesExecutor(code_dir=...): {self.code_dir} is not a directory"
            )
        conn = kc.connect(self.kubeconfig, self.kube_context)
        api = conn.custom().list_namespaced_custom_object
        ns = self.namespace
        kc.call(conn, "list", "pytorchjobs", ns, "", api, GROUP, VERSION, ns, PLURAL, limit=1)

    def launch(self, plan: Plan, bundle: Bundle, job: JobIdentity) -> Handle:
        doc = copy.deepcopy(plan.documents[0])
        image = self._resolve_image(bundle, job.image)
        for replica in doc["spec"]["pytorchReplicaSpecs"].values():
            for container in replica["template"]["spec"]["containers"]:
                container["image"] = image
        check_pytorchjob(doc, require_digest=True)
        kubeconfig = self.kubeconfig or kc.default_kubeconfig()
        conn = kc.connect(kubeconfig, self.kube_context)
        name, ns = doc["metadata"]["name"], self.namespace
        api = conn.custom().create_namespaced_custom_object
        kc.call(conn, "create", "pytorchjobs", ns, name, api, GROUP, VERSION, ns, PLURAL, doc)
        return {
            "executor": self.kind,
            "name": name,
            "namespace": ns,
            "job_id": job.job_id,
            # The context it went to, not the current one: a later switch must not move it.
            "kube_context": conn.context,
            "kubeconfig": kubeconfig,
            "num_nodes": self.num_nodes,
            "nproc_per_node": self.resources().nproc_per_node,
            "image": image,
            "unschedulable_timeout": self.unschedulable_timeout,
        }

    # --- operations by handle ---

    @classmethod
    def _get_job(cls, conn: kc.Conn, handle: Handle) -> dict[str, Any] | None:
        ns, name = handle["namespace"], handle["name"]
        api = conn.custom().get_namespaced_custom_object
        return kc.call(
            conn, "get", "pytorchjobs", ns, name, api, GROUP, VERSION, ns, PLURAL, name,
            missing_ok=True,
        )  # fmt: skip

    @classmethod
    def status(cls, handle: Handle) -> JobStatus:
        """State from the PyTorchJob's conditions, with pod-level reasons when stuck or failed.

        A pod stuck in ImagePullBackOff (or a missing Secret), or Unschedulable for
        longer than ``unschedulable_timeout``, makes the job FAILED with the reason,
        although the PyTorchJob stays on the cluster until cancelled.
        """
        return cls._observe(handle)[0]

    @classmethod
    def _observe(cls, handle: Handle) -> tuple[JobStatus, dict[str, Any] | None, list[Any] | None]:
        """(status, the PyTorchJob, its pods): pods are listed only when the job is not fine."""
        conn = kc.handle_conn(handle)
        job = cls._get_job(conn, handle)
        if job is None:
            gone = "the PyTorchJob no longer exists (cancelled or expired)"
            return JobStatus(JobState.CANCELLED, gone), None, None
        state, message = kc.condition_state(job)
        if state in (JobState.RUNNING, JobState.SUCCEEDED):
            return JobStatus(state, ""), job, None
        pods = kc.list_pods(conn, handle)
        fatal, reasons = False, [message] if message else []
        for pod in pods:
            pod_fatal, pod_reasons = kc.pod_reasons(pod, handle.get("unschedulable_timeout"))
            fatal, reasons = fatal or pod_fatal, reasons + pod_reasons
        if not pods and state in (JobState.PENDING, JobState.FAILED):
            # No pod to ask: not created yet, or deleted by the operator once the job passed its
            # backoffLimit. The operator's events on the job still say why (OOMKilled, exit code,
            # the container's termination message).
            reasons += kc.warning_events(conn, handle)
        if fatal and state == JobState.PENDING:
            state = JobState.FAILED
        return JobStatus(state, "\n".join(reasons)), job, pods

    @classmethod
    def state(cls, handle: Handle) -> JobState:
        return cls.status(handle).state

    @classmethod
    def reason(cls, handle: Handle) -> str:
        """Why the job is stuck or failed ('' when nothing is wrong)."""
        return cls.status(handle).reason

    @classmethod
    def describe(cls, handle: Handle) -> JobDescription:
        """The state, and each replica's pod phase with why, and the latest warning events."""
        status, job, pods = cls._observe(handle)
        conn = kc.handle_conn(handle)
        if pods is None and job is not None:
            pods = kc.list_pods(conn, handle)
        return replicas.describe(conn, handle, status.state, status.reason, job, pods or [])

    @classmethod
    def _replica_pod(cls, conn: kc.Conn, handle: Handle, replica: str, index: int) -> Any | None:
        selector = f"{kc.REPLICA_TYPE_SELECTOR}={replica},{kc.REPLICA_INDEX_SELECTOR}={index}"
        pods = kc.list_pods(conn, handle, selector)
        return pods[0] if pods else None

    @classmethod
    def logs(
        cls,
        handle: Handle,
        follow: bool = False,
        *,
        replica: str | None = None,
        index: int | None = None,
    ) -> Iterator[str]:
        """The ``pytorch`` container log of every replica (or those picked), merged and prefixed.

        With ``follow``, lines come as they are written, from pods as they start,
        until the job ends; a replica that never starts (ImagePullBackOff, say)
        is reported in one line instead of waited for. See
        :mod:`~nemo_run_k8s.executors.kubernetes.replicas`.
        """
        nodes = select_nodes(int(handle.get("num_nodes", 1)), replica, index)
        conn = kc.handle_conn(handle)
        if not follow:
            return replicas.read_logs(conn, handle, nodes)

        def status() -> tuple[JobState, str]:
            found = cls.status(handle)
            return found.state, found.reason

        return replicas.follow_logs(conn, handle, nodes, status, cls.poll_interval)

    @classmethod
    def outcome(cls, handle: Handle) -> tuple[str, Any] | None:
        """Rank 0's outcome, read from the last outcome line of the master log.

        With several processes per pod torchrun prefixes the line with ``[rank0]``.
        """
        conn = kc.handle_conn(handle)
        pod = cls._replica_pod(conn, handle, "master", 0)
        if pod is None or not kc.started(pod):
            return None
        for line in reversed(kc.read_log(conn, handle, pod["metadata"]["name"], tail_lines=20)):
            outcome = decode_outcome_line(replicas.strip_rank(line))
            if outcome is not None:
                return outcome
        return None

    @classmethod
    def missing_outcome(cls, handle: Handle) -> str:
        return (
            f"no outcome line in the log of the master pod of PyTorchJob "
            f"{handle['namespace']}/{handle['name']} (the pod was deleted, or its log rotated)"
        )

    @classmethod
    def cancel(cls, handle: Handle) -> None:
        """Deletes the PyTorchJob and waits (up to ``cancel_timeout``) for its pods to go."""
        conn = kc.handle_conn(handle)
        ns, name = handle["namespace"], handle["name"]
        api = conn.custom().delete_namespaced_custom_object
        kc.call(
            conn, "delete", "pytorchjobs", ns, name, api, GROUP, VERSION, ns, PLURAL, name,
            propagation_policy="Background", missing_ok=True,
        )  # fmt: skip
        deadline = time.monotonic() + cls.cancel_timeout
        while pods := kc.list_pods(conn, handle):
            if time.monotonic() > deadline:
                left = ", ".join(p["metadata"]["name"] for p in pods)
                raise BackendError(
                    f"PyTorchJob {ns}/{name} was deleted but pods remain after "
                    f"{cls.cancel_timeout:.0f}s: {left}; check them with kubectl get pods -n {ns}"
                )
            time.sleep(cls.poll_interval)

    @classmethod
    def list_jobs(
        cls,
        namespace: str = "default",
        *,
        experiment: str | None = None,
        kube_context: str | None = None,
        kubeconfig: str | None = None,
    ) -> list[ListedJob]:
        """PyTorchJobs this tool created in ``namespace`` (optionally one experiment's)."""
        selector = f"{k8s_labels.MANAGED_BY_LABEL}={k8s_labels.MANAGED_BY_VALUE}"
        if experiment:
            selector += f",{k8s_labels.EXPERIMENT_LABEL}={k8s_labels.label_value(experiment)}"
        kubeconfig = kubeconfig or kc.default_kubeconfig()
        conn = kc.connect(kubeconfig, kube_context)
        api = conn.custom().list_namespaced_custom_object
        found = kc.call(
            conn, "list", "pytorchjobs", namespace, "", api, GROUP, VERSION, namespace, PLURAL,
            label_selector=selector,
        )  # fmt: skip
        jobs = []
        for item in found.get("items", []):
            meta, specs = item["metadata"], item["spec"]["pytorchReplicaSpecs"]
            handle = {
                "executor": cls.kind,
                "name": meta["name"],
                "namespace": namespace,
                "job_id": meta.get("labels", {}).get(k8s_labels.JOB_ID_LABEL, ""),
                "kube_context": conn.context,
                "kubeconfig": kubeconfig,
                "num_nodes": sum(int(r.get("replicas", 1)) for r in specs.values()),
                "nproc_per_node": _int_or_none(item["spec"].get("nprocPerNode")),
                "image": specs["Master"]["template"]["spec"]["containers"][0].get("image"),
                "unschedulable_timeout": KubernetesOptions.unschedulable_timeout,
            }
            state, _ = kc.condition_state(item)
            jobs.append(ListedJob(handle, state, meta.get("creationTimestamp", "")))
        return sorted(jobs, key=lambda j: j.created)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
