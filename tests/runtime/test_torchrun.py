"""torchrun's flag spellings follow the torch in the image (1.x: underscores only; 2.x: dashes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import nemo_run_k8s as run
from nemo_run_k8s.bundle.files import make_bundle
from nemo_run_k8s.bundle.outcome import read_outcome
from nemo_run_k8s.runtime import torchrun
from tests.conftest import child_env

# The shape of the parser in torch 1.13's torch/distributed/run.py (underscores only) ...
TORCH_1_13_PARSER = """
def get_args_parser():
    parser = ArgumentParser(description="Torch Distributed Elastic Training Launcher")
    parser.add_argument("--nnodes", action=env, type=str, default="1:1")
    parser.add_argument("--nproc_per_node", action=env, type=str, default="1")
    parser.add_argument("--rdzv_backend", action=env, type=str, default="static")
    parser.add_argument("--node_rank", type=int, action=env, default=0)
    parser.add_argument("--master_addr", default="127.0.0.1", type=str, action=env)
    parser.add_argument("--master_port", default=29500, type=int, action=env)
    parser.add_argument("-m", "--module", action=check_env, help="--nproc-per-node in help text")
    return parser
"""
# ... and in torch 2.x (dashed first, the old spelling kept as an alias).
TORCH_2_PARSER = """
def get_args_parser() -> ArgumentParser:
    parser = ArgumentParser(description="Torch Distributed Elastic Training Launcher")
    parser.add_argument("--nnodes", action=env, type=str, default="1:1")
    parser.add_argument("--nproc-per-node", "--nproc_per_node", action=env, type=str)
    parser.add_argument("--node-rank", "--node_rank", type=int, action=env, default=0)
    parser.add_argument("--master-addr", "--master_addr", default="127.0.0.1", action=env)
    parser.add_argument("--master-port", "--master_port", default=29500, type=int, action=env)
    return parser
"""

# A stand-in torchrun that, like torch 1.13's, rejects dashed flags (argparse exits 2 with
# "unrecognized arguments"), then runs the module once per process with RANK set.
FAKE_TORCH_1_RUN = """
import argparse, json, os, subprocess, sys

parser = argparse.ArgumentParser(prog="run.py")
parser.add_argument("--nnodes")
parser.add_argument("--nproc_per_node")
parser.add_argument("--node_rank")
parser.add_argument("--master_addr")
parser.add_argument("--master_port")
parser.add_argument("-m", "--module", action="store_true")
parser.add_argument("target")
parser.add_argument("rest", nargs=argparse.REMAINDER)
args = parser.parse_args()
with open(os.environ["FAKE_TORCHRUN_ARGV"], "w") as f:
    json.dump(sys.argv[1:], f)
nproc = int(args.nproc_per_node)
procs = [
    subprocess.Popen(
        [sys.executable, "-m", args.target, *args.rest],
        env={**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(nproc)},
    )
    for rank in range(nproc)
]
sys.exit(max(p.wait() for p in procs))
"""


def fake_torch(root: Path, run_py: str) -> Path:
    """A package ``torch`` under ``root`` whose ``distributed/run.py`` is ``run_py``."""
    package = root / "torch" / "distributed"
    package.mkdir(parents=True)
    (root / "torch" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "run.py").write_text(textwrap.dedent(run_py))
    return root


def rank_and_world() -> str:
    return f"rank {os.environ['RANK']} of {os.environ['WORLD_SIZE']}"


def test_torch_1_13_gets_underscore_flags_and_torch_2_dashed_ones():
    assert torchrun.spellings(torchrun.declared_options(TORCH_1_13_PARSER)) == {
        "nnodes": "--nnodes",
        "nproc_per_node": "--nproc_per_node",
        "node_rank": "--node_rank",
        "master_addr": "--master_addr",
        "master_port": "--master_port",
    }
    assert torchrun.spellings(torchrun.declared_options(TORCH_2_PARSER)) == {
        "nnodes": "--nnodes",
        "nproc_per_node": "--nproc-per-node",
        "node_rank": "--node-rank",
        "master_addr": "--master-addr",
        "master_port": "--master-port",
    }


def test_a_torchrun_without_one_of_the_options_is_named():
    source = TORCH_2_PARSER.replace('"--master-port", "--master_port", ', "")
    with pytest.raises(torchrun.TorchrunUnavailable, match="--master_port"):
        torchrun.spellings(torchrun.declared_options(source))


def test_the_source_is_found_on_the_search_path_without_importing_torch(tmp_path: Path):
    root = fake_torch(tmp_path / "site", "raise SystemExit('imported!')\n" + TORCH_2_PARSER)
    source = torchrun.run_module_source([str(root)])
    assert source == root / "torch" / "distributed" / "run.py"
    assert "--node-rank" in torchrun.declared_options(source.read_text())
    assert torchrun.run_module_source([str(tmp_path / "empty")]) is None


def entrypoint_with_nproc_2(bundle: Path, output: Path, site: Path | None, **env: str):
    pythonpath = os.pathsep.join(
        [child_env()["PYTHONPATH"], *([str(site)] if site is not None else [])]
    )
    command = [sys.executable, "-m", "nemo_run_k8s.runtime.entrypoint", str(bundle)]
    return subprocess.run(
        [*command, "--output", str(output)],
        env=child_env(PYTHONPATH=pythonpath, PET_NPROC_PER_NODE="2", PET_NNODES="1", **env),
        capture_output=True, text=True, timeout=120, cwd="/",
    )  # fmt: skip


def test_entrypoint_starts_a_torch_1_style_torchrun_with_flags_it_accepts(tmp_path: Path):
    site = fake_torch(tmp_path / "site", FAKE_TORCH_1_RUN)
    bundle = make_bundle(run.Partial(rank_and_world), tmp_path / "b")
    argv_file = tmp_path / "argv.json"
    proc = entrypoint_with_nproc_2(
        bundle.path, tmp_path / "out", site, FAKE_TORCHRUN_ARGV=str(argv_file), MASTER_PORT="29511"
    )
    assert proc.returncode == 0, proc.stderr
    assert "unrecognized arguments" not in proc.stderr
    assert read_outcome(tmp_path / "out") == ("success", "rank 0 of 2")
    argv = json.loads(argv_file.read_text())
    assert argv[:5] == [
        "--nnodes=1",
        "--nproc_per_node=2",
        "--node_rank=0",
        "--master_addr=127.0.0.1",
        "--master_port=29511",
    ]
    assert argv[5:7] == ["-m", "nemo_run_k8s.runtime.entrypoint"]


def test_entrypoint_without_torch_says_a_multi_process_node_needs_it(tmp_path: Path):
    bundle = make_bundle(run.Partial(rank_and_world), tmp_path / "b")
    probe = subprocess.run(
        [sys.executable, "-c", "import importlib.util; print(importlib.util.find_spec('torch'))"],
        env=child_env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    if probe.stdout.strip() != "None":
        pytest.skip("this Python has torch installed; the no-torch path needs one without")
    proc = entrypoint_with_nproc_2(bundle.path, tmp_path / "out", None)
    assert proc.returncode == 3, proc.stderr
    assert "needs torch in the image" in proc.stderr
    assert "nproc_per_node=1" in proc.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# torch 1.13's Std and Std.from_str (torch/distributed/elastic/multiprocessing/api.py), verbatim
# but for the docstring: broken on Python 3.11+, where iterating a flag enum skips 0 and 3.
TORCH_1_13_STD = """
import re
from enum import IntFlag

_VALUE_REGEX = r"^[0-3]$"
_MAPPING_REGEX = r"^([0-9]+:[0-3],)*[0-9]+:[0-3]$"


class Std(IntFlag):
    NONE = 0
    OUT = 1
    ERR = 2
    ALL = OUT | ERR

    @classmethod
    def from_str(cls, vm):
        def to_std(v):
            v = int(v)
            for s in Std:
                if s == v:
                    return s
            # return None -> should NEVER reach here since we regex check input

        if re.match(_VALUE_REGEX, vm):  # vm is a number (e.g. 0)
            return to_std(vm)
        elif re.match(_MAPPING_REGEX, vm):  # vm is a mapping (e.g. 0:1,1:2)
            d = {}
            for m in vm.split(","):
                i, v = m.split(":")
                d[int(i)] = to_std(v)
            return d
        else:
            raise ValueError(f"{vm} does not match: <{_VALUE_REGEX}> or <{_MAPPING_REGEX}>")
"""

REPAIR_PROBE = """
from torch.distributed.elastic.multiprocessing.api import Std
from nemo_run_k8s.runtime import torchrun
before = Std.from_str("0")
repaired = torchrun.repair_std_from_str()
print(before, repaired, Std.from_str("0") is Std.NONE, Std.from_str("3") is Std.ALL,
      Std.from_str("0:3,1:0") == {0: Std.ALL, 1: Std.NONE}, torchrun.repair_std_from_str())
try:
    Std.from_str("7")
except ValueError as err:
    print("ValueError", err)
"""


@pytest.mark.skipif(sys.version_info < (3, 11), reason="the enum change that breaks it is 3.11's")
def test_torch_1_13_std_from_str_is_repaired_on_python_3_11(tmp_path: Path):
    site = fake_torch(tmp_path / "site", TORCH_1_13_PARSER)
    elastic = site / "torch" / "distributed" / "elastic" / "multiprocessing"
    elastic.mkdir(parents=True)
    (elastic.parent / "__init__.py").write_text("")
    (elastic / "__init__.py").write_text("")
    (elastic / "api.py").write_text(TORCH_1_13_STD)
    pythonpath = os.pathsep.join([child_env()["PYTHONPATH"], str(site)])
    proc = subprocess.run(
        [sys.executable, "-c", REPAIR_PROBE], env=child_env(PYTHONPATH=pythonpath),
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    # Unrepaired, "0" (torchrun's default --redirects/--tee) comes back as None.
    first, error = proc.stdout.splitlines()
    assert first == "None True True True True False"
    assert error.startswith("ValueError 7 does not match")


# The 1.x shapes repair_log_line_prefix relies on: an agent without log_line_prefix_template, and
# torch 1.13's tail_log (tail_logfile and TailLog.__init__/start as in 1.13, stop shortened).
TORCH_1_13_AGENT = """
class LocalElasticAgent:
    def __init__(self, spec, start_method="spawn", exit_barrier_timeout=300, log_dir=None):
        pass
"""
TORCH_1_13_TAIL_LOG = """
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from threading import Event


def tail_logfile(header, file, dst, finished, interval_sec):
    while not os.path.exists(file):
        if finished.is_set():
            return
        time.sleep(interval_sec)
    with open(file, "r") as fp:
        while True:
            line = fp.readline()
            if line:
                dst.write(f"{header}{line}")
            elif finished.is_set():
                break
            else:
                time.sleep(interval_sec)


class TailLog:
    def __init__(self, name, log_files, dst, interval_sec=0.1):
        n = len(log_files)
        self._threadpool = None
        if n > 0:
            self._threadpool = ThreadPoolExecutor(max_workers=n)
        self._name = name
        self._dst = dst
        self._log_files = log_files
        self._finished_events = {local_rank: Event() for local_rank in log_files.keys()}
        self._futs = []
        self._interval_sec = interval_sec
        self._stopped = False

    def start(self):
        if not self._threadpool:
            return self
        for local_rank, file in self._log_files.items():
            self._futs.append(
                self._threadpool.submit(
                    tail_logfile,
                    header=f"[{self._name}{local_rank}]:",
                    file=file,
                    dst=self._dst,
                    finished=self._finished_events[local_rank],
                    interval_sec=self._interval_sec,
                )
            )
        return self

    def stop(self):
        for event in self._finished_events.values():
            event.set()
        for fut in self._futs:
            fut.result()
"""

PREFIX_PROBE = """
import io, pathlib, sys
from torch.distributed.elastic.multiprocessing.tail_log import TailLog
from nemo_run_k8s.runtime import torchrun
argv = ["--nnodes=2", "--nproc_per_node=2", "--node_rank=1", "-m", "x", "--output", "o"]
repaired = torchrun.repair_log_line_prefix(argv)
files = {}
for local_rank in (0, 1):
    files[local_rank] = pathlib.Path(sys.argv[1]) / f"{local_rank}.log"
    files[local_rank].write_text(f"hello from {local_rank}\\n")
dst = io.StringIO()
tail = TailLog("default", {k: str(v) for k, v in files.items()}, dst).start()
tail.stop()
print(repaired, sorted(dst.getvalue().splitlines()))
"""


@pytest.mark.parametrize("template", ["[node1 rank${rank}] ", ""])
def test_torch_1_13_tail_log_gets_the_prefix_template_with_global_ranks(
    tmp_path: Path, template: str
):
    site = fake_torch(tmp_path / "site", TORCH_1_13_PARSER)
    elastic = site / "torch" / "distributed" / "elastic"
    for package in ("", "/multiprocessing", "/agent", "/agent/server"):
        (elastic / package.lstrip("/")).mkdir(parents=True, exist_ok=True)
        (elastic / package.lstrip("/") / "__init__.py").write_text("")
    (elastic / "multiprocessing" / "tail_log.py").write_text(TORCH_1_13_TAIL_LOG)
    (elastic / "agent" / "server" / "local_elastic_agent.py").write_text(TORCH_1_13_AGENT)
    pythonpath = os.pathsep.join([child_env()["PYTHONPATH"], str(site)])
    env = child_env(PYTHONPATH=pythonpath, TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE=template)
    proc = subprocess.run(
        [sys.executable, "-c", PREFIX_PROBE, str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    if template:  # node 1 of 2-process nodes holds global ranks 2 and 3
        assert proc.stdout.strip() == (
            "True ['[node1 rank2] hello from 0', '[node1 rank3] hello from 1']"
        )
    else:  # no template asked for: torch's own prefix stays
        assert proc.stdout.strip() == "False ['[default0]:hello from 0', '[default1]:hello from 1']"
