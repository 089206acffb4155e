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

import contextlib
import dataclasses
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

from tests.k8s.fake_cluster import JobProgram, SimJob, not_found_type, now_iso, status_body

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


def _selector_matches(selector: str, labels: dict[str, str]) -> bool:
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class _Server(ThreadingHTTPServer):
    """Closes the clients' kept-alive connections on close, so no handler thread outlives it.

    (A thread left behind would make the test process multi-threaded, which the
    LocalExecutor checks before it forks.)
    """

    daemon_threads = False
    block_on_close = True

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.connections: set[socket.socket] = set()

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        self.connections.add(conn)
        return conn, addr

    def shutdown_request(self, request: Any) -> None:
        self.connections.discard(request)
        super().shutdown_request(request)

    def server_close(self) -> None:
        for conn in list(self.connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        super().server_close()


class FakeApiServer:
    """A threaded fake API server on 127.0.0.1; use as a context manager."""

    def __init__(self) -> None:
        self.requests: list[ApiRequest] = []
        self.program = JobProgram()  # given to each job created from now on
        self.crd_installed = True
        self.validator: Callable[[dict[str, Any]], list[dict[str, str]]] | None = None
        self.created_bodies: list[dict[str, Any]] = []
        self._jobs: dict[tuple[str, str], SimJob] = {}
        self._failures: list[tuple[str, str, int, dict[str, Any], int]] = []
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> FakeApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()  # ends open connections and joins their threads
        self._thread.join()

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
            return status_body(
                403, "Forbidden", message, {"name": name, "group": group, "kind": resource}
            )
        if code == 404:
            return not_found_type()[1]
        return status_body(code, "InternalError", f"injected error {code}")

    def _pytorchjobs(self, h: Any, verb: str, ns: str, name: str, body: Any, query: dict) -> None:
        details = {"name": name, "group": GROUP, "kind": PLURAL}
        missing = status_body(404, "NotFound", f'{PLURAL}.{GROUP} "{name}" not found', details)
        if verb == "create":
            name = body["metadata"]["name"]
            self.created_bodies.append(body)
            causes = self.validator(body) if self.validator else []
            if causes:
                msg = f'PyTorchJob.kubeflow.org "{name}" is invalid: ' + "; ".join(
                    f"{c['field']}: {c['message']}" for c in causes
                )
                det = {"name": name, "group": GROUP, "kind": "PyTorchJob", "causes": causes}
                return self._send(h, 422, status_body(422, "Invalid", msg, det))
            with self._lock:
                if (ns, name) in self._jobs and self._jobs[(ns, name)].deleted is None:
                    det = {"name": name, "group": GROUP, "kind": PLURAL}
                    msg = f'{PLURAL}.{GROUP} "{name}" already exists'
                    return self._send(h, 409, status_body(409, "AlreadyExists", msg, det))
                obj = json.loads(json.dumps(body))
                obj["metadata"].update(
                    namespace=ns,
                    uid=str(uuid.uuid4()),
                    creationTimestamp=now_iso(),
                    resourceVersion="1",
                )
                self._jobs[(ns, name)] = SimJob(obj, dataclasses.replace(self.program), time.time())
            return self._send(h, 201, obj)
        if verb == "list":
            selector = query.get("labelSelector", "")
            with self._lock:
                items = [
                    self._withstatus_body(j)
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
                return self._send(h, 200, status_body(200, "", "") | {"status": "Success"})
            return self._send(h, 200, self._withstatus_body(job))

    def _withstatus_body(self, job: SimJob) -> dict[str, Any]:
        return {
            **job.obj,
            "status": {"conditions": job.conditions(), "startTime": now_iso(job.created)},
        }

    def _pods(self, ns: str, selector: str) -> list[dict[str, Any]]:
        with self._lock:
            jobs = [j for (jns, _), j in self._jobs.items() if jns == ns and j.pods_exist()]
        pods = [j.pod(r, i) for j in jobs for r, i in j.replicas() if j.pod_exists(r, i)]
        return [p for p in pods if _selector_matches(selector, p["metadata"]["labels"])]

    def _events(self, ns: str, selector: str) -> list[dict[str, Any]]:
        fields = dict(term.partition("=")[::2] for term in selector.split(",") if term)
        events = []
        with self._lock:
            jobs = [j for (jns, _), j in self._jobs.items() if jns == ns and j.deleted is None]
        for job in jobs:
            name = job.obj["metadata"]["name"]
            for replica, index in job.replicas():
                pod = f"{name}-{replica}-{index}"
                if fields.get("involvedObject.name") != pod or not job.pod_exists(replica, index):
                    continue
                if job.pod_phase(replica, index) != "Pending":
                    continue
                for i, (kind, reason, message) in enumerate(job.program.pod_events):
                    events.append(
                        {
                            "metadata": {"name": f"{pod}.{i}", "namespace": ns},
                            "involvedObject": {"kind": "Pod", "name": pod, "namespace": ns},
                            "reason": reason,
                            "message": message.format(pod=pod),
                            "type": kind,
                            "lastTimestamp": now_iso(job.created + i),
                        }
                    )
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

    def _find_pod(self, ns: str, pod_name: str) -> tuple[SimJob, str, int] | None:
        with self._lock:
            jobs = [j for (jns, _), j in self._jobs.items() if jns == ns and j.pods_exist()]
        for job in jobs:
            for replica, index in job.replicas():
                name = f"{job.obj['metadata']['name']}-{replica}-{index}"
                if name == pod_name and job.pod_exists(replica, index):
                    return job, replica, index
        return None

    def _log(self, h: Any, ns: str, pod_name: str, query: dict) -> None:
        found = self._find_pod(ns, pod_name)
        if found is None:
            det = {"name": pod_name, "kind": "pods"}
            return self._send(
                h, 404, status_body(404, "NotFound", f'pods "{pod_name}" not found', det)
            )
        job, replica, index = found
        if query.get("previous") in ("true", "1"):
            previous = job.program.restarted.get(f"{replica}{index}")
            if previous is None:
                msg = f'previous terminated container "pytorch" in pod "{pod_name}" not found'
                return self._send(h, 400, status_body(400, "BadRequest", msg))
            text = "".join(line + "\n" for line in previous)
            return self._send_raw(h, 200, text.encode(), "text/plain")
        if job.pod_phase(replica, index) == "Pending":
            msg = f'container "pytorch" in pod "{pod_name}" is waiting to start: ContainerCreating'
            return self._send(h, 400, status_body(400, "BadRequest", msg))
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
