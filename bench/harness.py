"""Pieces shared by bench/run_all.py: peer environments, timing, rows and the table.

A *row* compares one piece of work done by nemo_run_k8s ("ours") with the same
work done by a peer tool. Each side is a list of samples in seconds, or a note
saying why there are none (a peer that would not install, a backend that is
not there yet). Nothing is dropped silently: a side without samples still
prints, with its note.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
import venv
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
VENVS = REPO / ".bench-venvs"

# Each peer gets its own virtual environment, made with the host's python3.
PEERS: dict[str, list[str]] = {
    # NeMo-Run 0.11.1 imports leptonai eagerly and fails with newer leptonai releases.
    "nemo_run": ["nemo_run==0.11.1", "leptonai==0.27.3"],
    # TorchX: the docker client for local_docker and workspaces, kubernetes for its k8s dry run.
    "torchx": ["torchx==0.7.0", "docker", "kubernetes"],
    # The Kubeflow training SDK of the operator the CI cluster runs (v1.9).
    "kubeflow_training": ["kubeflow-training==1.9.4"],
}


@dataclasses.dataclass
class Side:
    """One tool's measurements for a row: samples in seconds, or a note why there are none."""

    tool: str
    samples: list[float] = dataclasses.field(default_factory=list)
    note: str = ""
    builds: int | None = None  # image builds done per sample, where the row counts them

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None


@dataclasses.dataclass
class Row:
    """One line of work: ours against zero or more peers."""

    name: str
    ours: Side
    peers: list[Side]


# ----------------------------------------------------------------------------- peer venvs


@dataclasses.dataclass
class Peer:
    """A peer tool's environment: its python, or why it could not be made."""

    name: str
    python: Path | None
    error: str = ""


def ensure_peer(name: str, log: Path) -> Peer:
    """Creates ``.bench-venvs/<name>`` and installs the peer's pinned packages (once).

    A finished install leaves a stamp holding the requirement list, so later runs
    reuse the environment; a changed list reinstalls. Failures are returned, not raised.
    """
    requirements = PEERS[name]
    root = VENVS / name
    python = root / "bin" / "python"
    stamp = root / "installed.json"
    try:
        if json.loads(stamp.read_text()) == requirements and python.exists():
            return Peer(name, python)
    except (FileNotFoundError, json.JSONDecodeError):
        pass
    print(f"[bench] installing {' '.join(requirements)} into {root} ...", flush=True)
    try:
        if not python.exists():
            venv.EnvBuilder(with_pip=True, clear=True).create(root)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as out:
            done = subprocess.run(
                [str(python), "-m", "pip", "install", "--disable-pip-version-check", *requirements],
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=1800,
            )
    except (OSError, subprocess.SubprocessError) as err:
        return Peer(name, None, f"cannot create its virtualenv: {err}")
    if done.returncode != 0:
        return Peer(name, None, f"pip install failed (exit {done.returncode}): {_last_error(log)}")
    stamp.write_text(json.dumps(requirements))
    return Peer(name, python)


def _last_error(log: Path) -> str:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR")] or lines[-1:]
    return errors[-1][:300] if errors else "no output"


# ----------------------------------------------------------------------------- running


class RunnerError(Exception):
    """A benchmark runner failed; the message is its error, short enough for a table note."""


def environment(home: Path, extra_path: Sequence[Path] = ()) -> dict[str, str]:
    """The environment of every timed process: its own homes, the workloads importable."""
    paths = [str(p) for p in (*extra_path, BENCH / "workloads")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    env["NEMO_RUN_K8S_HOME"] = str(home / "nemo_run_k8s")
    env["NEMORUN_HOME"] = str(home / "nemo_run")
    env.pop("CI", None)
    # Bytecode is cached as a user's Python caches it: with this set (some sandboxes and CI
    # images do), a checkout's modules would be compiled again in every timed process, while
    # pip-installed packages (fiddle, the peers) come with theirs compiled at install time.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def time_process(cmd: Sequence[str], env: dict[str, str], timeout: float = 600) -> float:
    """Wall time of one whole process; raises RunnerError (with its stderr) on failure."""
    start = time.perf_counter()
    done = subprocess.run(
        list(cmd), env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RunnerError(_tail(done.stderr or done.stdout))
    return elapsed


def run_runner(cmd: Sequence[str], env: dict[str, str], timeout: float = 1800) -> dict:  # type: ignore[type-arg]
    """Runs a runner script that times itself; returns the JSON object of its last line."""
    try:
        done = subprocess.run(
            list(cmd), env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise RunnerError(f"timed out after {timeout:.0f} s") from None
    lines = done.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        result = None
    if done.returncode != 0 or not isinstance(result, dict):
        raise RunnerError(_tail(done.stderr or done.stdout))
    if result.get("error"):
        raise RunnerError(str(result["error"]))
    return result


def _tail(text: str) -> str:
    """The most telling line of a failure: the last exception line, else the last line."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for line in reversed(lines):
        if ("Error" in line or "Exception" in line) and not line.startswith("File "):
            return line[:300]
    return (lines[-1] if lines else "failed without output")[:300]


def wait_for_no_networks(label: str, timeout: float = 60) -> float:
    """Waits until no Docker network carries ``label``; returns the seconds it took.

    A Docker job's supervisor removes its network after the result; a benchmark
    waits for that (untimed) so that no sample pays for its predecessor's clean-up.
    """
    start = time.perf_counter()
    while subprocess.run(
        ["docker", "network", "ls", "-q", "--filter", f"label={label}"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip():
        if time.perf_counter() - start > timeout:
            raise RuntimeError(f"networks labelled {label} were not removed in {timeout:.0f} s")
        time.sleep(0.01)
    return time.perf_counter() - start


def sample_whole_process(
    tool: str,
    cmd: Sequence[str] | None,
    env: dict[str, str],
    n: int,
    note: str = "",
    settle: Callable[[], object] | None = None,
) -> Side:
    """``n`` timed runs of a whole process after one untimed warm-up run.

    ``settle``, if given, runs untimed after each run: it waits for what the
    tool still does in the background (so no sample pays for its predecessor's
    clean-up) or cleans up what the tool leaves behind.
    """
    side = Side(tool, note=note)
    if cmd is None:
        return side

    def one() -> float:
        elapsed = time_process(cmd, env)
        if settle is not None:
            settle()
        return elapsed

    try:
        one()  # warm-up: page cache, .pyc files
        side.samples = [one() for _ in range(n)]
    except (RunnerError, subprocess.TimeoutExpired) as err:
        side.samples, side.note = [], failure_note(err)
    return side


def failure_note(err: Exception) -> str:
    """``not available (...)`` for a backend this checkout lacks, else ``failed: ...``."""
    text = str(err)
    if text.startswith("NOT AVAILABLE: "):
        return f"not available ({text.removeprefix('NOT AVAILABLE: ')})"
    return f"failed: {text}"


def python_cmd(python: Path | str | None, *args: str) -> list[str] | None:
    return None if python is None else [str(python), *args]


# ----------------------------------------------------------------------------- the table


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1e3:.0f}" if value >= 1 else f"{value * 1e3:.1f}"


def table_rows(rows: Sequence[Row]) -> list[list[str]]:
    """Header plus one line per side: median/min/max in ms, ours/peer, image builds, notes."""
    out = [["work", "tool", "median ms", "min ms", "max ms", "ours/this", "builds", "note"]]
    for row in rows:
        ours = row.ours.median
        for i, side in enumerate([row.ours, *row.peers]):
            med = side.median
            ratio = "-"
            if i > 0 and ours is not None and med:
                ratio = f"{ours / med:.2f}x"
            out.append(
                [
                    row.name if i == 0 else "",
                    side.tool,
                    _ms(med),
                    _ms(min(side.samples) if side.samples else None),
                    _ms(max(side.samples) if side.samples else None),
                    ratio,
                    "-" if side.builds is None else str(side.builds),
                    side.note or (f"n={len(side.samples)}" if side.samples else ""),
                ]
            )
    return out


def format_text(rows: Sequence[Row]) -> str:
    lines = table_rows(rows)
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]) - 1)]
    text = []
    for line in lines:
        cells = [
            c.ljust(w) if j < 2 else c.rjust(w)
            for j, (c, w) in enumerate(zip(line, widths, strict=False))
        ]
        text.append("  ".join(cells) + "  " + line[-1])
    return "\n".join(text)


def format_markdown(rows: Sequence[Row]) -> str:
    lines = table_rows(rows)
    md = ["| " + " | ".join(lines[0]) + " |", "|" + "---|" * len(lines[0])]
    md += ["| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in lines[1:]]
    return "\n".join(md)


def machine() -> str:
    """CPU count, memory, OS, Docker and Python versions: what the numbers depend on."""
    parts = [f"{os.cpu_count()} CPUs"]
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        parts.append(f"{kb / 2**20:.0f} GiB RAM")
    except (OSError, ValueError, IndexError):
        pass
    try:
        os_release = dict(
            line.split("=", 1)
            for line in Path("/etc/os-release").read_text().splitlines()
            if "=" in line
        )
        parts.append(os_release.get("PRETTY_NAME", "").strip('"'))
    except OSError:
        pass
    try:
        server = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.strip()
        parts.append(f"Docker {server or 'not running'}")
    except (OSError, subprocess.SubprocessError):
        parts.append("Docker not found")
    parts.append(f"Python {sys.version.split()[0]}")
    return ", ".join(p for p in parts if p)
