"""Progress on stderr: what the trackers say, how each mode shows it, and what stays silent.

The terminal tests run a whole process with stderr on a pseudo-terminal, as a
user's shell would, and stdout on a pipe, as a script would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import nemo_run_k8s as run
from nemo_run_k8s import progress
from nemo_run_k8s.errors import InvalidOptionError
from nemo_run_k8s.spec import JobDescription, JobState, ReplicaStatus
from tests.progress.tty import ended_cleanly, run_on_tty

REPO = Path(__file__).resolve().parents[2]


class Recorder(progress._View):
    """A view that keeps what it is shown."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.statuses: list[tuple[str, str, float | None, float | None]] = []

    def line(self, text: str) -> None:
        self.lines.append(text)

    def status(self, key: str, text: str, done: float | None = None, total: float | None = None):
        self.statuses.append((key, text, done, total))


def user_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", progress.ENV)}
    return {**env, "NEMO_RUN_K8S_HOME": str(home), "PYTHONPATH": str(REPO), **extra}


@pytest.fixture(autouse=True)
def _default_mode() -> Any:
    saved = progress._mode
    yield
    progress._mode = saved


# --------------------------------------------------------------------------- trackers

BUILD_STREAM = [
    "Step 1/4 : FROM nemo-run-k8s/base-python:local\n",
    " ---> 293f5ec02dae\n",
    "Step 2/4 : COPY wheels/deps/ /tmp/deps/\n",
    " ---> Using cache\n",
    " ---> 1f2e3d4c5b6a\n",
    "Step 3/4 : RUN pip install /tmp/deps/*.whl\n",
    " ---> Running in 0a1b2c3d4e5f\n",
    "Collecting fiddle\n",
    "Removing intermediate container 0a1b2c3d4e5f\n",
    " ---> 6a5b4c3d2e1f\n",
    "Step 4/4 : COPY code/ /workspace/\n",
    " ---> 7f6e5d4c3b2a\n",
    "Successfully built 7f6e5d4c3b2a\n",
]


def test_build_shows_context_size_reused_and_built_steps() -> None:
    view = Recorder()
    build = progress.BuildProgress(view, "nemo-run-k8s/env:abc", 20_300_000)
    for text in BUILD_STREAM:
        build.feed(text)
    build.done()
    assert view.lines[0] == "building nemo-run-k8s/env:abc (context 20.3 MB)"
    assert view.lines[1:5] == [
        "  step 1/4: FROM nemo-run-k8s/base-python:local",
        "  step 2/4 reused: COPY wheels/deps/ /tmp/deps/",
        "  step 3/4 building: RUN pip install /tmp/deps/*.whl",
        "  step 4/4 built: COPY code/ /workspace/",
    ]
    assert view.lines[-1].startswith("built nemo-run-k8s/env:abc in ")
    assert view.lines[-1].endswith("s: 1 step(s) reused, 2 built")
    assert (
        "build",
        "step 3/4: RUN pip install /tmp/deps/*.whl | Collecting fiddle",
        None,
        None,
    ) in (view.statuses)
    assert not any("Removing intermediate" in s[1] for s in view.statuses)


def test_push_shows_bytes_per_layer_and_the_total() -> None:
    view = Recorder()
    push = progress.PushProgress(view, "registry:5000/jobs", "abc")
    for chunk in [
        {"status": "The push refers to repository [registry:5000/jobs]"},
        {"status": "Preparing", "id": "aaa"},
        {"status": "Preparing", "id": "bbb"},
        {"status": "Layer already exists", "id": "bbb"},
        {"status": "Pushing", "id": "aaa", "progressDetail": {"current": 512, "total": 2048}},
        {"status": "Pushing", "id": "aaa", "progressDetail": {"current": 2048, "total": 2048}},
        {"status": "Pushed", "id": "aaa"},
        {"status": "abc: digest: sha256:0123 size: 528"},
    ]:
        push.feed(chunk)
    push.done("registry:5000/jobs@sha256:0123")
    assert view.lines[:3] == [
        "pushing registry:5000/jobs:abc",
        "  layer bbb: already in the registry",
        "  layer aaa: pushed 2.0 kB",
    ]
    assert ("aaa", "  layer aaa", 512, 2048) in view.statuses
    assert ("total", "pushing registry:5000/jobs:abc", 512, 2048) in view.statuses
    assert view.lines[-1].startswith(
        "pushed registry:5000/jobs@sha256:0123: 2 layer(s), 1 already there, 2.0 kB sent in "
    )


def test_pull_of_a_base_image_shows_bytes_downloaded_and_layers_already_here() -> None:
    view = Recorder()
    pull = progress.PullProgress(view, "nvcr.io/nvidia/pytorch", "24.07-py3")
    for chunk in [
        {"status": "Pulling from nvidia/pytorch", "id": "24.07-py3"},
        {"status": "Already exists", "id": "aaa"},
        {"status": "Pulling fs layer", "id": "bbb"},
        {"status": "Downloading", "id": "bbb", "progressDetail": {"current": 10, "total": 3e9}},
        {"status": "Download complete", "id": "bbb"},
        {"status": "Extracting", "id": "bbb", "progressDetail": {"current": 5, "total": 3e9}},
        {"status": "Pull complete", "id": "bbb"},
    ]:
        pull.feed(chunk)
    pull.done("nvcr.io/nvidia/pytorch:24.07-py3")
    assert view.lines[:3] == [
        "pulling nvcr.io/nvidia/pytorch:24.07-py3",
        "  layer aaa: already here",
        "  layer bbb: pulled 3.0 GB",
    ]
    assert view.lines[-1].startswith(
        "pulled nvcr.io/nvidia/pytorch:24.07-py3: 2 layer(s), 1 already there, "
        "3.0 GB downloaded in "
    )


def test_waiting_lines_say_why_each_replica_is_not_running() -> None:
    queued = JobDescription(
        JobState.PENDING,
        replicas=(
            ReplicaStatus("master", 0, "not created", "queued in gpu-queue"),
            ReplicaStatus("worker", 0, "not created", "queued in gpu-queue"),
        ),
    )
    assert [t for _, t in progress.waiting_lines(queued)] == [
        "queued in gpu-queue (master0, worker0)"
    ]
    stuck = JobDescription(
        JobState.PENDING,
        replicas=(
            ReplicaStatus("master", 0, "Running"),
            ReplicaStatus("worker", 0, "Pending", "unschedulable: 0/1 nodes have nvidia.com/gpu"),
        ),
        warnings=("x-worker-0: FailedScheduling: 0/1 nodes are available",),
    )
    assert [t for _, t in progress.waiting_lines(stuck)] == [
        "worker0: Pending: unschedulable: 0/1 nodes have nvidia.com/gpu",
        "warning: x-worker-0: FailedScheduling: 0/1 nodes are available",
    ]


def test_start_progress_shows_each_change_once() -> None:
    view = Recorder()
    start = progress.StartProgress(view, "job-1")
    pulling = JobDescription(
        JobState.PENDING, replicas=(ReplicaStatus("master", 0, "Pending", "pulling image x"),)
    )
    start.update(pulling)
    start.update(pulling)
    start.done(JobState.RUNNING)
    assert view.lines[0] == "job-1 master0: Pending: pulling image x"
    assert len(view.lines) == 2 and view.lines[1].startswith("job-1 RUNNING after ")


def test_sizes_read_like_docker() -> None:
    assert [progress.size(n) for n in (0, 999, 20_300_000, 3.2e9)] == [
        "0 B",
        "999 B",
        "20.3 MB",
        "3.2 GB",
    ]


# --------------------------------------------------------------------------- the switch


def test_modes_resolve_from_the_setting_the_environment_and_the_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv(progress.ENV, "off")
    progress._mode = None
    assert progress.current_mode() == "off"
    assert run.set_progress("plain") == "off"  # returns what it replaces
    assert progress.current_mode() == "plain"  # the call wins over the environment
    run.set_progress("auto")
    monkeypatch.setattr(sys, "stderr", open(os.devnull, "w"))  # noqa: SIM115 (not a terminal)
    assert progress.current_mode() == "plain"
    monkeypatch.setenv("CI", "1")
    assert progress.current_mode() == "plain"
    assert progress.reporter(quiet=True).off
    with pytest.raises(InvalidOptionError, match="auto, live, plain, off"):
        run.set_progress("loud")


def test_plain_mode_prints_prefixed_lines_on_stderr_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run.set_progress("plain")
    with progress.reporter().build("img:1", 1000) as build:
        build.feed("Step 1/1 : COPY a b\n")
        build.done()
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[0] == "nemo-run-k8s: building img:1 (context 1.0 kB)"
    run.set_progress("off")
    with progress.reporter().build("img:1", 1000) as build:
        build.done()
    assert capsys.readouterr() == ("", "")


# --------------------------------------------------------------------------- whole processes


def test_python_api_on_a_terminal_shows_why_a_kubernetes_job_waits(tmp_path: Path) -> None:
    """run.run() against the fake API server: a live display that ends cleanly."""
    result = run_on_tty(
        [sys.executable, "-m", "tests.progress.k8s_child"], user_env(tmp_path), REPO
    )
    assert result.returncode == 0, result.terminal
    assert result.stdout == "trained\n"  # progress never reaches stdout
    assert 'master0: Pending: pulling image "127.0.0.1:5000/jobs@sha256:' in result.terminal
    assert "worker0: Pending: pulling image" in result.terminal
    assert "RUNNING after" in result.terminal
    assert "waiting for train-" in result.terminal  # the live row
    assert ended_cleanly(result.terminal)


def test_python_api_in_a_pipe_prints_plain_lines_and_nothing_when_off(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "tests.progress.k8s_child"]
    plain = subprocess.run(
        command, env=user_env(tmp_path), cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == "trained\n"
    lines = plain.stderr.splitlines()
    assert any(
        line.startswith("nemo-run-k8s: train-") and "master0: Pending: pulling image" in line
        for line in lines
    ), plain.stderr
    assert "\x1b[" not in plain.stderr  # no escape codes in logs
    off = subprocess.run(
        command,
        env=user_env(tmp_path, NEMO_RUN_K8S_PROGRESS="off"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (off.returncode, off.stdout, off.stderr) == (0, "trained\n", "")


def test_cli_run_with_json_output_keeps_stdout_to_the_json(tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "nemo_run_k8s.cli", "run", "tests.cli.factories:experiment"]
    result = run_on_tty([*cli, "-o", "json"], user_env(tmp_path), REPO)
    assert result.returncode == 0, result.terminal
    data = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert data["state"] == "SUCCEEDED" and data["result"].startswith("'epochs=1")
    quiet = run_on_tty([*cli, "--quiet"], user_env(tmp_path), REPO)
    assert quiet.returncode == 0
    assert re.fullmatch(r"train-\w+ SUCCEEDED\r\n", quiet.terminal)  # the outcome, no more
    assert quiet.stdout == "result: 'epochs=1 lr=0.1 fast=False tag=base'\n"


def test_help_list_and_import_never_load_rich(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import nemo_run_k8s\n"
        "from nemo_run_k8s import cli\n"
        "try:\n"
        "    cli.main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "cli.main(['list'])\n"
        "print(sorted(m for m in ('rich', 'nemo_run_k8s.progress') if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=user_env(tmp_path),
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.splitlines()[-1] == "[]"
