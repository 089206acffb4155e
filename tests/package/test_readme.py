"""The README's code runs as written (its Docker block: tests/docker/test_readme_docker.py)."""

from __future__ import annotations

from pathlib import Path

from tests.package.readme import needs_docker, python_blocks, run_blocks


def test_the_readme_has_a_quick_start_and_a_docker_block() -> None:
    blocks = python_blocks()
    assert "run.submit(" in blocks[0]
    assert any(needs_docker(block) for block in blocks)


def test_the_readme_blocks_run_as_written(tmp_path: Path) -> None:
    out = run_blocks([b for b in python_blocks() if not needs_docker(b)], tmp_path)
    assert "training a 2x1024 model with lr=0.0003" in out  # the quick start's logs
    assert "{'loss': 0.000977}" in out  # its result
    assert "kind: PyTorchJob" in out  # the Kubernetes dry run
    assert out.count("SUCCEEDED") >= 4  # the sweep's four jobs
