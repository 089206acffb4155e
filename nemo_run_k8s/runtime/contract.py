"""What the entrypoint and the backends agree on: environment, exit codes, the outcome line.

- **Environment.** :func:`node_env` is what the Kubeflow operator sets on
  PyTorchJob pods; the local and Docker executors set the same, so one
  entrypoint runs unchanged everywhere.
- **Exit codes.** 0 success; 1 the task raised or the script failed; 3 the
  bundle or setup is wrong (nothing of the task ran); 143 stopped by SIGTERM.
- **The outcome line.** Where rank 0 cannot write a file the submitter reads (a
  pod), it prints its outcome as the last stdout line, ``NEMO_RUN_K8S_OUTCOME
  <base64 cloudpickle>``, when :data:`OUTCOME_IN_LOG_ENV` is ``1``; the
  backend reads it back from the log with :func:`decode_outcome_line`.
- **The termination log.** On Kubernetes a short failure reason goes to
  ``/dev/termination-log``, where the pod's status shows it.

Standard library only; cloudpickle is imported only to encode or decode a line.
"""

from __future__ import annotations

import base64
import signal
from typing import Any

EXIT_OK = 0
EXIT_TASK_FAILED = 1
EXIT_SETUP_ERROR = 3
EXIT_TERMINATED = 128 + signal.SIGTERM

OUTCOME_IN_LOG_ENV = "NEMO_RUN_K8S_OUTCOME_IN_LOG"
OUTCOME_PREFIX = "NEMO_RUN_K8S_OUTCOME "
#: Set by the entrypoint for the processes torchrun starts, so they run the task themselves.
WORKER_ENV = "NEMO_RUN_K8S_WORKER"
TERMINATION_LOG = "/dev/termination-log"
TERMINATION_LOG_ENV = "NEMO_RUN_K8S_TERMINATION_LOG"


def node_env(node: int, master: str, port: int, num_nodes: int, nproc: int) -> dict[str, str]:
    """The environment the Kubeflow operator sets on PyTorchJob pods, for ``node``."""
    env = {
        "MASTER_ADDR": master,
        "MASTER_PORT": str(port),
        "WORLD_SIZE": str(num_nodes * nproc),
        "RANK": str(node),
        "PET_MASTER_ADDR": master,
        "PET_MASTER_PORT": str(port),
        "PET_NNODES": str(num_nodes),
        "PET_NODE_RANK": str(node),
        "PET_NPROC_PER_NODE": str(nproc),
        "PYTHONUNBUFFERED": "1",
    }
    if nproc > 1:  # torchrun prefixes every worker line with its node and global rank
        env["PET_TEE"] = "3"
        env["TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE"] = f"[node{node} rank${{rank}}] "
    return env


def encode_outcome_line(data: bytes) -> str:
    """The log line carrying a pickled outcome."""
    return OUTCOME_PREFIX + base64.b64encode(data).decode()


def decode_outcome_line(line: str) -> tuple[str, Any] | None:
    """The ``(status, value)`` a line carries, or None when it is not an outcome line.

    The value is a cloudpickle written by the job itself: trust it as you trust the job.
    """
    if not line.startswith(OUTCOME_PREFIX):
        return None
    import cloudpickle

    status, value = cloudpickle.loads(base64.b64decode(line[len(OUTCOME_PREFIX) :]))
    return status, value
