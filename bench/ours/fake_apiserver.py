"""A stand-in Kubernetes API server for the sweep benchmark: it accepts PyTorchJobs.

Only what a submission touches: list PyTorchJobs (the executor's preflight) and
create one (answered 201 with the object, as the real server does). Runs in a
thread of the benchmark process; :func:`serve` returns a kubeconfig pointing at it.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.split("?")[0].endswith("/pytorchjobs"):
            self._send(
                200, {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJobList", "items": []}
            )
        else:
            self._send(
                404, {"kind": "Status", "status": "Failure", "code": 404, "reason": "NotFound"}
            )

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        body.setdefault("metadata", {})["uid"] = str(uuid.uuid4())
        self._send(201, body)

    def _send(self, code: int, body: dict) -> None:  # type: ignore[type-arg]
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def serve(directory: Path) -> Path:
    """Starts the server on a free loopback port; returns the path of its kubeconfig."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "bench", "cluster": {"server": url}}],
        "users": [{"name": "bench", "user": {"token": "bench"}}],
        "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "bench"}}],
        "current-context": "bench",
    }
    path = directory / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path
