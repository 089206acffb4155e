"""The README's Docker block runs as written, after the quick start it builds on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.package.readme import needs_docker, python_blocks, run_blocks

pytestmark = pytest.mark.docker


def test_the_readme_docker_block_runs(docker_client: Any, made_images: Any, tmp_path: Path) -> None:
    blocks = python_blocks()
    docker = [b for b in blocks if needs_docker(b)]
    out = run_blocks([blocks[0], *docker], tmp_path, timeout=600)
    assert out.strip().endswith("{'loss': 0.000977}")
