"""Fixtures shared by every test: each test gets its own NEMO_RUN_K8S_HOME.

Suites that build images or talk to a cluster (tests/docker, tests/cluster) override ``home``
with ``session_home``: one home for the whole session, so its build caches are reused.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh records home for each test, so no test sees another's jobs (or the user's)."""
    path = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("NEMO_RUN_K8S_HOME", str(path))
    return path


@pytest.fixture(scope="session")
def job_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One NEMO_RUN_K8S_HOME (records, bundles, build caches) for the whole session."""
    path = tmp_path_factory.mktemp("nemo-run-k8s-home")
    old = os.environ.get("NEMO_RUN_K8S_HOME")
    os.environ["NEMO_RUN_K8S_HOME"] = str(path)
    yield path
    if old is None:
        os.environ.pop("NEMO_RUN_K8S_HOME", None)
    else:
        os.environ["NEMO_RUN_K8S_HOME"] = old


@pytest.fixture
def session_home(job_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The session's home for this test too (what ``home`` is in the suites that share one)."""
    monkeypatch.setenv("NEMO_RUN_K8S_HOME", str(job_home))
    return job_home


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
