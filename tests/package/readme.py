"""The README's Python blocks, as a user would paste them into one script."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT, child_env

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def python_blocks() -> list[str]:
    return _BLOCK.findall((REPO_ROOT / "README.md").read_text())


def run_blocks(blocks: list[str], workdir: Path, timeout: float = 300) -> str:
    """Runs ``blocks`` in order as one script in a fresh interpreter; returns its stdout."""
    script = workdir / "readme_blocks.py"
    script.write_text("\n\n".join(blocks))
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=child_env(),
        timeout=timeout,
    )
    assert proc.returncode == 0, f"README blocks failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def needs_docker(block: str) -> bool:
    return "DockerExecutor(" in block
