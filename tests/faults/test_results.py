"""Item 4: a task whose return value cannot be pickled fails, naming the type and its source.

Before, the job ended SUCCEEDED and ``result()`` returned the error message as
if it were the value. The rule: rank 0's outcome is what the submitter reads;
a value that cannot travel back is an error outcome and exit code 1, in the
result file and in the outcome line of the log (how results leave a pod).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nemo_run_k8s as run
from nemo_run_k8s.bundle.files import make_bundle
from nemo_run_k8s.bundle.outcome import read_outcome
from nemo_run_k8s.runtime.contract import EXIT_TASK_FAILED, decode_outcome_line
from tests.conftest import child_env


def make_lock() -> Any:
    return threading.Lock()


def make_generator() -> Iterator[int]:
    return (i for i in range(3))


@pytest.mark.parametrize(
    ("task", "type_name"),
    [(make_lock, "_thread.lock"), (make_generator, "builtins.generator")],
    ids=["lock", "generator"],
)
def test_an_unpicklable_result_fails_the_job(task: Any, type_name: str) -> None:
    job = run.submit(run.Partial(task), run.LocalExecutor())
    assert job.wait() == run.JobState.FAILED
    with pytest.raises(run.JobFailed) as err:
        job.result()
    message = str(err.value)
    assert type_name in message
    assert f"{__name__}.{task.__name__}" in message  # where it came from
    assert "cannot be pickled" in message


def test_the_outcome_line_carries_the_same_error(tmp_path: Path) -> None:
    bundle = make_bundle(run.Partial(make_lock), tmp_path / "b")
    termination_log = tmp_path / "termination-log"
    termination_log.write_text("")
    command = [sys.executable, "-m", "nemo_run_k8s.runtime.entrypoint", str(bundle.path)]
    proc = subprocess.run(
        [*command, "--output", str(tmp_path / "out")],
        env=child_env(
            NEMO_RUN_K8S_OUTCOME_IN_LOG="1", NEMO_RUN_K8S_TERMINATION_LOG=str(termination_log)
        ),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == EXIT_TASK_FAILED, proc.stderr
    line = proc.stdout.strip().splitlines()[-1]
    status, text = decode_outcome_line(line)  # type: ignore[misc]
    assert status == "error" and "_thread.lock" in text and "make_lock" in text
    assert read_outcome(tmp_path / "out") == (status, text)
    assert "_thread.lock" in termination_log.read_text()
    assert "_thread.lock" in proc.stderr


def test_a_picklable_result_still_succeeds() -> None:
    job = run.submit(run.Partial(dict, a=1), run.LocalExecutor())
    assert job.result() == {"a": 1}
