"""``import nemo_run_k8s`` stays light: no docker, kubernetes or yaml until they are used."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO_ROOT as REPO


def run_fresh(code: str) -> str:
    """Runs ``code`` in a fresh interpreter with the repo importable; returns its stdout."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_import_does_not_load_backends_or_yaml():
    out = run_fresh(
        "import json, sys\n"
        "import nemo_run_k8s as run\n"
        "heavy = ['docker', 'kubernetes', 'yaml', 'hydra', 'omegaconf', 'rich']\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    assert json.loads(out) == []


def test_yaml_is_loaded_on_first_use():
    out = run_fresh(
        "import sys\n"
        "import nemo_run_k8s as run\n"
        "from tests.config.standins import DataModule\n"
        "assert 'yaml' not in sys.modules\n"
        "print(run.to_yaml(run.Config(DataModule, batch_size=2)), end='')\n"
        "assert 'yaml' in sys.modules\n"
    )
    assert out == "_target_: tests.config.standins.DataModule\nbatch_size: 2\n"


def test_every_public_name_resolves():
    out = run_fresh(
        "import nemo_run_k8s as run\n"
        "print([n for n in run.__all__ if getattr(run, n, None) is None])\n"
    )
    assert out.strip() == "[]"


def test_objects_of_fiddles_import_are_frozen_with_the_first_config():
    # They live as long as the process; frozen, neither later collections nor exit walk them.
    out = run_fresh(
        "import gc\n"
        "import nemo_run_k8s as run\n"
        "before = gc.get_freeze_count()\n"
        "run.Config(dict)\n"
        "print(before, gc.get_freeze_count())\n"
    )
    before, after = map(int, out.split())
    assert before == 0 and after > 10_000
