"""nemo_run_k8s against the tools users would pick instead, in one command.

    python bench/run_all.py [--quick] [--rows import,local,image,docker,sweep] [-n N]

Installs the peers, each into its own virtual environment under ``.bench-venvs/``
made with the host's ``python3`` (NeMo-Run 0.11.1 with leptonai 0.27.3; TorchX
0.7.0 with the docker and kubernetes clients), runs the same work through them
and through nemo_run_k8s in the same run, and prints one table: median, min and
max wall time, and ours/peer ratios of medians (below 1: we are faster). The
table is also written as markdown to ``bench/results/latest.md``.

Rows:
  import  ``import nemo_run_k8s`` vs ``import nemo_run`` vs ``import fiddle, cloudpickle``
          (the floor), whole processes; and the same with the first use of run.Config.
  local   a trivial run.Partial through run.run on the local executor, whole process,
          vs NeMo-Run's run.run on its LocalExecutor.
  image   a new job image after a config-only change and after a one-file code change,
          code directories of 1, 10 and 100 MB, vs TorchX's workspace image build, on
          the same base image (nemo-run-k8s/base-python:local) and directory. The
          one-file change edits a module the job does not import; one more row (10 MB)
          edits one it does, so our in-image import check runs again. Baseline row: the
          engine's floor for adding a few-KB layer to an existing image (docker load of
          the layer alone, and a container commit), no code of ours.
  docker  a trivial 2-node Docker job, submit to finish, whole process, vs TorchX
          local_docker with 2 replicas: ours on the host's network (the default), and
          with network="job" (a bridge network of the job's own, as TorchX's jobs get a
          bridge network). Baseline rows: Docker alone doing the same shape on each
          network (containers of `true`, start, wait, remove; a job network created
          too; no code of ours), and a Python process importing fiddle and exiting (its
          import-time objects frozen, as nemo_run_k8s does, so exit does not walk them):
          a whole-process submission of a fiddle config pays at least both. Between
          samples, untimed, the next waits until our supervisor has removed the previous
          job's network (it does so after the result; the note gives how long after), and
          TorchX's exited containers (it leaves them) are removed.
  cluster on the real cluster NRK_CLUSTER_KUBECONFIG names (bash .ci/setup-k8s.sh prints one):
          a 2-node x 2-process PyTorchJob (gloo all-reduce), submit to result, vs the Kubeflow
          training SDK 1.9.4's TrainingClient.create_job with the same image and work; and a
          100-job sweep created on the real API server (a namespace whose quota admits no pods)
          vs 100 create_job calls. Base image: NRK_CLUSTER_BASE_IMAGE or what
          .ci/setup-cluster-base.sh prints; registry: NRK_CLUSTER_IMAGE_REPO (default
          127.0.0.1:5000/nemo-run-k8s-bench).
  sweep   a 100-job sweep submitted to Kubernetes, with the count of image builds, vs
          100 TorchX submissions with a workspace (dry run). Ours launches against a
          stand-in API server with a throw-away local registry when `docker-registry`
          is installed, and dry-runs otherwise.

The command ours runs with is this interpreter (it needs nemo_run_k8s's
dependencies and the docker and kubernetes clients). A peer that cannot be
installed or run is reported in the table with its error, never dropped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    BENCH,
    REPO,
    VENVS,
    Peer,
    Row,
    RunnerError,
    Side,
    ensure_peer,
    environment,
    failure_note,
    format_markdown,
    format_text,
    machine,
    python_cmd,
    run_runner,
    sample_whole_process,
    wait_for_no_networks,
)

BASE_IMAGE = "nemo-run-k8s/base-python:local"
SIZES_MB = (1, 10, 100)
IMPORTED_CHANGE_MB = 10
SWEEP_JOBS = 100
SWEEP_CODE_MB = 10
ALL_ROWS = ("import", "local", "image", "docker", "sweep", "cluster")
SDK = "Kubeflow SDK 1.9.4"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 runs per measurement, not 5")
    parser.add_argument("-n", type=int, help="runs per measurement (default 5, --quick 3)")
    parser.add_argument("--rows", default=",".join(ALL_ROWS), help="comma-separated subset")
    parser.add_argument("--base-image", default=BASE_IMAGE, help="image both sides build on")
    args = parser.parse_args(argv)
    rows_wanted = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = sorted(set(rows_wanted) - set(ALL_ROWS))
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(ALL_ROWS)}")
    n = args.n or (3 if args.quick else 5)
    bench = Bench(n=n, base=args.base_image, sweep_repeats=1 if args.quick else 3)

    with tempfile.TemporaryDirectory(prefix="nemo-run-k8s-bench-") as tmp:
        bench.tmp = Path(tmp)
        for name in rows_wanted:
            print(f"[bench] {name} ...", flush=True)
            new = getattr(bench, f"row_{name}")()
            bench.rows += new
            print(format_text(new) + "\n", flush=True)

    header = f"Machine: {machine()}. Runs per measurement: {n} (after one untimed warm-up)."
    print("\n" + header + "\n" + format_text(bench.rows))
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M %Z")
    (results / "latest.md").write_text(
        f"{header}\nRun {stamp}: `python bench/run_all.py {' '.join(argv or sys.argv[1:])}`\n\n"
        f"{format_markdown(bench.rows)}\n"
    )
    print(f"\nwritten: {(results / 'latest.md').relative_to(REPO)}")
    return 0


class Bench:
    """Holds the peers (installed on first need) and produces the rows."""

    def __init__(self, n: int, base: str, sweep_repeats: int):
        self.n, self.base, self.sweep_repeats = n, base, sweep_repeats
        self.rows: list[Row] = []
        self.tmp = Path(tempfile.gettempdir())
        self._peers: dict[str, Peer] = {}

    def peer(self, name: str) -> Peer:
        if name not in self._peers:
            self._peers[name] = ensure_peer(name, VENVS / f"{name}-install.log")
        return self._peers[name]

    def env(self, peer: Peer | None = None) -> dict[str, str]:
        """Ours: this interpreter with the repository importable; a peer: its venv's bin first."""
        home = self.tmp / "home"
        if peer is None:
            return environment(home, [REPO, BENCH / "ours"])
        env = environment(home)
        if peer.python is not None:  # NeMo-Run starts jobs with the `python` on PATH
            env["PATH"] = f"{peer.python.parent}:{env['PATH']}"
        return env

    def marker(self) -> str:
        return str(self.tmp / "marker")

    # ------------------------------------------------------------------- rows

    def row_import(self) -> list[Row]:
        nemo = self.peer("nemo_run")
        rows = []
        # With the first run.Config, nemo_run_k8s freezes fiddle's import-time objects (exit
        # does not walk them); the floor of that row does the same.
        for label, ours_code, peer_code, floor_code in (
            ("import", "import nemo_run_k8s", "import nemo_run", "import fiddle, cloudpickle"),
            (
                "import + first run.Config",
                "import nemo_run_k8s as run; run.Config",
                "import nemo_run as run; run.Config",
                "import fiddle, cloudpickle, gc; gc.freeze()",
            ),
        ):
            ours = sample_whole_process(
                "nemo_run_k8s", [sys.executable, "-c", ours_code], self.env(), self.n
            )
            peer = sample_whole_process(
                "NeMo-Run 0.11.1",
                python_cmd(nemo.python, "-c", peer_code),
                self.env(nemo),
                self.n,
                note=_install_note(nemo),
            )
            floor = sample_whole_process(
                f"fiddle+cloudpickle (floor: {floor_code})",
                [sys.executable, "-c", floor_code],
                self.env(),
                self.n,
            )
            rows.append(Row(label, ours, [peer, floor]))
        return rows

    def row_local(self) -> list[Row]:
        nemo = self.peer("nemo_run")
        script = "local_run.py"
        ours = sample_whole_process(
            "nemo_run_k8s",
            [sys.executable, str(BENCH / "ours" / script), self.marker()],
            self.env(),
            self.n,
        )
        peer = sample_whole_process(
            "NeMo-Run 0.11.1",
            python_cmd(nemo.python, str(BENCH / "peers" / "nemo_run_local.py"), self.marker()),
            self.env(nemo),
            self.n,
            note=_install_note(nemo),
        )
        return [Row("trivial Partial, local executor, whole process", ours, [peer])]

    def row_image(self) -> list[Row]:
        from workloads.codedirs import make_code_dir

        torchx = self.peer("torchx")
        rows = []
        for mb in SIZES_MB:
            code_dir = str(make_code_dir(self.tmp / "code", mb))
            for change, label in (("config", "config-only change"), ("onefile", "one-file change")):
                args = [self.base, code_dir, str(self.n), change]
                ours = self._runner_side(
                    "nemo_run_k8s", [sys.executable, str(BENCH / "ours" / "image_builds.py"), *args]
                )
                peer = self._runner_side(
                    "TorchX 0.7.0 workspace",
                    python_cmd(torchx.python, str(BENCH / "peers" / "torchx_workspace.py"), *args),
                    torchx,
                )
                rows.append(Row(f"new job image, {label}, {mb} MB code", ours, [peer]))
            if mb == IMPORTED_CHANGE_MB:
                rows.append(self._image_row(code_dir, "imported", torchx))
        n = self.n
        floors = [
            self._runner_side(
                f"Docker engine: {how}",
                [sys.executable, str(BENCH / "ours" / "layer_floor.py"), self.base, str(n), how],
            )
            for how in ("load", "commit")
        ]
        rows.append(Row("floor: add a 4 KB layer to an existing image", floors[0], floors[1:]))
        return rows

    def _image_row(self, code_dir: str, change: str, torchx: Peer) -> Row:
        args = [self.base, code_dir, str(self.n), change]
        ours = self._runner_side(
            "nemo_run_k8s", [sys.executable, str(BENCH / "ours" / "image_builds.py"), *args]
        )
        peer = self._runner_side(
            "TorchX 0.7.0 workspace",
            python_cmd(torchx.python, str(BENCH / "peers" / "torchx_workspace.py"), *args),
            torchx,
        )
        name = f"new job image, one-file change to an imported module, {IMPORTED_CHANGE_MB} MB code"
        return Row(name, ours, [peer])

    def row_docker(self) -> list[Row]:
        from nemo_run_k8s.labels import JOB_ID_LABEL  # on every network a Docker job creates

        torchx = self.peer("torchx")
        # Between samples, untimed: our supervisor removes the job's network after the result
        # (the row does not wait for it, nor should the next sample); TorchX leaves its exited
        # containers, which are removed so that both start each sample from the same engine.
        ours = sample_whole_process(
            "nemo_run_k8s (host network, the default)",
            [sys.executable, str(BENCH / "ours" / "docker_job.py"), self.base, "host"],
            self.env(),
            self.n,
        )
        cleanups: list[float] = []
        ours_job_network = sample_whole_process(
            "nemo_run_k8s, network='job'",
            [sys.executable, str(BENCH / "ours" / "docker_job.py"), self.base, "job"],
            self.env(),
            self.n,
            settle=lambda: cleanups.append(wait_for_no_networks(JOB_ID_LABEL)),
        )
        if ours_job_network.samples:
            ours_job_network.note = (
                f"n={len(ours_job_network.samples)}; the job's network was gone "
                f"{statistics.median(cleanups[1:]) * 1e3:.0f} ms (median) after the process "
                "ended, untimed"
            )
        peer = sample_whole_process(
            "TorchX 0.7.0 local_docker",
            python_cmd(torchx.python, str(BENCH / "peers" / "torchx_local_docker.py"), self.base),
            self.env(torchx),
            self.n,
            note=_install_note(torchx),
            settle=lambda: _remove_containers("torchx.pytorch.org/version"),
        )
        floor = [sys.executable, str(BENCH / "ours" / "docker_floor.py"), self.base, str(self.n)]
        docker_host = self._runner_side("Docker alone (in-process)", [*floor, "host"])
        docker_job = self._runner_side("Docker alone (in-process)", [*floor, "job"])
        python_fiddle = sample_whole_process(
            "python -c 'import fiddle, cloudpickle, gc; gc.freeze()'",
            [sys.executable, "-c", "import fiddle, cloudpickle, gc; gc.freeze()"],
            self.env(),
            self.n,
        )
        return [
            Row("2-node trivial Docker job, submit to finish", ours, [peer]),
            Row("2-node trivial Docker job, on a network of its own", ours_job_network, [peer]),
            Row(
                "floor: 2 containers of `true` on the host's network, started, waited, removed",
                docker_host,
                [],
            ),
            Row(
                "floor: the same on a network of the job's own (created first)",
                docker_job,
                [],
            ),
            Row(
                "floor: a Python process that imports fiddle (the config's library) and exits",
                python_fiddle,
                [],
            ),
        ]

    def row_sweep(self) -> list[Row]:
        from workloads.codedirs import make_code_dir

        torchx = self.peer("torchx")
        code_dir = str(make_code_dir(self.tmp / "code", SWEEP_CODE_MB))
        jobs, repeats = str(SWEEP_JOBS), str(self.sweep_repeats)
        with _local_registry(self.tmp) as registry:
            mode = "launch" if registry else "dry"
            cmd = [sys.executable, str(BENCH / "ours" / "sweep.py"), self.base, code_dir]
            ours = self._runner_side("nemo_run_k8s", [*cmd, jobs, repeats, mode, registry or ""])
        if not ours.note:
            ours.note = (
                f"n={len(ours.samples)}; launched: stand-in API server, local registry"
                if mode == "launch"
                else f"n={len(ours.samples)}; dry run (no docker-registry to push to)"
            )
        peer = self._runner_side(
            "TorchX 0.7.0 (dry run)",
            python_cmd(
                torchx.python,
                str(BENCH / "peers" / "torchx_sweep.py"),
                self.base,
                code_dir,
                jobs,
                repeats,
            ),
            torchx,
        )
        return [
            Row(
                f"{SWEEP_JOBS}-job sweep submission, 2 nodes each, {SWEEP_CODE_MB} MB code",
                ours,
                [peer],
            )
        ]

    def row_cluster(self) -> list[Row]:
        names = (
            "2-node x 2-proc PyTorchJob (gloo all-reduce), submit to result, real cluster",
            f"{SWEEP_JOBS}-job sweep, all created on the real API server",
        )
        kubeconfig = os.environ.get("NRK_CLUSTER_KUBECONFIG", "")
        if not kubeconfig:
            note = "no cluster: set NRK_CLUSTER_KUBECONFIG (bash .ci/setup-k8s.sh prints one)"
            return [Row(n, Side("nemo_run_k8s", note=note), [Side(SDK, note=note)]) for n in names]
        sdk = self.peer("kubeflow_training")
        base = os.environ.get("NRK_CLUSTER_BASE_IMAGE") or _cluster_base()
        repo = os.environ.get("NRK_CLUSTER_IMAGE_REPO", "127.0.0.1:5000/nemo-run-k8s-bench")
        n, image = str(self.n), ""
        with _namespace(kubeconfig, "nrk-bench-job") as ns:
            ours = Side("nemo_run_k8s")
            cmd = [sys.executable, str(BENCH / "ours" / "cluster_job.py"), kubeconfig, ns, repo]
            try:
                result = run_runner([*cmd, base, n], self.env())
                ours.samples, image = [float(x) for x in result["samples"]], result["image"]
            except RunnerError as err:
                ours.note = failure_note(err)
            peer = self._runner_side(
                f"{SDK} create_job",
                python_cmd(
                    sdk.python if image else None,
                    str(BENCH / "peers" / "kubeflow_sdk_job.py"),
                    kubeconfig,
                    ns,
                    image,
                    n,
                ),
                sdk,
            )
            if not image and not peer.note:
                peer.note = "not run: ours built no image to share"
        rows = [Row(names[0], ours, [peer])]
        code_dir = str(_code_dir(self.tmp))
        jobs, repeats = str(SWEEP_JOBS), "1"
        with _namespace(kubeconfig, "nrk-bench-sweep", no_pods=True) as ns:
            env = {**self.env(), "NRK_BENCH_KUBECONFIG": kubeconfig, "NRK_BENCH_NAMESPACE": ns}
            cmd = [sys.executable, str(BENCH / "ours" / "sweep.py"), self.base, code_dir]
            ours = Side("nemo_run_k8s")
            try:
                result = run_runner([*cmd, jobs, repeats, "cluster", repo.split("/")[0]], env)
                ours.samples, ours.builds = [float(x) for x in result["samples"]], result["builds"]
            except RunnerError as err:
                ours.note = failure_note(err)
            peer = self._runner_side(
                f"{SDK} create_job x{SWEEP_JOBS}",
                python_cmd(
                    sdk.python if image else None,
                    str(BENCH / "peers" / "kubeflow_sdk_sweep.py"),
                    kubeconfig,
                    ns,
                    image,
                    jobs,
                    repeats,
                ),
                sdk,
            )
        rows.append(Row(names[1], ours, [peer]))
        return rows

    # ------------------------------------------------------------------- helpers

    def _runner_side(self, tool: str, cmd: list[str] | None, peer: Peer | None = None) -> Side:
        """A side measured by a runner script that times itself (and reports its images)."""
        side = Side(tool, note=_install_note(peer) if peer else "")
        if cmd is None:
            return side
        try:
            result = run_runner(cmd, self.env(peer))
        except RunnerError as err:
            side.note = failure_note(err)
            return side
        side.samples = [float(s) for s in result["samples"]]
        side.builds = result.get("builds")
        _remove_images(result.get("images", []))
        return side


def _cluster_base() -> str:
    done = subprocess.run(
        ["bash", str(REPO / ".ci" / "setup-cluster-base.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    return done.stdout.strip().splitlines()[-1] if done.returncode == 0 else ""


def _code_dir(tmp: Path) -> Path:
    from workloads.codedirs import make_code_dir

    return make_code_dir(tmp / "code", SWEEP_CODE_MB)


@contextlib.contextmanager
def _namespace(kubeconfig: str, prefix: str, no_pods: bool = False) -> Iterator[str]:
    """A fresh namespace on the real cluster, deleted afterwards; ``no_pods``: a quota of 0 pods."""
    ns = f"{prefix}-{int(time.time()) % 100000}"
    kubectl = [shutil.which("kubectl") or str(REPO / ".tools" / "bin" / "kubectl")]
    kubectl += ["--kubeconfig", kubeconfig]
    subprocess.run([*kubectl, "create", "namespace", ns], check=True, capture_output=True)
    if no_pods:
        quota = (
            f"apiVersion: v1\nkind: ResourceQuota\nmetadata: {{name: no-pods, namespace: {ns}}}\n"
        )
        quota += "spec: {hard: {pods: '0'}}\n"
        subprocess.run([*kubectl, "apply", "-f", "-"], input=quota, text=True, check=True,
                       capture_output=True)  # fmt: skip
    try:
        yield ns
    finally:
        subprocess.run([*kubectl, "delete", "namespace", ns, "--wait=false"], capture_output=True)


def _install_note(peer: Peer | None) -> str:
    return f"not installed: {peer.error}" if peer is not None and peer.python is None else ""


def _remove_images(refs: list[str]) -> None:
    """Removes the images a runner built (never others'); images in use stay."""
    if refs:
        subprocess.run(["docker", "rmi", *refs], capture_output=True, timeout=300)


def _remove_containers(label: str) -> None:
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={label}", "--filter", "status=exited"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", *ids], capture_output=True, timeout=120)


@contextlib.contextmanager
def _local_registry(tmp: Path) -> Iterator[str | None]:
    """A throw-away Distribution registry on loopback (Debian's docker-registry), if installed."""
    binary = shutil.which("docker-registry")
    if binary is None:
        yield None
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp / 'registry'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(
        [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
