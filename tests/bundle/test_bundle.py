"""Bundles: what is written, its hash, what travels by value, what is refused."""

from __future__ import annotations

import dataclasses
import importlib
import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import cloudpickle
import fiddle as fdl
import pytest
import yaml

import nemo_run_k8s as run
from nemo_run_k8s.bundle.files import Bundle, make_bundle
from nemo_run_k8s.spec import Resources
from tests.conftest import child_env, jobs_created


def train(lr: float = 0.1, steps: int = 3, optimizer: object = None) -> float:
    return lr * steps


@dataclasses.dataclass
class Optimizer:
    name: str = "adam"
    lock: object = None


class Model:
    def __init__(self, width: int = 4):
        self.width = width


def test_bundle_files_and_manifest(tmp_path: Path) -> None:
    task = run.Partial(train, lr=0.5, optimizer=run.Config(Optimizer, name="sgd"))
    bundle = make_bundle(task, tmp_path / "b", Resources(num_nodes=2, nproc_per_node=4))

    names = sorted(p.name for p in bundle.path.iterdir())
    assert names == ["config.yaml", "manifest.json", "task.pkl"]
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    assert manifest == bundle.manifest
    assert manifest["format"] == 1
    assert manifest["task_kind"] == "partial"
    assert manifest["target"] == f"{__name__}.train"
    assert manifest["python"] == "{}.{}.{}".format(*sys.version_info[:3])
    assert manifest["versions"]["cloudpickle"] == cloudpickle.__version__
    assert manifest["versions"]["nemo_run_k8s"] == run.__version__
    assert manifest["versions"]["fiddle"] not in ("", "unknown")
    assert manifest["resources"] == {"num_nodes": 2, "nproc_per_node": 4, "gpus_per_node": 0}
    assert "lr = 0.5" in manifest["flattened_config"]
    assert "optimizer.name = 'sgd'" in manifest["flattened_config"]

    config = yaml.safe_load((bundle.path / "config.yaml").read_text())
    assert config["_target_"] == f"{__name__}.train"
    assert config["_partial_"] is True
    assert config["optimizer"]["name"] == "sgd"
    assert fdl.build(Bundle.open(bundle.path).load_task())() == 1.5


def test_write_is_atomic_and_leaves_no_temp_dirs(tmp_path: Path) -> None:
    make_bundle(run.Partial(train, lr=1.0), tmp_path / "b")
    make_bundle(run.Partial(train, lr=1.0), tmp_path / "b")  # same content: kept
    replaced = make_bundle(run.Partial(train, lr=2.0), tmp_path / "b")  # new content: replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
    assert Bundle.open(tmp_path / "b").sha256 == replaced.sha256
    assert fdl.build(replaced.load_task())() == 6.0


def test_same_task_same_hash_different_value_different_hash(tmp_path: Path) -> None:
    a = make_bundle(run.Partial(train, lr=0.1, steps=3), tmp_path / "a")
    b = make_bundle(run.Partial(train, lr=0.1, steps=3), tmp_path / "b")
    c = make_bundle(run.Partial(train, lr=0.2, steps=3), tmp_path / "c")
    assert a.sha256 == b.sha256
    assert a.sha256 != c.sha256
    script_a = make_bundle(run.Script(inline="echo a"), tmp_path / "sa")
    script_b = make_bundle(run.Script(inline="echo b"), tmp_path / "sb")
    assert script_a.sha256 != script_b.sha256


def _user_module(tmp_path: Path, name: str) -> str:
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            SCALE = 10

            class Factor:
                def __init__(self, n=1):
                    self.n = n

            def scaled(x, factor=None):
                n = factor.n if factor is not None else 1
                return {"value": x * SCALE * n, "module": __name__}
            """
        )
    )
    return name


def test_hash_is_stable_across_processes(tmp_path: Path) -> None:
    """Two fresh interpreters (different hash seeds) bundle the same by-value task identically.

    The task holds a function and a class from a user module and a class from
    ``__main__``, all pickled by value.
    """
    module = _user_module(tmp_path, "stable_mod")
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import nemo_run_k8s as run
        from nemo_run_k8s.bundle.files import make_bundle
        import {module}

        class Local:
            def __call__(self, x):
                return {module}.scaled(x, {module}.Factor(2))

        task = run.Partial(
            {module}.scaled, x=run.Config(Local), factor=run.Config({module}.Factor, n=3)
        )
        print(make_bundle(task, sys.argv[1]).sha256)
        """
    )
    hashes = set()
    for i, seed in enumerate(("1", "2")):
        out = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / f"b{i}")],
            env=child_env(PYTHONHASHSEED=seed),
            capture_output=True,
            text=True,
            check=True,
        )
        hashes.add(out.stdout.strip())
    assert len(hashes) == 1, hashes


def test_user_module_travels_by_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = _user_module(tmp_path, "shipped_mod")
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = importlib.import_module(module)
    bundle = make_bundle(run.Partial(mod.scaled, x=4), tmp_path / "bundle")
    assert bundle.manifest["by_value_modules"] == [module]
    # Loaded where the module cannot be imported, the function still runs.
    code = (
        "import sys, fiddle as fdl; from nemo_run_k8s.bundle.files import Bundle; "
        "print(fdl.build(Bundle.open(sys.argv[1]).load_task())()['value'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(bundle.path)],
        env=child_env(),
        cwd="/",
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "40"


def test_installed_modules_travel_by_reference(tmp_path: Path) -> None:
    bundle = make_bundle(run.Partial(json.dumps, obj=[1]), tmp_path / "b")
    assert bundle.manifest["by_value_modules"] == []
    assert b"json" in (bundle.path / "task.pkl").read_bytes()


def test_unpicklable_value_is_named_by_path(tmp_path: Path, home: Path) -> None:
    task = run.Partial(train, optimizer=run.Config(Optimizer, lock=threading.Lock()))
    with pytest.raises(run.BundleError) as info:
        make_bundle(task, tmp_path / "b")
    assert "<root>.optimizer.lock: cannot pickle '_thread.lock'" in str(info.value)
    assert not (tmp_path / "b").exists()

    with pytest.raises(run.BundleError, match=r"<root>\.optimizer\.lock"):
        run.submit(task, run.LocalExecutor())
    assert jobs_created(home) == []


def test_config_of_non_callable_class_is_refused_with_hint(home: Path) -> None:
    with pytest.raises(run.ConfigError) as info:
        run.submit(run.Config(Model, width=8), run.LocalExecutor())
    message = str(info.value)
    assert "not callable" in message
    assert "run.Partial(Model, ...)" in message
    assert jobs_created(home) == []


def test_a_plain_function_is_not_a_task(home: Path) -> None:
    with pytest.raises(run.ConfigError, match=r"run\.Partial\(train"):
        run.submit(train, run.LocalExecutor())  # type: ignore[arg-type]
    assert jobs_created(home) == []


def test_config_yaml_only_when_yaml_can_hold_the_task(tmp_path: Path) -> None:
    yamlable = make_bundle(run.Partial(train, lr=0.3), tmp_path / "y")
    assert (yamlable.path / "config.yaml").exists()
    with_lambda = make_bundle(run.Partial(train, optimizer=lambda: 1), tmp_path / "l")
    assert not (with_lambda.path / "config.yaml").exists()
    assert fdl.build(with_lambda.load_task())(lr=1.0) == 3.0


def test_script_bundle_carries_the_text(tmp_path: Path) -> None:
    script_file = tmp_path / "train.sh"
    script_file.write_text("echo training\n")
    bundle = make_bundle(run.Script(str(script_file), args=["--x", "1"]), tmp_path / "b")
    names = sorted(p.name for p in bundle.path.iterdir())
    assert names == ["manifest.json", "script.sh", "task.pkl"]
    assert (bundle.path / "script.sh").read_text() == "echo training\n"
    assert bundle.manifest["task_kind"] == "script"
    assert bundle.manifest["target"] == str(script_file)
    # The script's text is part of the hash: editing the file changes the bundle.
    script_file.write_text("echo changed\n")
    changed = make_bundle(run.Script(str(script_file), args=["--x", "1"]), tmp_path / "c")
    assert changed.sha256 != bundle.sha256


def test_corrupt_bundle_is_refused_before_unpickling(tmp_path: Path) -> None:
    bundle = make_bundle(run.Partial(train), tmp_path / "b")
    (bundle.path / "task.pkl").write_bytes(b"not a pickle")
    with pytest.raises(run.BundleError, match="corrupt"):
        Bundle.open(bundle.path).load_task()
    with pytest.raises(run.BundleError, match=r"no manifest\.json"):
        Bundle.open(tmp_path)
