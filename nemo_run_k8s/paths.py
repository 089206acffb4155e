"""Where a job's files live: on the host (:class:`JobPaths`) and inside a job image.

The one owner of these names. A job directory (``$NEMO_RUN_K8S_HOME/jobs/<id>``)
holds::

    bundle/            the job bundle (see nemo_run_k8s.bundle)
    output/result.pkl  rank 0's outcome (nemo_run_k8s.bundle.outcome)
    logs/node-<i>.log  each node's output
    exit.json          how the job ended, written once by its supervisor
                       (nemo_run_k8s.exit_status)
    cancel-requested   present once someone asked to cancel
    supervisor.log     the supervisor's own output (Docker)
    docker.json        the containers and network a Docker job launched
    network-removed    present once a Docker job's network is gone

Standard library only: the local supervisor imports it without fiddle.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

#: Where bundles live inside a job image: ``<IMAGE_BUNDLE_ROOT>/<bundle sha256>``.
IMAGE_BUNDLE_ROOT = "/opt/nemo_run_k8s/bundles"
#: Where the user's code directory lives inside a job image (the recipe's WORKDIR, importable).
IMAGE_CODE_ROOT = "/workspace"
#: The file rank 0's outcome is written to, inside the output directory.
OUTCOME_FILE = "result.pkl"


def image_bundle_path(bundle_sha256: str) -> str:
    """Where the bundle with this content hash lives inside a job image."""
    return f"{IMAGE_BUNDLE_ROOT}/{bundle_sha256}"


@dataclasses.dataclass(frozen=True)
class JobPaths:
    """The files of one job directory."""

    root: Path

    @property
    def bundle(self) -> Path:
        return self.root / "bundle"

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def outcome(self) -> Path:
        return self.output / OUTCOME_FILE

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, node: int) -> Path:
        return self.logs / f"node-{node}.log"

    @property
    def exit_status(self) -> Path:
        return self.root / "exit.json"

    @property
    def cancel_requested(self) -> Path:
        return self.root / "cancel-requested"

    @property
    def supervisor_log(self) -> Path:
        return self.root / "supervisor.log"

    @property
    def docker_spec(self) -> Path:
        return self.root / "docker.json"

    @property
    def network_removed(self) -> Path:
        return self.root / "network-removed"
