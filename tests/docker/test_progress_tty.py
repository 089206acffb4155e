"""Build and push progress on a real engine, seen on a pseudo-terminal and in a pipe."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.docker.test_image_builder import REGISTRY, registry_answers
from tests.progress.tty import ended_cleanly, run_on_tty

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]
REPO = Path(__file__).resolve().parents[2]
JOB = """
import nemo_run_k8s as run


def work() -> int:
    return 7


def factory() -> run.Partial:
    return run.Partial(work)
"""


def code_dir(tmp_path: Path) -> Path:
    """A code directory of about 2 MB whose content is new, so its layer is built."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "progress_job.py").write_text(textwrap.dedent(JOB))
    (code / "data.bin").write_bytes(os.urandom(2_000_000))
    return code


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "NEMO_RUN_K8S_PROGRESS")}
    return {**env, "NEMO_RUN_K8S_HOME": str(home), "PYTHONPATH": str(REPO), **extra}


def test_cli_build_on_a_terminal_shows_each_step_and_ends_cleanly(
    base_image: str, made_images: Any, job_home: Path, tmp_path: Path
) -> None:
    code_dir(tmp_path)
    command = [sys.executable, "-m", "nemo_run_k8s.cli", "build", "code/progress_job.py:factory"]
    command += ["--executor", "docker", "--code-dir", "code", "--base-image", base_image]
    result = run_on_tty(command, env_for(job_home), tmp_path, timeout=540)
    text = result.terminal
    env_ref = re.search(r"building (nemo-run-k8s/env:\w+) \(context ([\d.]+) MB\)", text)
    made_images.add(result.stdout.strip(), *(env_ref.groups()[:1] if env_ref else ()))
    assert result.returncode == 0, text
    assert re.fullmatch(r"nemo-run-k8s/job:\w+\n", result.stdout)  # stdout: the ref only
    assert env_ref and float(env_ref[2]) >= 2.0, text  # the context holds the 2 MB of code
    assert re.search(r"step \d+/\d+ reused: ", text), text  # the base layers come from cache
    assert re.search(r"step \d+/\d+ built: COPY code/ /workspace/", text), text
    assert re.search(
        r"built nemo-run-k8s/env:\w+ in [\d.]+s: \d+ step\(s\) reused, \d+ built", text
    )
    assert ended_cleanly(text), text[-2000:]


def test_push_progress_in_a_pipe_has_bytes_per_layer_and_the_total(
    base_image: str, made_images: Any, job_home: Path, tmp_path: Path
) -> None:
    if not registry_answers():
        pytest.skip(f"no registry answers on {REGISTRY} (.ci/setup-registry.sh starts one)")
    code_dir(tmp_path)
    repo = f"{REGISTRY}/nemo-run-k8s-test/progress-{secrets.token_hex(3)}"
    script = (
        "import sys\n"
        "sys.path.insert(0, 'code')\n"
        "import nemo_run_k8s as run\n"
        "import progress_job\n"
        f"executor = run.DockerExecutor(base_image={base_image!r}, code_dir='code')\n"
        "image = run.build_image(progress_job.factory(), executor)\n"
        "print(image.ref, image.env_ref)\n"
        f"print(run.push_image(image, {repo!r}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env=env_for(job_home),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=540,
    )
    refs = proc.stdout.split()
    made_images.add(*refs[:2])
    if len(refs) > 2:
        made_images.add_tag(f"{repo}:{refs[0].rsplit(':', 1)[1]}")
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert "\x1b[" not in err
    assert f"nemo-run-k8s: pushing {repo}:" in err
    assert re.search(r"nemo-run-k8s:   layer \w+: pushed [\d.]+ [kMG]?B", err), err
    assert re.search(
        rf"nemo-run-k8s: pushed {re.escape(repo)}@sha256:\w+: \d+ layer\(s\), \d+ already there, "
        r"[\d.]+ [kMG]?B sent in [\d.]+s",
        err,
    ), err


def test_a_base_image_pull_shows_its_layers_and_a_missing_one_says_so(
    base_image: str, docker_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from nemo_run_k8s import progress
    from nemo_run_k8s.errors import ImageBuildError
    from nemo_run_k8s.image.builder import ImageBuilder

    if not registry_answers():
        pytest.skip(f"no registry answers on {REGISTRY} (.ci/setup-registry.sh starts one)")
    ref = f"{REGISTRY}/nemo-run-k8s-test/pull-{secrets.token_hex(3)}:base"
    repo, tag = ref.rsplit(":", 1)
    docker_client.images.get(base_image).tag(repo, tag)
    for chunk in docker_client.api.push(repo, tag=tag, stream=True, decode=True):
        assert "error" not in chunk, chunk
    docker_client.images.remove(ref)  # the base stays; only this name goes, so it is pulled
    saved = progress.set_progress("plain")
    try:
        builder = ImageBuilder()
        image = builder._pull(ref)
        with pytest.raises(ImageBuildError, match="cannot be pulled"):
            builder._pull(f"{REGISTRY}/nemo-run-k8s-test/no-such-base:never")
    finally:
        progress.set_progress(saved)
        docker_client.images.remove(ref)
    assert image.id == docker_client.images.get(base_image).id
    err = capsys.readouterr().err
    assert f"nemo-run-k8s: pulling {ref}" in err
    assert re.search(rf"nemo-run-k8s: pulled {re.escape(ref)}: \d+ layer\(s\)", err), err


def test_cli_run_on_kubernetes_builds_pushes_waits_and_merges_every_node(
    base_image: str, made_images: Any, job_home: Path, tmp_path: Path
) -> None:
    """The whole of `nemo-run-k8s run --executor k8s` on a terminal: a real build and push to
    the local registry, then the fake API server (its pods pull the image for a while)."""
    from tests.k8s.fake_apiserver import FakeApiServer, JobProgram
    from tests.k8s.lifecycle import outcome_line

    if not registry_answers():
        pytest.skip(f"no registry answers on {REGISTRY} (.ci/setup-registry.sh starts one)")
    code_dir(tmp_path)
    repo = f"{REGISTRY}/nemo-run-k8s-test/run-{secrets.token_hex(3)}"
    with FakeApiServer() as server:
        server.program = JobProgram(
            pods_after=0.2,
            running_after=6.0,  # the first look at the pods loads the client's models: seconds
            finish_after=7.0,
            log_lines=["epoch 1", "epoch 2"],
            outcome_line=outcome_line(("success", 7)),
            pod_events=[("Normal", "Pulling", 'Pulling image "{pod}"')],
        )
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        command = [sys.executable, "-m", "nemo_run_k8s.cli", "run", "code/progress_job.py:factory"]
        command += ["--executor", "k8s", "--num-nodes", "2", "--code-dir", "code"]
        command += ["--base-image", base_image, "--image-repo", repo]
        env = env_for(job_home, KUBECONFIG=str(kubeconfig))
        result = run_on_tty(command, env, tmp_path, timeout=540)
    made_images.add_from_records(job_home)
    made_images.add(*re.findall(r"nemo-run-k8s/(?:env|job):\w+", result.terminal))
    made_images.add_tag(repo)
    for tag in set(re.findall(rf"{re.escape(repo)}:(\w+)", result.terminal)):
        made_images.add_tag(f"{repo}:{tag}")
    text = result.terminal
    assert result.returncode == 0, text[-3000:]
    assert result.stdout.splitlines()[-1] == "result: 7"
    assert "[master0 rank0] epoch 1" in result.stdout
    assert "[worker0 rank1] worker 0: epoch 2" in result.stdout  # every node's log, merged
    assert "NEMO_RUN_K8S_OUTCOME" not in result.stdout  # protocol, not output
    assert re.search(r"pushed .*@sha256:\w+: \d+ layer\(s\)", text), text[-3000:]
    assert re.search(r"master0: Pending: pulling image", text), text[-3000:]
    assert "RUNNING after" in text
    assert ended_cleanly(text)
