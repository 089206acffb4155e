"""The nemo-run-k8s command, driven through subprocesses as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO_ROOT as REPO
from tests.conftest import child_env

FACTORIES = "tests.cli.factories"


@pytest.fixture
def cli(home):
    env = child_env()  # NEMO_RUN_K8S_HOME: the test's own (the shared `home` fixture)
    env.pop("CI", None)

    def run_cli(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", "nemo_run_k8s.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    run_cli.env = env
    return run_cli


def test_run_applies_typed_overrides_and_prints_output(cli):
    proc = cli(
        "run",
        f"{FACTORIES}:experiment",
        "trainer.max_epochs=3",
        "optimizer.lr=1e-4",
        "trainer.fast=true",
        "trainer.tag=7",
    )
    assert "epochs=3 lr=0.0001 fast=True tag=7" in proc.stdout  # int, float, bool; str stays str
    assert "result: 'epochs=3 lr=0.0001 fast=True tag=7'" in proc.stdout
    assert "SUCCEEDED" in proc.stderr


def test_factory_by_file_path(cli):
    proc = cli("run", "tests/cli/factories.py:experiment", "optimizer.momentum=0.5")
    assert "epochs=1 lr=0.1" in proc.stdout


def test_partial_flag_runs_the_function_itself(cli):
    proc = cli("run", "--partial", f"{FACTORIES}:sleeper", "seconds=0")
    assert "sleeping" in proc.stdout


def test_bad_override_path_names_the_valid_fields(cli):
    proc = cli("run", f"{FACTORIES}:experiment", "optimizer.lrr=1", check=False)
    assert proc.returncode == 2
    assert "optimizer.lrr" in proc.stderr
    assert "optimizer.lr" in proc.stderr and "optimizer.momentum" in proc.stderr
    proc = cli("run", f"{FACTORIES}:experiment", "trainr.max_epochs=1", check=False)
    assert "Config nodes under <root>: trainer, optimizer" in proc.stderr


def test_bad_override_value_says_the_expected_type(cli):
    proc = cli("run", f"{FACTORIES}:experiment", "trainer.max_epochs=three", check=False)
    assert proc.returncode == 2
    assert "trainer.max_epochs expects int, got 'three'" in proc.stderr


def test_factory_returning_no_task_is_explained(cli):
    proc = cli("run", f"{FACTORIES}:not_a_task", check=False)
    assert proc.returncode == 2
    assert "returned a int" in proc.stderr and "--partial" in proc.stderr


def test_failing_job_exits_nonzero_with_the_remote_traceback(cli):
    proc = cli("run", f"{FACTORIES}:failing", check=False)
    assert proc.returncode == 1
    assert "RuntimeError: the model diverged" in proc.stderr
    assert "FAILED" in proc.stderr


def test_unknown_executor_option_is_rejected(cli):
    proc = cli("submit", f"{FACTORIES}:experiment", "--set", "warp_drive=1", check=False)
    assert proc.returncode == 2
    assert "LocalExecutor has no option 'warp_drive'" in proc.stderr
    proc = cli("submit", f"{FACTORIES}:experiment", "--num-nodes", "2", check=False)
    assert (
        proc.returncode == 2 and "--num-nodes: not an option of the local executor" in proc.stderr
    )


def test_list_status_logs_cancel_show_from_other_processes(cli):
    job_id = cli("submit", f"{FACTORIES}:slow").stdout.strip()
    done_id = cli("submit", f"{FACTORIES}:experiment", "trainer.tag=shown").stdout.strip()

    listing = json.loads(cli("list", "-o", "json").stdout)
    assert {row["id"] for row in listing} == {job_id, done_id}
    table = cli("list").stdout.splitlines()
    assert table[0].split()[:4] == ["ID", "NAME", "EXECUTOR", "STATE"]

    deadline = time.monotonic() + 20
    while "sleeping" not in cli("logs", job_id).stdout:
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.1)
    assert json.loads(cli("status", job_id, "-o", "json").stdout)["state"] == "RUNNING"

    started = time.monotonic()
    assert cli("cancel", job_id).stdout.split() == [job_id, "sleeper", "local", "CANCELLED"]
    assert time.monotonic() - started < 15
    assert cli("status", job_id).stdout.split()[-1] == "CANCELLED"

    deadline = time.monotonic() + 20
    while cli("status", done_id).stdout.split()[-1] != "SUCCEEDED":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    shown = cli("show", done_id).stdout
    assert "_target_: tests.cli.factories.train" in shown and "tag: shown" in shown
    assert "trainer.tag = 'shown'" in cli("show", done_id, "--format", "flat").stdout
    assert "epochs=1" in cli("logs", "-f", done_id).stdout

    assert [
        r["id"] for r in json.loads(cli("list", "-o", "json", "--state", "cancelled").stdout)
    ] == [job_id]


def test_unknown_job_id_is_a_clear_error(cli):
    proc = cli("status", "nope-123", check=False)
    assert proc.returncode == 2
    assert "no job with id 'nope-123'" in proc.stderr and "nemo-run-k8s list" in proc.stderr


def test_dryrun_starts_nothing(cli, tmp_path):
    proc = cli("dryrun", f"{FACTORIES}:experiment", "optimizer.lr=0.5")
    assert "optimizer.lr = 0.5" in proc.stdout
    assert "nemo_run_k8s.runtime.entrypoint" in proc.stdout
    assert json.loads(cli("list", "-o", "json").stdout) == []


def test_help_lists_every_command(cli):
    out = cli("--help").stdout
    for command in ("run", "submit", "dryrun", "build", "list", "status", "logs", "cancel", "show"):
        assert command in out
