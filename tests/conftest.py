"""Fixtures shared by every test: each test gets its own NEMO_RUN_K8S_HOME."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh records home for each test, so no test sees another's jobs (or the user's)."""
    path = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("NEMO_RUN_K8S_HOME", str(path))
    return path


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child Python that can import nemo_run_k8s and nothing of tmp_path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    # `python` in scripts is this interpreter, so the guide's `python train.py` lines work.
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    env.update(extra)
    return env


def jobs_created(home: Path) -> list[str]:
    """What a submit left behind: job directories and job records."""
    from nemo_run_k8s.records import Records

    dirs = sorted(p.name for p in (home / "jobs").glob("*")) if (home / "jobs").exists() else []
    return dirs + [r.id for r in Records(home).list()]
