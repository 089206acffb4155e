"""``run.run`` against the fake Kubernetes API server, for the progress tests.

Run as ``python -m tests.progress.k8s_child``: the job waits 1.5 s for its image
to be "pulled", then runs on two nodes; stdout gets only the job's result.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import nemo_run_k8s as run
from tests.cli.factories import experiment
from tests.k8s.fake_apiserver import FakeApiServer, JobProgram
from tests.k8s.lifecycle import FAKE_DIGEST_IMAGE, FakeImageExecutor, fast_polling, outcome_line

PROGRAM = JobProgram(
    pods_after=0.2,
    running_after=1.5,
    finish_after=2.0,
    log_lines=["step 1", "step 2"],
    outcome_line=outcome_line(("success", "trained")),
    pod_events=[
        ("Normal", "Scheduled", "Successfully assigned default/{pod} to node-1"),
        ("Normal", "Pulling", f'Pulling image "{FAKE_DIGEST_IMAGE}"'),
    ],
)


def main() -> None:
    with FakeApiServer() as server, tempfile.TemporaryDirectory() as tmp, fast_polling(0.05):
        server.program = PROGRAM
        kubeconfig = server.write_kubeconfig(Path(tmp) / "kubeconfig")
        executor = FakeImageExecutor(
            image_repo="127.0.0.1:5000/jobs", kubeconfig=str(kubeconfig), num_nodes=2
        )
        job = run.run(experiment(), executor)
        print(job.result())


if __name__ == "__main__":
    main()
