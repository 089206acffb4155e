"""Helpers for tests against the real engine: what a job left behind, and image bookkeeping."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from nemo_run_k8s.labels import JOB_ID_LABEL, JOB_NAME_LABEL


def leftovers(client: Any, job_id: str, network_grace: float = 10.0) -> list[str]:
    """Containers (any state) with the job's label now, and its networks after a grace time.

    A final state means no container is left; the supervisor removes the job's
    (empty) network right after, so networks get ``network_grace`` seconds to go.
    """
    label = {"label": f"{JOB_ID_LABEL}={job_id}"}
    containers = [
        f"container {c['Names'][0]}" for c in client.api.containers(all=True, filters=label)
    ]
    deadline = time.monotonic() + network_grace
    while (networks := client.api.networks(filters=label)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return containers + [f"network {n['Name']}" for n in networks]


def by_job_name(client: Any, name: str) -> list[str]:
    """Containers and networks labelled with a job *name* (when no job id is known)."""
    label = {"label": f"{JOB_NAME_LABEL}={name}"}
    containers = [
        f"container {c['Names'][0]}" for c in client.api.containers(all=True, filters=label)
    ]
    networks = [f"network {n['Name']}" for n in client.api.networks(filters=label)]
    return containers + networks


def recorded_handles(home: Path) -> list[dict[str, Any]]:
    db = home / "jobs.sqlite3"
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT id, handle FROM jobs").fetchall()
    return [{"job_id": job_id, **json.loads(handle)} for job_id, handle in rows]


def remove_job_resources(client: Any, home: Path) -> None:
    """Removes every container and network labelled with a job recorded under ``home``."""
    for handle in recorded_handles(home):
        label = {"label": f"{JOB_ID_LABEL}={handle['job_id']}"}
        for container in client.api.containers(all=True, filters=label):
            with contextlib.suppress(Exception):
                client.api.remove_container(container["Id"], force=True)
        for network in client.api.networks(filters=label):
            with contextlib.suppress(Exception):
                client.api.remove_network(network["Id"])


class ImageLedger:
    """Images a test session made: removed at the end unless they existed at its start."""

    def __init__(self, client: Any):
        self.client = client
        self.before = {image.id for image in client.images.list(all=True)}
        self.refs: list[str] = []
        self.tags: list[str] = []

    def add(self, *refs: str) -> None:
        self.refs += [r for r in refs if r and r not in self.refs]

    def add_from_records(self, home: Path) -> None:
        for handle in recorded_handles(home):
            self.add(handle.get("image", ""), handle.get("env_image", ""))

    def add_tag(self, ref: str) -> None:
        """A tag this session put on some image (e.g. for a push): always removed."""
        self.tags.append(ref)

    def remove_new(self) -> None:
        import docker.errors

        for ref in self.tags:  # untag only: the image itself is handled below
            with contextlib.suppress(docker.errors.APIError):
                self.client.images.remove(ref, noprune=True)
        # Job images before environment images before bases: children go first.
        order = {"nemo-run-k8s/job": 0, "nemo-run-k8s/env": 1}
        for ref in sorted(self.refs, key=lambda r: order.get(r.rsplit(":", 1)[0], 2)):
            try:
                image = self.client.images.get(ref)
            except docker.errors.ImageNotFound:
                continue
            if image.id not in self.before:
                self._remove_children(image.id)  # e.g. layers a failed build kept as cache
                with contextlib.suppress(docker.errors.APIError):
                    self.client.images.remove(ref)

    def _remove_children(self, image_id: str) -> None:
        import docker.errors

        for child in self.client.api.images(all=True):
            if child.get("ParentId") == image_id and child["Id"] not in self.before:
                self._remove_children(child["Id"])
                with contextlib.suppress(docker.errors.APIError):
                    self.client.api.remove_image(child["Id"])


def build_test_base(client: Any, name: str, dockerfile: str, files: dict[str, Path]) -> str:
    """Builds a small base image for one test, tagged by a hash of its recipe and files."""
    import hashlib
    import io
    import tarfile

    digest = hashlib.sha256(dockerfile.encode())
    for arcname, path in sorted(files.items()):
        digest.update(arcname.encode() + b"\0" + path.read_bytes())
    ref = f"nemo-run-k8s-test/{name}:{digest.hexdigest()[:16]}"
    try:
        client.images.get(ref)
        return ref
    except Exception:
        pass
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for arcname, path in files.items():
            tar.add(str(path), arcname=arcname)
    buf.seek(0)
    client.images.build(
        fileobj=buf, custom_context=True, tag=ref, rm=True, forcerm=True,
        labels={"app.kubernetes.io/managed-by": "nemo-run-k8s", "nemo-run-k8s.io/test": name},
    )  # fmt: skip
    return ref
