"""The simulated cluster behind the fake API server: how a PyTorchJob and its pods evolve.

A :class:`JobProgram` is a timeline measured from the job's creation; a
:class:`SimJob` turns it, at any moment, into the job's conditions, its pods
(as the training operator and kubelet would show them) and their log lines.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import time
from typing import Any


@dataclasses.dataclass
class JobProgram:
    """How a created PyTorchJob evolves; all times in seconds after its creation.

    ``problem``: None, ``"ImagePullBackOff"``, ``"Unschedulable"`` (pods pending
    since ``unschedulable_for`` seconds before creation), ``"OOMKilled"`` or
    ``"Error"`` (the master fails at ``finish_after`` with ``termination_message``).
    ``past_backoff_limit``: the failure crosses ``runPolicy.backoffLimit``, and the real operator
    (v1.9) then deletes every pod of the job, whatever ``cleanPodPolicy`` says.
    """

    pods_after: float = 0.0
    running_after: float = 0.2
    finish_after: float | None = 0.6
    problem: str | None = None
    log_lines: list[str] = dataclasses.field(default_factory=lambda: ["step 1", "step 2"])
    outcome_line: str | None = None
    termination_message: str = ""
    unschedulable_for: float = 0.0
    pod_linger: float = 0.2  # pods stay (terminating) this long after the job is deleted
    warning_events: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    past_backoff_limit: bool = False
    # Per pod, by replica label ("worker1"): seconds it starts after the others.
    late: dict[str, float] = dataclasses.field(default_factory=dict)
    # Per pod: the log lines of the container that ran before a restart (restartCount 1).
    restarted: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    # Events of every pod while it is pending: (type, reason, message).
    pod_events: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)


# What the scheduler (1.34) says for a GPU request no node can meet (3 nodes here).
UNSCHEDULABLE_MESSAGE = (
    "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. no new claims to deallocate, "
    "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
)


def pull_backoff_message(image: str) -> str:
    """What kubelet 1.34 with containerd says for a digest the registry does not have."""
    return (
        f'Back-off pulling image "{image}": ErrImagePull: rpc error: code = NotFound '
        f'desc = failed to pull and unpack image "{image}": failed to resolve reference '
        f'"{image}": {image}: not found'
    )


def now_iso(at: float | None = None) -> str:
    moment = datetime.datetime.fromtimestamp(
        time.time() if at is None else at, datetime.timezone.utc
    )
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details or {},
        "code": code,
    }


def not_found_type() -> tuple[int, dict]:
    """What the API server answers for a resource type it does not serve."""
    return 404, status_body(404, "NotFound", "the server could not find the requested resource")


@dataclasses.dataclass
class SimJob:
    obj: dict[str, Any]
    program: JobProgram
    created: float  # time.time()
    deleted: float | None = None

    def elapsed(self) -> float:
        return time.time() - self.created

    def pods_exist(self) -> bool:
        if self.elapsed() < self.program.pods_after:
            return False
        if self.program.past_backoff_limit and self.phase() == "Failed":
            return False
        return self.deleted is None or time.time() < self.deleted + self.program.pod_linger

    def phase(self) -> str:
        """Pending, Running, Succeeded or Failed, from the program and the clock."""
        p, t = self.program, self.elapsed()
        if p.problem in ("ImagePullBackOff", "Unschedulable") or t < p.running_after:
            return "Pending"
        if p.finish_after is None or t < p.finish_after:
            return "Running"
        return "Failed" if p.problem in ("OOMKilled", "Error") else "Succeeded"

    def late(self, replica: str, index: int) -> float:
        return self.program.late.get(f"{replica}{index}", 0.0)

    def pod_exists(self, replica: str, index: int) -> bool:
        return self.pods_exist() and self.elapsed() >= self.program.pods_after + self.late(
            replica, index
        )

    def pod_phase(self, replica: str, index: int) -> str:
        """The job's phase, except that a late pod is Pending until its own start."""
        phase = self.phase()
        if phase == "Running" and self.elapsed() < self.program.running_after + self.late(
            replica, index
        ):
            return "Pending"
        return phase

    def visible_lines(self, replica: str, index: int) -> list[str]:
        """Log lines written so far by one replica's container."""
        p, t = self.program, self.elapsed() - self.late(replica, index)
        lines = (
            p.log_lines if replica == "master" else [f"worker {index}: {x}" for x in p.log_lines]
        )
        if self.pod_phase(replica, index) == "Pending":
            return []
        end = p.finish_after if p.finish_after is not None else p.running_after + 1.0
        span = max(end - p.running_after, 1e-6)
        shown = [x for i, x in enumerate(lines) if t >= p.running_after + span * i / len(lines)]
        if self.phase() in ("Succeeded", "Failed"):
            shown = list(lines)
        if self.phase() in ("Succeeded", "Failed") and replica == "master" and p.outcome_line:
            shown.append(p.outcome_line)
        return shown

    def conditions(self) -> list[dict[str, Any]]:
        name, phase = self.obj["metadata"]["name"], self.phase()
        created = now_iso(self.created)

        def cond(ctype: str, status: str, reason: str, message: str) -> dict[str, Any]:
            return {
                "type": ctype,
                "status": status,
                "reason": reason,
                "message": message,
                "lastUpdateTime": created,
                "lastTransitionTime": created,
            }

        out = [cond("Created", "True", "PyTorchJobCreated", f"PyTorchJob {name} is created.")]
        if phase == "Pending":
            return out
        running = "True" if phase == "Running" else "False"
        out.append(cond("Running", running, "PyTorchJobRunning", f"PyTorchJob {name} is running."))
        if phase == "Succeeded":
            msg = f"PyTorchJob {name} is successfully completed."  # the operator v1.9's words
            out.append(cond("Succeeded", "True", "PyTorchJobSucceeded", msg))
        elif phase == "Failed":
            msg = f"PyTorchJob {name} is failed because 1 Master replica(s) failed."
            if self.program.past_backoff_limit:
                msg = f"Job {name} has failed because it has reached the specified backoff limit"
            out.append(cond("Failed", "True", "PyTorchJobFailed", msg))
        return out

    def replicas(self) -> list[tuple[str, int]]:
        specs = self.obj["spec"]["pytorchReplicaSpecs"]
        return [
            (rtype.lower(), i) for rtype in specs for i in range(specs[rtype].get("replicas", 1))
        ]

    def pod(self, replica: str, index: int) -> dict[str, Any]:
        meta, p = self.obj["metadata"], self.program
        spec = self.obj["spec"]["pytorchReplicaSpecs"][replica.capitalize()]
        template = spec["template"]
        phase = self.pod_phase(replica, index)
        labels = {
            **template.get("metadata", {}).get("labels", {}),
            "training.kubeflow.org/job-name": meta["name"],
            "training.kubeflow.org/operator-name": "pytorchjob-controller",
            "training.kubeflow.org/replica-type": replica,
            "training.kubeflow.org/replica-index": str(index),
        }
        if replica == "master":
            labels["training.kubeflow.org/job-role"] = "master"
        image = template["spec"]["containers"][0]["image"]
        state: dict[str, Any]
        conditions: list[dict[str, Any]] = []
        if p.problem == "ImagePullBackOff":
            msg = pull_backoff_message(image)
            state = {"waiting": {"reason": "ImagePullBackOff", "message": msg}}
        elif p.problem == "Unschedulable":
            state = {}
            conditions.append(
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": UNSCHEDULABLE_MESSAGE,
                    "lastTransitionTime": now_iso(self.created - p.unschedulable_for),
                }
            )
        elif phase == "Pending":
            state = {"waiting": {"reason": "ContainerCreating"}}
        elif phase == "Running":
            state = {"running": {"startedAt": now_iso(self.created + p.running_after)}}
        else:
            failed = phase == "Failed" and replica == "master"
            reason = (p.problem if failed else None) or "Completed"
            code = {"OOMKilled": 137, "Error": 1}.get(reason, 0)
            terminated = {"exitCode": code, "reason": reason}
            if failed and p.termination_message:
                terminated["message"] = p.termination_message
            state = {"terminated": terminated}
        statuses = []
        restarted = f"{replica}{index}" in p.restarted
        if state:
            statuses.append(
                {
                    "name": "pytorch",
                    "image": image,
                    "imageID": "",
                    "ready": "running" in state,
                    "restartCount": 1 if restarted else 0,
                    "state": state,
                    "lastState": (
                        {"terminated": {"exitCode": 1, "reason": "Error"}} if restarted else {}
                    ),
                }
            )
        pod_meta: dict[str, Any] = {
            "name": f"{meta['name']}-{replica}-{index}",
            "uid": f"{meta['uid']}-{replica}-{index}",
            "namespace": meta["namespace"],
            "labels": labels,
            "creationTimestamp": now_iso(self.created),
        }
        if self.deleted is not None:
            pod_meta["deletionTimestamp"] = now_iso(self.deleted)
        pod_phase = phase if replica == "master" or phase != "Failed" else "Succeeded"
        spec = copy.deepcopy(template["spec"])
        status: dict[str, Any] = {
            "phase": pod_phase,
            "conditions": conditions,
            "containerStatuses": statuses,
        }
        if replica == "worker":
            # As the real operator does: workers first wait for the master's DNS name.
            master = f"{meta['name']}-master-0"
            spec["initContainers"] = [
                {"name": "init-pytorch", "image": "init:test", "command": ["wait", master, "100"]}
            ]
            if phase != "Pending":
                done = {"exitCode": 0, "reason": "Completed"}
                status["initContainerStatuses"] = [
                    {"name": "init-pytorch", "ready": True, "state": {"terminated": done}}
                ]
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": pod_meta,
            "spec": spec,
            "status": status,
        }
