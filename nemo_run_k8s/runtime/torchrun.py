"""The torchrun command an image takes: ``python -m torch.distributed.run`` and its flag spellings.

torchrun's options changed spelling: torch 1.x accepts only ``--nproc_per_node``,
``--node_rank``, ``--master_addr`` and ``--master_port``; torch 2.x added ``--nproc-per-node``
and the like and still accepts the old forms. Rather than assume either from a version number,
the spellings are read from the torch the image has: the option strings that the parser in its
``torch/distributed/run.py`` declares, found without importing torch (so neither the
entrypoint's own process nor the build-time preflight pays torch's import, a second or more).
Where that source cannot be read (a build that ships bytecode only), the parser itself is
imported and asked.

The command is ``sys.executable -m nemo_run_k8s.runtime.torchrun``: the entrypoint's own
interpreter, whether or not a ``torchrun`` script is on PATH (Debian's python3-torch puts one in
/usr/bin, a venv over it has none, and a ``torchrun`` of another Python would be wrong). Run as a
module, this file is ``python -m torch.distributed.run`` with the same arguments, after two
repairs of torch 1.x where they are needed (:func:`repair_std_from_str`,
:func:`repair_log_line_prefix`).
"""

from __future__ import annotations

import argparse
import ast
import importlib.machinery
import importlib.util
import inspect
import os
import re
import runpy
import string
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

# The options the entrypoint passes, by their underscore names (dest).
OPTIONS = ("nnodes", "nproc_per_node", "node_rank", "master_addr", "master_port")


class TorchrunUnavailable(Exception):
    """The image's Python cannot start torchrun; the message says what to do."""


def run_module_source(path: Sequence[str] | None = None) -> Path | None:
    """``torch/distributed/run.py`` of the torch that ``import torch`` would load, or None.

    ``path`` replaces ``sys.path`` for the search (tests); nothing is imported.
    """
    if path is None:
        spec = importlib.util.find_spec("torch")
    else:
        spec = importlib.machinery.PathFinder.find_spec("torch", list(path))
    if spec is None:
        return None
    for location in spec.submodule_search_locations or ():
        candidate = Path(location) / "distributed" / "run.py"
        if candidate.is_file():
            return candidate
    return None


def declared_options(source: str) -> set[str]:
    """The option strings passed to ``add_argument(...)`` calls in ``source``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_argument"
        ):
            found.update(
                arg.value
                for arg in node.args
                if isinstance(arg, ast.Constant)
                and isinstance(arg.value, str)
                and arg.value.startswith("--")
            )
    return found


def parser_options() -> set[str]:
    """The option strings of the installed torchrun's parser, by importing it (the slow way)."""
    try:
        from torch.distributed.run import get_args_parser
    except Exception as err:
        why = f"importing torch.distributed.run failed: {err}"
        raise TorchrunUnavailable(_no_torch(why)) from err
    return set(get_args_parser()._option_string_actions)


def spellings(options: Iterable[str]) -> dict[str, str]:
    """``{name: flag}`` for each of :data:`OPTIONS`: the dashed form where torchrun has it.

    Raises TorchrunUnavailable naming the options this torchrun lacks.
    """
    options = set(options)
    flags: dict[str, str] = {}
    for name in OPTIONS:
        for flag in (f"--{name.replace('_', '-')}", f"--{name}"):
            if flag in options:
                flags[name] = flag
                break
    missing = [name for name in OPTIONS if name not in flags]
    if missing:
        raise TorchrunUnavailable(
            "the image's torch.distributed.run accepts none of the spellings of "
            + ", ".join(f"--{name}" for name in missing)
            + " (known: torch 1.9 to 2.x); use a torch whose torchrun takes them, or "
            "nproc_per_node=1 to run one process per node without torchrun"
        )
    return flags


def flags() -> dict[str, str]:
    """:func:`spellings` of the torch this Python would import."""
    source = run_module_source()
    if source is None:
        raise TorchrunUnavailable(_no_torch("it has no module named 'torch'"))
    try:
        options = declared_options(source.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        options = set()
    if not {f"--{name}" for name in OPTIONS} & options:
        options = parser_options()  # the source said nothing usable: ask the parser itself
    return spellings(options)


def command(
    nnodes: str, nproc_per_node: int, node_rank: str, master_addr: str, master_port: str
) -> list[str]:
    """``python -m torch.distributed.run`` with the flags this image's torch accepts.

    The caller appends what torchrun runs (``-m module args...``).
    """
    spelled = flags()
    values = {
        "nnodes": nnodes,
        "nproc_per_node": str(nproc_per_node),
        "node_rank": node_rank,
        "master_addr": master_addr,
        "master_port": master_port,
    }
    return [
        sys.executable,
        "-m",
        "nemo_run_k8s.runtime.torchrun",
        *(f"{spelled[name]}={values[name]}" for name in OPTIONS),
    ]


def repair_std_from_str() -> bool:
    """Makes torch < 2.0's torchrun work on Python 3.11+; returns whether it had to.

    torch 1.13 parses ``--redirects``/``--tee`` (default ``"0"``) with ``Std.from_str``, which
    looks the value up by iterating the ``Std`` flag enum. Since Python 3.11, iterating a flag
    enum skips 0 and multi-bit values, so ``from_str("0")`` returns None and torchrun dies in
    ``to_map`` (AttributeError: 'NoneType' object has no attribute 'get') before any worker
    starts. Debian's python3-torch 1.13 runs on Python 3.11 and has this bug. Detected by
    behaviour, not by version; the replacement looks values up with ``Std(int)``.
    """
    try:
        from torch.distributed.elastic.multiprocessing import api
    except ImportError:
        return False  # runpy below reports the missing torch as torchrun would
    std = api.Std
    if std.from_str("0") is not None:
        return False
    original = std.from_str

    def from_str(cls: type, vm: str) -> object:
        if re.match(api._VALUE_REGEX, vm):
            return cls(int(vm))
        if re.match(api._MAPPING_REGEX, vm):
            pairs = (item.split(":") for item in vm.split(","))
            return {int(rank): cls(int(value)) for rank, value in pairs}
        return original(vm)  # raises torchrun's own ValueError

    std.from_str = classmethod(from_str)
    return True


def _no_torch(why: str) -> str:
    python = f"{sys.executable} (Python {sys.version.split()[0]})"
    return (
        f"this node runs several processes, which needs torch in the image: "
        f"torch.distributed.run starts them, but the image's Python {python} cannot run it: "
        f"{why}. Install torch into the base image (into the Python that runs python3), or "
        f"use nproc_per_node=1."
    )


PREFIX_TEMPLATE_ENV = "TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE"


def repair_log_line_prefix(argv: Sequence[str]) -> bool:
    """Makes torch < 2.2 honour the log line prefix template; returns whether it had to.

    The executors ask torchrun to tee each worker's output with a ``[node1 rank3] `` prefix
    (``PET_TEE=3`` and that template). torch 2.2+ reads the template; older torch ignores it
    and writes ``[default0]:`` (role and *local* rank), so logs would not say the node or the
    global rank. Where the installed LocalElasticAgent has no ``log_line_prefix_template``
    parameter and ``TailLog`` still has the 1.x shape, its headers are made from the template
    (``${role_name}``, ``${rank}``, ``${local_rank}``, as 2.x does); the global rank is
    ``node_rank * nproc_per_node + local_rank``, which is how a static rendezvous numbers
    workers. Anything unexpected leaves torch's own prefix alone.
    """
    template = os.environ.get(PREFIX_TEMPLATE_ENV)
    if not template:
        return False
    try:
        from torch.distributed.elastic.agent.server.local_elastic_agent import LocalElasticAgent
        from torch.distributed.elastic.multiprocessing import tail_log
    except ImportError:
        return False
    if "log_line_prefix_template" in inspect.signature(LocalElasticAgent.__init__).parameters:
        return False  # torch does it itself
    known = {"header", "file", "dst", "finished", "interval_sec"}
    tail_logfile = getattr(tail_log, "tail_logfile", None)
    if tail_logfile is None or set(inspect.signature(tail_logfile).parameters) != known:
        return False
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--node-rank", "--node_rank", dest="node_rank", default="0")
    parser.add_argument("--nproc-per-node", "--nproc_per_node", dest="nproc", default="1")
    parsed, _ = parser.parse_known_args(list(argv))
    try:
        base = int(parsed.node_rank) * int(parsed.nproc)
    except ValueError:
        return False  # "auto", "gpu": the count is torch's to decide

    def start(self: tail_log.TailLog) -> tail_log.TailLog:
        if not self._threadpool:
            return self
        for local_rank, file in self._log_files.items():
            header = string.Template(template).safe_substitute(
                role_name=self._name, rank=str(base + local_rank), local_rank=str(local_rank)
            )
            self._futs.append(
                self._threadpool.submit(
                    tail_logfile,
                    header=header,
                    file=file,
                    dst=self._dst,
                    finished=self._finished_events[local_rank],
                    interval_sec=self._interval_sec,
                )
            )
        return self

    tail_log.TailLog.start = start
    return True


if __name__ == "__main__":
    repair_std_from_str()
    repair_log_line_prefix(sys.argv[1:])
    sys.argv[0] = "torchrun"
    runpy.run_module("torch.distributed.run", run_name="__main__", alter_sys=True)
