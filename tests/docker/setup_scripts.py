"""Run the project's setup scripts (.ci/setup-*.sh, images/build.sh) from tests."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import REPO_ROOT


def running_in_ci() -> bool:
    """Whether the ``CI`` environment variable asks for strict behaviour."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def run_script(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """Run one of the project's bash scripts from the repository root; fail the test if it fails."""
    try:
        proc = subprocess.run(
            ["bash", *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`bash {' '.join(args)}` did not finish within {timeout:.0f}s")
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.splitlines()[-30:])
        pytest.fail(f"`bash {' '.join(args)}` exited {proc.returncode}:\n{tail}")
    return proc


def script_result(*args: str) -> str:
    """The last line a setup script printed on stdout (the image it built or found)."""
    lines = run_script(*args).stdout.split()
    if not lines:
        pytest.fail(f"`bash {' '.join(args)}` printed nothing on stdout")
    return lines[-1]
