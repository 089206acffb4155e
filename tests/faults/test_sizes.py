"""Large values stay out of the manifest, the dry run and config.yaml: summarised, not printed.

Sizes are asserted, never times; bench/bench_sizes.py measures how long a
submit takes against one plain pickle of the same task.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

import nemo_run_k8s as run
from nemo_run_k8s.bundle.files import make_bundle

KB = 1024


def consume(data: object = None, other: object = None) -> int:
    return 0


def test_a_100_mb_bytes_argument_gives_a_small_manifest_and_dry_run(tmp_path: Path) -> None:
    data = os.urandom(100 * 1024 * 1024)
    plan = run.dryrun(run.Partial(consume, data=data))
    assert len(json.dumps(plan.manifest)) < 64 * KB
    assert len(str(plan)) < 64 * KB
    digest = hashlib.sha256(data).hexdigest()[:16]
    assert f"data = <bytes: {len(data):,} bytes, sha256:{digest}>" in str(plan)


def test_a_five_million_item_list_is_one_line(tmp_path: Path) -> None:
    bundle = make_bundle(run.Partial(consume, data=list(range(5_000_000))), tmp_path / "b")
    manifest = (bundle.path / "manifest.json").read_text()
    assert len(manifest) < 64 * KB
    assert "data = <list: 5,000,000 items of int, sha256:" in bundle.manifest["flattened_config"]
    # A summary is not the value: config.yaml is left out (and says why) rather than wrong.
    assert not (bundle.path / "config.yaml").exists()
    assert "5,000,000 items" in bundle.manifest["config_yaml_omitted"]
    task = bundle.load_task()  # a Partial of plain values is kept built: a functools.partial
    assert task.keywords["data"][4_999_999] == 4_999_999  # the task itself is whole


def test_many_configs_and_long_strings_are_cut(tmp_path: Path) -> None:
    layers = [run.Config(consume, data=i, other="x" * 1000) for i in range(20_000)]
    bundle = make_bundle(run.Partial(consume, data=layers), tmp_path / "b")
    flat = bundle.manifest["flattened_config"]
    assert len((bundle.path / "manifest.json").read_text()) < 64 * KB
    assert flat.startswith(". = Partial[")
    assert "data[0].other = <str: 1,000 characters, sha256:" in flat
    assert flat.endswith("the task holds more values)")


def test_small_values_print_as_before(tmp_path: Path) -> None:
    task = run.Partial(consume, data=[1, 2], other={"a": "b" * 10})
    bundle = make_bundle(task, tmp_path / "b")
    assert bundle.manifest["flattened_config"].splitlines() == [
        f". = Partial[{__name__}.consume]",
        "data[0] = 1",
        "data[1] = 2",
        "other['a'] = 'bbbbbbbbbb'",
    ]
    assert (bundle.path / "config.yaml").exists() and "config_yaml_omitted" not in bundle.manifest


def test_a_large_inline_script_is_cut_in_the_manifest(tmp_path: Path) -> None:
    script = run.Script(inline="echo hi\n" + "# filler\n" * 200_000)
    bundle = make_bundle(script, tmp_path / "b")
    assert len((bundle.path / "manifest.json").read_text()) < 64 * KB
    assert (bundle.path / "script.sh").stat().st_size > 1_000_000  # the script is whole


@pytest.mark.parametrize("size", [10, 5000])
def test_deep_configs_are_a_clear_error_not_a_recursion_error(size: int) -> None:
    deep = run.Config(consume)
    for _ in range(size):
        deep = run.Config(consume, data=deep)
    if size < 100:
        run.dryrun(run.Partial(consume, data=deep))
        return
    with pytest.raises(run.NemoRunError, match="nested too deeply") as caught:
        run.dryrun(run.Partial(consume, data=deep))
    assert "<root>.data.data" in str(caught.value) and len(str(caught.value)) < 1000
    with pytest.raises(run.NemoRunError, match="nested too deeply"):
        run.to_yaml(run.Partial(consume, data=deep))
    with pytest.raises(run.NemoRunError, match="nested too deeply"):
        run.submit(run.Partial(consume, data=deep))


def test_cyclic_configs_are_a_clear_error_naming_the_path() -> None:
    node = run.Config(consume)
    node.data = [node]
    with pytest.raises(run.NemoRunError, match=r"<root>\.data\.data\[0\]: the config contains"):
        run.dryrun(run.Partial(consume, data=node))
    loop: list = []
    loop.append(loop)
    with pytest.raises(run.NemoRunError, match="contains itself"):
        run.Partial(consume, data=loop)
    task = run.Partial(consume, data=[])
    task.data.append(task.data)  # made after the config was
    with pytest.raises(run.NemoRunError, match=r"<root>\.data\[0\]: the config contains"):
        run.submit(task)


def test_a_deep_list_argument_is_a_clear_error() -> None:
    deep: list = []
    for _ in range(5000):
        deep = [deep, run.Config(consume)]
    with pytest.raises(run.NemoRunError, match="nested too deeply"):
        run.Partial(consume, data=deep)


def test_the_size_benchmark_prints_its_table_against_one_pickle() -> None:
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT, child_env

    proc = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "bench" / "bench_sizes.py"),
            "-n",
            "1",
            "--scale",
            "0.002",
        ],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [
        line
        for line in proc.stdout.splitlines()
        if "x" in line and ("bytes" in line or "ints" in line)
    ]
    steps = [
        ("cloudpickle.dumps (baseline)" in r, "run.dryrun" in r, "run.submit" in r) for r in rows
    ]
    assert len(rows) == 6 and all(any(s) for s in steps), proc.stdout
