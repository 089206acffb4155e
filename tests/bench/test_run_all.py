"""The benchmark harness: what its table says, and that failures show instead of vanishing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

BENCH = REPO_ROOT / "bench"
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH / "workloads"))

import harness  # noqa: E402
from codedirs import change_one_file, make_code_dir  # noqa: E402


def test_table_gives_median_min_max_and_ours_over_peer_ratio() -> None:
    row = harness.Row(
        "local run",
        harness.Side("nemo_run_k8s", [1.0, 3.0, 2.0]),
        [harness.Side("peer", [4.0, 8.0, 6.0])],
    )
    lines = harness.table_rows([row])
    assert lines[1][:6] == ["local run", "nemo_run_k8s", "2000", "1000", "3000", "-"]
    assert lines[2][1:6] == ["peer", "6000", "4000", "8000", "0.33x"]


def test_a_peer_without_samples_still_prints_with_its_note() -> None:
    row = harness.Row(
        "import",
        harness.Side("nemo_run_k8s", [0.02]),
        [harness.Side("NeMo-Run", note="not installed: pip install failed (exit 1): ERROR: x")],
    )
    text = harness.format_text([row])
    assert "NeMo-Run" in text and "not installed: pip install failed" in text
    md = harness.format_markdown([row]).splitlines()
    assert len(md) == 4 and md[3].startswith("|  | NeMo-Run | - | - | - | - |")


def test_runner_error_carries_the_runners_last_error_line(tmp_path: Path) -> None:
    script = tmp_path / "fails.py"
    script.write_text("import sys\nprint('noise')\nraise ValueError('no base image here')\n")
    with pytest.raises(harness.RunnerError, match="ValueError: no base image here"):
        harness.run_runner([sys.executable, str(script)], env={})


def test_runner_json_is_read_from_its_last_line(tmp_path: Path) -> None:
    script = tmp_path / "ok.py"
    script.write_text(
        f"print('building...')\nprint({json.dumps(json.dumps({'samples': [0.5]}))})\n"
    )
    assert harness.run_runner([sys.executable, str(script)], env={}) == {"samples": [0.5]}


def test_missing_peer_python_gives_an_empty_side_with_the_install_note() -> None:
    side = harness.sample_whole_process("peer", None, {}, 3, note="not installed: boom")
    assert side.samples == [] and side.note == "not installed: boom"


def test_code_dirs_have_the_asked_size_and_the_same_bytes_every_time(tmp_path: Path) -> None:
    a = make_code_dir(tmp_path / "a", 1)
    b = make_code_dir(tmp_path / "b", 1)
    size = sum(p.stat().st_size for p in (a / "benchcode" / "data").iterdir())
    assert size == 2**20 - 2**20 % 100
    blob = "benchcode/data/blob-042.bin"
    assert (a / blob).read_bytes() == (b / blob).read_bytes()
    change_one_file(a, 7)
    assert (a / "benchcode" / "model.py").read_text() == "VERSION = 7\n"


def test_unknown_row_is_refused_with_the_valid_names() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--rows", "imprt"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "unknown rows ['imprt']" in done.stderr and "import, local, image" in done.stderr
