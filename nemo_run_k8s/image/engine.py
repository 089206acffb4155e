"""The few Docker Engine API calls of a submission, over the standard library.

Importing the docker SDK (it brings requests and urllib3) is a large part of a
whole-process submission (bench/bench_docker.py shows it). A submission whose image
exists needs only a handful of calls: ping, inspect an image, load a layer,
create a network, create and start containers. They go through :class:`Engine`,
an HTTP client on the engine's Unix socket (``DOCKER_HOST=unix://...``, the
default); so do the Docker supervisor's (follow logs, wait, stop, remove).
Builds, pulls, the in-image check, pushes and any other ``DOCKER_HOST`` (TCP,
TLS, ssh) use the SDK: :func:`from_env` returns None for those.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import urllib.parse
from collections.abc import Iterator
from typing import Any

API_VERSION = "v1.40"  # Docker 19.03 and later; newer engines accept it
DEFAULT_SOCKET = "/var/run/docker.sock"


class EngineError(Exception):
    """The engine answered with an error: ``status`` and its ``explanation``."""

    def __init__(self, status: int, explanation: str):
        super().__init__(f"{status}: {explanation}")
        self.status, self.explanation = status, explanation


class NotFound(EngineError):
    """The engine answered 404 (no such image, container or network)."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Engine:
    """A Docker Engine API client on a Unix socket; one connection per call (thread-safe)."""

    def __init__(self, path: str = DEFAULT_SOCKET, timeout: float | None = 300.0):
        self.path, self.timeout = path, timeout

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> bytes:
        """One call; returns the body, raises :class:`EngineError` on a 4xx/5xx answer."""
        url = f"/{API_VERSION}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        headers = {"Content-Type": content_type} if data is not None else {}
        connection = _UnixConnection(self.path, self.timeout)
        try:
            connection.request(method, url, body=data, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        if response.status >= 400:
            try:
                explanation = str(json.loads(payload).get("message", ""))
            except (ValueError, AttributeError):
                explanation = payload.decode(errors="replace").strip()
            error = NotFound if response.status == 404 else EngineError
            raise error(response.status, explanation or response.reason)
        return payload

    def ping(self) -> None:
        self.request("GET", "/_ping")

    def inspect_image(self, ref: str) -> dict[str, Any] | None:
        """The image's inspect, or None when the engine does not have it."""
        try:
            return dict(json.loads(self.request("GET", f"/images/{_quote(ref)}/json")))
        except NotFound:
            return None

    def load(self, archive: bytes) -> None:
        """``docker load`` of a tar held in memory; raises on an error in its progress."""
        out = self.request(
            "POST", "/images/load", archive, {"quiet": "1"}, content_type="application/x-tar"
        )
        for line in out.decode(errors="replace").splitlines():
            try:
                chunk = json.loads(line)
            except ValueError:
                continue
            if isinstance(chunk, dict) and ("error" in chunk or "errorDetail" in chunk):
                detail = chunk.get("errorDetail", {}).get("message") or chunk.get("error")
                raise EngineError(500, str(detail))

    def create_network(self, name: str, driver: str, labels: dict[str, str]) -> str:
        body = {"Name": name, "Driver": driver, "Labels": labels, "CheckDuplicate": True}
        return str(json.loads(self.request("POST", "/networks/create", body))["Id"])

    def create_container(self, name: str, config: dict[str, Any]) -> str:
        out = self.request("POST", "/containers/create", config, {"name": name})
        return str(json.loads(out)["Id"])

    def start(self, container_id: str) -> None:
        self.request("POST", f"/containers/{container_id}/start")

    # The supervisor's calls, named and shaped as the SDK's APIClient names them.

    def wait(self, container_id: str, timeout: float | None = None) -> dict[str, Any]:
        engine = Engine(self.path, timeout) if timeout != self.timeout else self
        return dict(json.loads(engine.request("POST", f"/containers/{container_id}/wait")))

    def stop(self, container_id: str, timeout: int = 10) -> None:
        self.request("POST", f"/containers/{container_id}/stop", params={"t": str(timeout)})

    def remove_container(self, container_id: str, force: bool = False) -> None:
        params = {"force": "1"} if force else None
        self.request("DELETE", f"/containers/{container_id}", params=params)

    def remove_network(self, network_id: str) -> None:
        self.request("DELETE", f"/networks/{network_id}")

    def logs(
        self,
        container_id: str,
        stdout: bool = True,
        stderr: bool = True,
        stream: bool = True,
        follow: bool = False,
    ) -> Iterator[bytes]:
        """A container's output as it comes (a container without a TTY: frames demultiplexed)."""
        params = {
            "stdout": str(int(stdout)),
            "stderr": str(int(stderr)),
            "follow": str(int(follow)),
        }
        url = f"/{API_VERSION}/containers/{container_id}/logs?" + urllib.parse.urlencode(params)
        connection = _UnixConnection(self.path, None if follow else self.timeout)
        try:
            connection.request("GET", url)
            response = connection.getresponse()
            if response.status >= 400:
                error = NotFound if response.status == 404 else EngineError
                raise error(response.status, response.read().decode(errors="replace").strip())
            while True:
                header = response.read(8)
                if len(header) < 8:
                    return
                size = int.from_bytes(header[4:8], "big")
                payload = response.read(size)
                if payload:
                    yield payload
        finally:
            connection.close()


def from_env(timeout: float | None = 300.0) -> Engine | None:
    """An :class:`Engine` for this process's ``DOCKER_HOST``, or None where the SDK is needed."""
    host = os.environ.get("DOCKER_HOST", "")
    if os.environ.get("DOCKER_TLS_VERIFY") or os.environ.get("DOCKER_CONTEXT"):
        return None
    if not host:
        return Engine(DEFAULT_SOCKET, timeout)
    if host.startswith("unix://"):
        return Engine(host.removeprefix("unix://"), timeout)
    return None


def errors_of(api: Any) -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]]:
    """(not-found errors, all API errors) that ``api`` (an Engine or the SDK's) raises."""
    if isinstance(api, Engine):
        return (NotFound,), (EngineError, OSError)
    import docker.errors

    return (docker.errors.NotFound,), (docker.errors.APIError,)


def _quote(ref: str) -> str:
    return urllib.parse.quote(ref, safe="/:@")
