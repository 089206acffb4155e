"""Bad input and damaged files give a clear error (and the CLI one line), never a traceback."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nemo_run_k8s as run
from nemo_run_k8s import cli
from nemo_run_k8s.bundle.files import make_bundle
from nemo_run_k8s.errors import BundleError, ConfigError, InvalidOptionError, RecordsError
from nemo_run_k8s.executors.local.executor import LocalExecutor
from nemo_run_k8s.exit_status import ExitStatus
from nemo_run_k8s.runtime import entrypoint
from nemo_run_k8s.runtime.contract import EXIT_SETUP_ERROR
from tests.conftest import child_env


def add(a: int = 1, b: int = 2) -> int:
    return a + b


def sleep_forever() -> None:
    time.sleep(600)


def cli_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Runs the CLI, expects exit 2 and returns its one error line."""
    assert cli.main(list(argv)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error: "), err
    return err


# --------------------------------------------------------------------------- the entrypoint


@pytest.mark.parametrize(
    "manifest",
    [
        b"[1, 2, 3]",
        b'{"format": 1}',
        b'{"format": 1, "sha256": 5, "task_kind": "partial", "python": "3", "resources": {}}',
        b'{"format": 1, "sha256": "x", "task_kind": "shell", "python": "3", "resources": {}}',
        b'{"format": 1, "sha256": "x", "task_kind": "partial", "python": "3", "resources": []}',
        b'{"format": 1, "sha256": "\xff\xfe"}',
        b'{"format": 1, "sha',
    ],
)
def test_entrypoint_exits_3_on_a_malformed_manifest(
    manifest: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = make_bundle(run.Partial(add), tmp_path / "bundle")
    (bundle.path / "manifest.json").write_bytes(manifest)
    assert entrypoint.main([str(bundle.path)]) == EXIT_SETUP_ERROR
    err = capsys.readouterr().err
    assert err.startswith("nemo_run_k8s: ") and "Traceback" not in err, err


def test_entrypoint_exits_3_when_the_bundle_path_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "bundle"
    path.write_text("not a directory")
    proc = subprocess.run(
        [sys.executable, "-m", "nemo_run_k8s.runtime.entrypoint", str(path)],
        env=child_env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == EXIT_SETUP_ERROR, proc.stderr
    assert "is a file, not a job bundle" in proc.stderr and "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- the records


def test_a_damaged_records_database_is_a_clear_error(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (home / "jobs.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(RecordsError, match=r"are damaged .*\(mv "):
        run.list_jobs()
    assert "NEMO_RUN_K8S_HOME" in cli_error(capsys, "list")
    assert "are damaged" in cli_error(capsys, "status", "x")


def test_a_records_database_that_cannot_be_written_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def readonly(*args: object, **kwargs: object) -> sqlite3.Connection:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(sqlite3, "connect", readonly)
    with pytest.raises(RecordsError, match="make the file and its directory writable"):
        run.submit(run.Partial(add))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only files")
def test_a_read_only_home_is_a_clear_error(home: Path) -> None:
    home.chmod(0o555)
    try:
        with pytest.raises(run.NemoRunError, match="NEMO_RUN_K8S_HOME"):
            run.submit(run.Partial(add))
    finally:
        home.chmod(0o755)


def test_a_home_under_a_file_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("NEMO_RUN_K8S_HOME", str(tmp_path / "file" / "home"))
    with pytest.raises(run.NemoRunError, match="NEMO_RUN_K8S_HOME"):
        run.submit(run.Partial(add))
    with pytest.raises(RecordsError, match="NEMO_RUN_K8S_HOME"):
        run.Job.from_id("x")


def test_a_relative_home_works_with_another_workdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "here").mkdir()
    (tmp_path / "there").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    monkeypatch.setenv("NEMO_RUN_K8S_HOME", "relative-home")
    job = run.run(run.Partial(add, a=40), LocalExecutor(workdir=str(tmp_path / "there")))
    assert job.result() == 42
    assert (tmp_path / "here" / "relative-home" / "jobs" / job.id).is_dir()


# --------------------------------------------------------------------------- damaged job files


def test_show_on_a_truncated_manifest_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    job = run.run(run.Partial(add))
    manifest = Path(job.record.job_dir) / "bundle" / "manifest.json"
    manifest.write_text(manifest.read_text()[:40])
    assert "manifest.json is not valid JSON" in cli_error(capsys, "show", job.id)
    assert "manifest.json is not valid JSON" in cli_error(
        capsys, "show", job.id, "--format", "flat"
    )


def test_a_damaged_result_is_a_clear_error() -> None:
    job = run.run(run.Partial(add))
    (Path(job.record.job_dir) / "output" / "result.pkl").write_bytes(b"\x80\x05garbage")
    with pytest.raises(BundleError, match=r"result\.pkl cannot be read"):
        job.result()


def test_a_damaged_exit_status_reads_as_failed_saying_so(tmp_path: Path) -> None:
    path = tmp_path / "exit.json"
    for text in ('{"state": "SUCC', "[]", '{"state": "MAYBE"}', '{"exit_codes": {"x": 1}}'):
        path.write_text(text)
        status = ExitStatus.read(path)
        assert status is not None and status.state == "FAILED"
        assert "is damaged" in status.reason


def test_a_damaged_exit_status_of_a_local_job_is_reported_not_raised() -> None:
    job = run.submit(run.Partial(add))
    job.wait()
    (Path(job.record.job_dir) / "exit.json").write_text("{")
    handle = job.record.handle
    assert LocalExecutor.state(handle) is run.JobState.FAILED
    assert "exit.json is damaged" in LocalExecutor.reason(handle)


# --------------------------------------------------------------------------- bad arguments


def test_wait_with_nan_returns_at_once_with_an_error() -> None:
    job = run.submit(run.Partial(sleep_forever))
    try:
        for timeout in (math.nan, -1, "10"):
            with pytest.raises(ValueError, match="timeout must be seconds >= 0"):
                job.wait(timeout)  # type: ignore[arg-type]
    finally:
        job.cancel()


def test_from_yaml_reads_a_file_named_in_upper_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"no such YAML file: conf\.YAML"):
        run.from_yaml("conf.YAML")
    Path("conf.YAML").write_text(f"_target_: {__name__}.add\n_partial_: true\na: 5\n")
    assert run.from_yaml("conf.YAML").a == 5


FACTORY = """
def train(steps: list[int], opts: dict[str, int] | None = None) -> int:
    return sum(steps)
"""


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("steps=[1, 2", "is not valid YAML"),
        ("steps=notalist", "expects a list"),
        ("steps=[1, two]", "'two' in '[1, two]' is not a int"),
        ("opts={a: [1}", "fits none of"),
    ],
)
def test_cli_override_errors_are_one_line(
    override: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "factory.py").write_text(FACTORY)
    err = cli_error(capsys, "dryrun", "--partial", f"{tmp_path}/factory.py:train", override)
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "make",
    [
        lambda: LocalExecutor(env_vars={"A": "x\0y"}),
        lambda: run.DockerExecutor(env_vars={"A": "x\0y"}),
        lambda: run.Script(inline="true", env_vars={"A": "x\0y"}),
    ],
)
def test_a_nul_in_an_env_value_is_refused_before_anything_runs(make: object) -> None:
    with pytest.raises((InvalidOptionError, ConfigError), match="contains a NUL character"):
        make()  # type: ignore[operator]


def test_an_unexpected_error_is_still_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something nobody translated")

    monkeypatch.setattr(cli, "_cmd_list", broken)
    err = cli_error(capsys, "list")
    assert "RuntimeError: something nobody translated" in err and "NEMO_RUN_K8S_DEBUG=1" in err


# --------------------------------------------------------------------------- killed by a signal


def test_a_local_job_killed_by_a_signal_says_which() -> None:
    job = run.submit(run.Partial(sleep_forever))
    pid = job.record.handle["pid"]
    deadline = time.monotonic() + 20
    children: list[int] = []
    while not children and time.monotonic() < deadline:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        children = [int(p) for p in out.split()]
        time.sleep(0.05)
    os.kill(children[0], signal.SIGKILL)
    assert job.wait(30) is run.JobState.FAILED
    assert "killed by SIGKILL" in job.reason()


def test_docker_and_kubernetes_reasons_name_the_signal(tmp_path: Path) -> None:
    from nemo_run_k8s.executors.docker.supervisor import final_state
    from nemo_run_k8s.executors.kubernetes.client import pod_reasons

    assert final_state(tmp_path, {0: 137}) == ("FAILED", "node 0 exited with code 137 (SIGKILL)")
    pod = {
        "metadata": {"name": "p"},
        "status": {"containerStatuses": [{"state": {"terminated": {"exitCode": 143}}}]},
    }
    assert pod_reasons(pod, None)[1] == ["pod p: None with exit code 143, killed by SIGTERM"]


def test_the_manifest_of_a_bundle_stays_json(tmp_path: Path) -> None:
    bundle = make_bundle(run.Partial(add), tmp_path / "b")
    assert json.loads((bundle.path / "manifest.json").read_text())["task_kind"] == "partial"
