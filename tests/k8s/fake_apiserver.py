"""A local HTTP server speaking enough of the Kubernetes API for the executor's client.

It serves PyTorchJobs (``/apis/kubeflow.org/v1/namespaces/NS/pytorchjobs``), pods
(list by label selector, ``pods/log`` with ``follow`` streamed in chunks) and
events, the way the Kubeflow training operator and kubelet would make them
evolve: each job follows a :class:`JobProgram` (a timeline measured from its
creation), so conditions, pod states and logs change over time. Errors can be
injected per (verb, resource) with real ``Status`` bodies.

Every request is recorded in RBAC terms (verb, apiGroup, resource, subresource)
in :attr:`FakeApiServer.requests`, so a Role can be checked against what the
executor really does.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml

GROUP, VERSION, PLURAL = "kubeflow.org", "v1", "pytorchjobs"
_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"/namespaces/(?P<ns>[^/]+)/(?P<resource>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)


@dataclasses.dataclass(frozen=True)
class ApiRequest:
    """One request, in the terms a Kubernetes RBAC rule uses."""

    verb: str  # get, list, watch, create, update, patch, delete, deletecollection
    api_group: str  # "" for the core group
    resource: str
    subresource: str
    namespace: str
    name: str
    authorization: str

    @property
    def rule(self) -> tuple[str, str, str]:
        """(verb, apiGroup, resource) with the subresource joined as a Role writes it."""
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        return (self.verb, self.api_group, resource)


@dataclasses.dataclass
class JobProgram:
    """How a created PyTorchJob evolves; all times in seconds after its creation.

    ``problem``: None, ``"ImagePullBackOff"``, ``"Unschedulable"`` (pods pending
    since ``unschedulable_for`` seconds before creation), ``"OOMKilled"`` or
    ``"Error"`` (the master fails at ``finish_after`` with ``termination_message``).
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


def _now_iso(at: float | None = None) -> str:
    moment = datetime.datetime.fromtimestamp(
        time.time() if at is None else at, datetime.timezone.utc
    )
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict:
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
    return 404, _status(404, "NotFound", "the server could not find the requested resource")


@dataclasses.dataclass
class _Job:
    obj: dict[str, Any]
    program: JobProgram
    created: float  # time.time()
    deleted: float | None = None

    def elapsed(self) -> float:
        return time.time() - self.created

    def pods_exist(self) -> bool:
        if self.elapsed() < self.program.pods_after:
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

    def visible_lines(self, replica: str, index: int) -> list[str]:
        """Log lines written so far by one replica's container."""
        p, t = self.program, self.elapsed()
        lines = (
            p.log_lines if replica == "master" else [f"worker {index}: {x}" for x in p.log_lines]
        )
        if self.phase() == "Pending":
            return []
        end = p.finish_after if p.finish_after is not None else p.running_after + 1.0
        span = max(end - p.running_after, 1e-6)
        shown = [x for i, x in enumerate(lines) if t >= p.running_after + span * i / len(lines)]
        if self.phase() in ("Succeeded", "Failed") and replica == "master" and p.outcome_line:
            shown.append(p.outcome_line)
        return shown

    def conditions(self) -> list[dict[str, Any]]:
        name, ns, phase = (
            self.obj["metadata"]["name"],
            self.obj["metadata"]["namespace"],
            self.phase(),
        )
        created = _now_iso(self.created)

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
            msg = f"PyTorchJob {ns}/{name} successfully completed."
            out.append(cond("Succeeded", "True", "PyTorchJobSucceeded", msg))
        elif phase == "Failed":
            msg = f"PyTorchJob {ns}/{name} has failed because 1 Master replica(s) failed."
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
        phase = self.phase()
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
            msg = f'Back-off pulling image "{image}"'
            state = {"waiting": {"reason": "ImagePullBackOff", "message": msg}}
        elif p.problem == "Unschedulable":
            state = {}
            conditions.append(
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
                    "lastTransitionTime": _now_iso(self.created - p.unschedulable_for),
                }
            )
        elif phase == "Pending":
            state = {"waiting": {"reason": "ContainerCreating"}}
        elif phase == "Running":
            state = {"running": {"startedAt": _now_iso(self.created + p.running_after)}}
        else:
            failed = phase == "Failed" and replica == "master"
            reason = (p.problem if failed else None) or "Completed"
            code = {"OOMKilled": 137, "Error": 1}.get(reason, 0)
            terminated = {"exitCode": code, "reason": reason}
            if failed and p.termination_message:
                terminated["message"] = p.termination_message
            state = {"terminated": terminated}
        statuses = []
        if state:
            statuses.append(
                {
                    "name": "pytorch",
                    "image": image,
                    "imageID": "",
                    "ready": "running" in state,
                    "restartCount": 0,
                    "state": state,
                }
            )
        pod_meta: dict[str, Any] = {
            "name": f"{meta['name']}-{replica}-{index}",
            "namespace": meta["namespace"],
            "labels": labels,
            "creationTimestamp": _now_iso(self.created),
        }
        if self.deleted is not None:
            pod_meta["deletionTimestamp"] = _now_iso(self.deleted)
        pod_phase = phase if replica == "master" or phase != "Failed" else "Succeeded"
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": pod_meta,
            "spec": template["spec"],
            "status": {"phase": pod_phase, "conditions": conditions, "containerStatuses": statuses},
        }


def _selector_matches(selector: str, labels: dict[str, str]) -> bool:
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class FakeApiServer:
    """A threaded fake API server on 127.0.0.1; use as a context manager."""

    def __init__(self) -> None:
        self.requests: list[ApiRequest] = []
        self.program = JobProgram()  # given to each job created from now on
        self.crd_installed = True
        self.validator: Callable[[dict[str, Any]], list[dict[str, str]]] | None = None
        self.created_bodies: list[dict[str, Any]] = []
        self._jobs: dict[tuple[str, str], _Job] = {}
        self._failures: list[tuple[str, str, int, dict[str, Any], int]] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> FakeApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # --- scripting ---

    def fail(self, verb: str, resource: str, code: int, body: dict | None = None, times: int = 1):
        """The next ``times`` requests for (verb, resource) answer ``code`` with a Status body.

        ``resource`` is as a Role writes it (``pytorchjobs``, ``pods``, ``pods/log``).
        """
        with self._lock:
            self._failures.append((verb, resource, code, body or {}, times))

    def rbac_calls(self) -> set[tuple[str, str, str]]:
        """Every distinct (verb, apiGroup, resource) requested so far."""
        return {r.rule for r in self.requests}

    def job(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            job = self._jobs.get((namespace, name))
            return None if job is None or job.deleted is not None else job.obj

    def write_kubeconfig(self, path: Path, token: str = "fake-token") -> Path:
        """A kubeconfig with context ``fake`` (this server, current) and ``unreachable``."""
        with socket.socket() as sock:  # a port nothing listens on
            sock.bind(("127.0.0.1", 0))
            dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "fake", "cluster": {"server": self.url}},
                {"name": "dead", "cluster": {"server": dead}},
            ],
            "users": [{"name": "tester", "user": {"token": token}}],
            "contexts": [
                {"name": "fake", "context": {"cluster": "fake", "user": "tester"}},
                {"name": "unreachable", "context": {"cluster": "dead", "user": "tester"}},
            ],
            "current-context": "fake",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    # --- request handling ---

    def _take_failure(self, verb: str, rule_resource: str) -> tuple[int, dict] | None:
        with self._lock:
            for i, (v, res, code, body, times) in enumerate(self._failures):
                if v == verb and res == rule_resource:
                    if times <= 1:
                        del self._failures[i]
                    else:
                        self._failures[i] = (v, res, code, body, times - 1)
                    return code, body
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else headers and body wait on delayed ACKs (40 ms)

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                server._dispatch(self, "GET")

            def do_POST(self) -> None:
                server._dispatch(self, "POST")

            def do_DELETE(self) -> None:
                server._dispatch(self, "DELETE")

            def do_PUT(self) -> None:
                server._dispatch(self, "PUT")

            def do_PATCH(self) -> None:
                server._dispatch(self, "PATCH")

        return Handler

    def _dispatch(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlparse(h.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(h.headers.get("Content-Length") or 0)
        body = json.loads(h.rfile.read(length) or b"null") if length else None
        m = _PATH.match(url.path)
        if not m:
            return self._send(h, *not_found_type())
        group, ns, resource, name, sub = (
            m["group"] or "",
            m["ns"],
            m["resource"],
            m["name"] or "",
            m["sub"] or "",
        )
        verb = {
            "GET": "watch" if query.get("watch") in ("true", "1") else "get" if name else "list",
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
        }[method]
        auth = h.headers.get("Authorization", "")
        with self._lock:
            self.requests.append(ApiRequest(verb, group, resource, sub, ns, name, auth))
        rule_resource = f"{resource}/{sub}" if sub else resource
        failure = self._take_failure(verb, rule_resource)
        if failure:
            code, status_body = failure
            return self._send(
                h, code, status_body or self._default_error(code, verb, group, resource, ns, name)
            )
        if resource == PLURAL and group == GROUP and self.crd_installed:
            return self._pytorchjobs(h, verb, ns, name, body, query)
        if group == "" and resource == "pods" and verb == "list":
            return self._send(
                h,
                200,
                {
                    "kind": "PodList",
                    "apiVersion": "v1",
                    "metadata": {},
                    "items": self._pods(ns, query.get("labelSelector", "")),
                },
            )
        if group == "" and resource == "pods" and sub == "log" and verb == "get":
            return self._log(h, ns, name, query)
        if group == "" and resource == "events" and verb == "list":
            return self._send(
                h,
                200,
                {
                    "kind": "EventList",
                    "apiVersion": "v1",
                    "metadata": {},
                    "items": self._events(ns, query.get("fieldSelector", "")),
                },
            )
        return self._send(h, *not_found_type())

    def _default_error(
        self, code: int, verb: str, group: str, resource: str, ns: str, name: str
    ) -> dict:
        full = f"{resource}.{group}" if group else resource
        if code == 403:
            who = f'{full} "{name}"' if name else full
            message = (
                f'{who} is forbidden: User "system:serviceaccount:{ns}:tester" cannot {verb} '
                f'resource "{resource}" in API group "{group}" in the namespace "{ns}"'
            )
            return _status(
                403, "Forbidden", message, {"name": name, "group": group, "kind": resource}
            )
        if code == 404:
            return not_found_type()[1]
        return _status(code, "InternalError", f"injected error {code}")

    def _pytorchjobs(self, h: Any, verb: str, ns: str, name: str, body: Any, query: dict) -> None:
        details = {"name": name, "group": GROUP, "kind": PLURAL}
        missing = _status(404, "NotFound", f'{PLURAL}.{GROUP} "{name}" not found', details)
        if verb == "create":
            name = body["metadata"]["name"]
            self.created_bodies.append(body)
            causes = self.validator(body) if self.validator else []
            if causes:
                msg = f'PyTorchJob.kubeflow.org "{name}" is invalid: ' + "; ".join(
                    f"{c['field']}: {c['message']}" for c in causes
                )
                det = {"name": name, "group": GROUP, "kind": "PyTorchJob", "causes": causes}
                return self._send(h, 422, _status(422, "Invalid", msg, det))
            with self._lock:
                if (ns, name) in self._jobs and self._jobs[(ns, name)].deleted is None:
                    det = {"name": name, "group": GROUP, "kind": PLURAL}
                    msg = f'{PLURAL}.{GROUP} "{name}" already exists'
                    return self._send(h, 409, _status(409, "AlreadyExists", msg, det))
                obj = json.loads(json.dumps(body))
                obj["metadata"].update(
                    namespace=ns,
                    uid=str(uuid.uuid4()),
                    creationTimestamp=_now_iso(),
                    resourceVersion="1",
                )
                self._jobs[(ns, name)] = _Job(obj, dataclasses.replace(self.program), time.time())
            return self._send(h, 201, obj)
        if verb == "list":
            selector = query.get("labelSelector", "")
            with self._lock:
                items = [
                    self._with_status(j)
                    for (jns, _), j in self._jobs.items()
                    if jns == ns
                    and j.deleted is None
                    and _selector_matches(selector, j.obj["metadata"].get("labels", {}))
                ]
            return self._send(
                h,
                200,
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "PyTorchJobList",
                    "metadata": {},
                    "items": items,
                },
            )
        with self._lock:
            job = self._jobs.get((ns, name))
            if job is None or job.deleted is not None:
                return self._send(h, 404, missing)
            if verb == "delete":
                job.deleted = time.time()
                return self._send(h, 200, _status(200, "", "") | {"status": "Success"})
            return self._send(h, 200, self._with_status(job))

    def _with_status(self, job: _Job) -> dict[str, Any]:
        return {
            **job.obj,
            "status": {"conditions": job.conditions(), "startTime": _now_iso(job.created)},
        }

    def _pods(self, ns: str, selector: str) -> list[dict[str, Any]]:
        with self._lock:
            jobs = [j for (jns, _), j in self._jobs.items() if jns == ns and j.pods_exist()]
        pods = [j.pod(r, i) for j in jobs for r, i in j.replicas()]
        return [p for p in pods if _selector_matches(selector, p["metadata"]["labels"])]

    def _events(self, ns: str, selector: str) -> list[dict[str, Any]]:
        fields = dict(term.partition("=")[::2] for term in selector.split(",") if term)
        events = []
        with self._lock:
            jobs = [j for (jns, _), j in self._jobs.items() if jns == ns and j.deleted is None]
        for job in jobs:
            name = job.obj["metadata"]["name"]
            if fields.get("involvedObject.name", name) != name:
                continue
            for i, (reason, message) in enumerate(job.program.warning_events):
                events.append(
                    {
                        "metadata": {"name": f"{name}.{i}", "namespace": ns},
                        "involvedObject": {"kind": "PyTorchJob", "name": name, "namespace": ns},
                        "reason": reason,
                        "message": message,
                        "type": "Warning",
                    }
                )
        return events

    def _find_pod(self, ns: str, pod_name: str) -> tuple[_Job, str, int] | None:
        with self._lock:
            jobs = [j for (jns, _), j in self._jobs.items() if jns == ns and j.pods_exist()]
        for job in jobs:
            for replica, index in job.replicas():
                if f"{job.obj['metadata']['name']}-{replica}-{index}" == pod_name:
                    return job, replica, index
        return None

    def _log(self, h: Any, ns: str, pod_name: str, query: dict) -> None:
        found = self._find_pod(ns, pod_name)
        if found is None:
            det = {"name": pod_name, "kind": "pods"}
            return self._send(h, 404, _status(404, "NotFound", f'pods "{pod_name}" not found', det))
        job, replica, index = found
        if job.phase() == "Pending":
            msg = f'container "pytorch" in pod "{pod_name}" is waiting to start: ContainerCreating'
            return self._send(h, 400, _status(400, "BadRequest", msg))
        if query.get("follow") not in ("true", "1"):
            lines = job.visible_lines(replica, index)
            if "tailLines" in query:
                lines = lines[-int(query["tailLines"]) :] if int(query["tailLines"]) else []
            text = "".join(line + "\n" for line in lines)
            return self._send_raw(h, 200, text.encode(), "text/plain")
        h.send_response(200)
        h.send_header("Content-Type", "text/plain")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        sent = 0
        while True:
            lines = job.visible_lines(replica, index)
            done = job.phase() in ("Succeeded", "Failed") or not job.pods_exist()
            for line in lines[sent:]:
                data = (line + "\n").encode()
                h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                h.wfile.flush()
            sent = len(lines)
            if done:
                break
            time.sleep(0.01)
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()

    def _send(self, h: Any, code: int, obj: dict[str, Any]) -> None:
        self._send_raw(h, code, json.dumps(obj).encode(), "application/json")

    def _send_raw(self, h: Any, code: int, data: bytes, content_type: str) -> None:
        h.send_response(code)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
