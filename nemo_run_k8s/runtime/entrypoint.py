"""Runs a job bundle: ``python -m nemo_run_k8s.runtime.entrypoint BUNDLE [--output DIR]``.

The same entrypoint runs in a local process, a Docker container and a
PyTorchJob pod:

1. Checks the bundle (format, content hash, Python minor version) before
   unpickling anything; a mismatch is a message, not an unpickling traceback.
2. With several processes per node (``PET_NPROC_PER_NODE`` > 1) it starts
   ``torch.distributed.run`` (torchrun), which runs this entrypoint once per
   process. torchrun reads the environment the Kubeflow operator sets on
   PyTorchJob pods (``MASTER_ADDR``, ``MASTER_PORT``, ``PET_NNODES``,
   ``PET_NODE_RANK``, ``PET_NPROC_PER_NODE``); the Docker and local executors
   set the same variables. Its flags are spelled the way the image's torch
   takes them (torch 1.x only knows ``--nproc_per_node``, 2.x prefers
   ``--nproc-per-node``); no torch is a setup error (exit 3), not a crash.
3. Runs the task: a ``run.Partial`` is built and the partial called; a
   ``run.Config`` is built and the built object is called (so a Config of a
   callable class works); a ``run.Script`` runs with bash, ``env_vars`` in the
   environment and ``args`` as argv.
4. Rank 0 writes ``("success", value)`` or ``("error", traceback)``
   atomically into ``--output DIR`` when given. With
   ``NEMO_RUN_K8S_OUTCOME_IN_LOG=1`` it also prints the outcome as the last
   stdout line (``NEMO_RUN_K8S_OUTCOME <base64>``), which is how results come
   back from pods. Where ``/dev/termination-log`` exists (Kubernetes), a short
   reason is written there on failure.

Exit codes: 0 success; 1 the task raised or the script failed; 3 the bundle or
the setup is wrong (nothing of the task ran); 143 stopped by SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from nemo_run_k8s.runtime.contract import (
    EXIT_OK,
    EXIT_SETUP_ERROR,
    EXIT_TASK_FAILED,
    EXIT_TERMINATED,
    OUTCOME_IN_LOG_ENV,
    TERMINATION_LOG,
    TERMINATION_LOG_ENV,
    WORKER_ENV,
    encode_outcome_line,
)


class _Terminated(BaseException):
    """Raised in the task's thread when SIGTERM arrives (a cancel)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nemo_run_k8s.runtime.entrypoint")
    parser.add_argument("bundle", type=Path, help="the bundle directory")
    parser.add_argument("--output", type=Path, default=None, help="where rank 0 writes the outcome")
    args = parser.parse_args(argv)

    from nemo_run_k8s.bundle.files import Bundle
    from nemo_run_k8s.errors import BundleError

    try:
        bundle = Bundle.open(args.bundle)
        bundle.verify()
    except BundleError as err:
        return _setup_failed(str(err))
    except Exception as err:  # nothing of the task ran: a setup error, not a traceback
        return _setup_failed(f"cannot read the bundle {args.bundle}: {type(err).__name__}: {err}")

    nproc_env = os.environ.get("PET_NPROC_PER_NODE")
    try:
        nproc = int(nproc_env or bundle.manifest["resources"]["nproc_per_node"])
    except ValueError:
        return _setup_failed(f"PET_NPROC_PER_NODE={nproc_env!r} is not a number of processes")
    if nproc > 1 and os.environ.get(WORKER_ENV) != "1":
        return _run_torchrun(args, nproc)
    return _run_task(bundle, args.output)


def _run_task(bundle: Any, output: Path | None) -> int:
    """Runs the task of ``bundle`` (verified by the caller) and publishes rank 0's outcome."""
    rank = int(os.environ.get("RANK", "0"))
    # Logs are files or pipes, where Python would hold prints back until the job ends.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True)
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        task = bundle.unpickle_task()  # main() verified the bundle
    except Exception:
        return _setup_failed(f"cannot load the task:\n{traceback.format_exc()}")
    try:
        if bundle.manifest["task_kind"] == "script":
            _run_script(task, bundle.path / "script.sh")
            value = None
        else:
            value = _call_task(task)
    except _Terminated:
        print("nemo_run_k8s: stopped by SIGTERM", file=sys.stderr, flush=True)
        return EXIT_TERMINATED
    except BaseException as err:
        tb = _user_traceback(err)
        print(tb, file=sys.stderr, end="", flush=True)
        if rank == 0:
            _publish(output, "error", tb)
        _write_termination_log(tb)
        return EXIT_TASK_FAILED
    if rank == 0:
        status, text = _publish(output, "success", value, f"the task {bundle.manifest['target']}")
        if status != "success":  # the value cannot travel back: the job failed
            print(f"nemo_run_k8s: {text}", file=sys.stderr, flush=True)
            _write_termination_log(text)
            return EXIT_TASK_FAILED
    return EXIT_OK


def _call_task(task: Any) -> Any:
    import functools

    if isinstance(task, functools.partial):  # a run.Partial the bundle holds built
        return task()
    import fiddle as fdl

    built = fdl.build(task)
    if not callable(built):
        raise TypeError(
            f"run.Config built a {type(built).__name__}, which is not callable: use "
            "run.Partial for a function to call, or a Config of a class with __call__"
        )
    return built()


def _user_traceback(err: BaseException) -> str:
    """The traceback without this module's own frames, which only add noise."""
    tb = err.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(err), err, tb))


def _run_script(script: Any, script_file: Path) -> None:
    # Python programs the script starts print as they go, unless the script says otherwise.
    env = {"PYTHONUNBUFFERED": "1", **os.environ, **script.env_vars}
    with tempfile.TemporaryDirectory() as tmp:
        # The script runs from a private copy: a bundle may live on a read-only layer.
        path = Path(tmp) / script.name
        path.write_bytes(script_file.read_bytes())
        # Its own process group, so a stop reaches the programs the script started too.
        proc = subprocess.Popen(script.command(str(path)), env=env, start_new_session=True)
        try:
            returncode = proc.wait()
        except BaseException:  # SIGTERM (a cancel) or Ctrl-C
            _stop_group(proc)
            raise
    if returncode != 0:
        raise RuntimeError(f"script {script.name} exited with code {returncode}")


def _stop_group(proc: subprocess.Popen[bytes], grace_seconds: float = 5.0) -> None:
    """SIGTERM to the script's process group; SIGKILL to what is left after the grace time."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _run_torchrun(args: argparse.Namespace, nproc: int) -> int:
    """Starts one entrypoint per process through torchrun, with the operator's env.

    The flags are spelled the way the image's torch accepts (see :mod:`.torchrun`).
    """
    from nemo_run_k8s.runtime import torchrun

    env = os.environ
    try:
        command = torchrun.command(
            nnodes=env.get("PET_NNODES", "1"),
            nproc_per_node=nproc,
            node_rank=env.get("PET_NODE_RANK", "0"),
            master_addr=env.get("MASTER_ADDR", "127.0.0.1"),
            master_port=env.get("MASTER_PORT", "29500"),
        )
    except torchrun.TorchrunUnavailable as err:
        return _setup_failed(str(err))
    command += ["-m", "nemo_run_k8s.runtime.entrypoint", str(args.bundle)]
    if args.output is not None:
        command += ["--output", str(args.output)]
    try:
        proc = subprocess.Popen(command, env={**env, WORKER_ENV: "1"})
    except OSError as err:
        return _setup_failed(f"cannot start torchrun: {err}")
    signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
    returncode = proc.wait()
    if returncode == 0:
        return EXIT_OK
    if returncode < 0 or returncode == EXIT_TERMINATED:
        return EXIT_TERMINATED
    _write_termination_log(f"torchrun exited with code {returncode}")
    return EXIT_TASK_FAILED


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated()


def _publish(
    output: Path | None, status: str, value: Any, source: str = "the task"
) -> tuple[str, Any]:
    """Publishes rank 0's outcome (file and/or log line); returns the status and value sent.

    A value that cannot be pickled is sent as an error naming its type and
    ``source`` (see ``bundle.outcome.pickle_outcome``).
    """
    from nemo_run_k8s.bundle.outcome import pickle_outcome, store_outcome

    status, value, data = pickle_outcome(status, value, source)
    if output is not None:
        store_outcome(output, data)
    if os.environ.get(OUTCOME_IN_LOG_ENV) == "1":
        print(encode_outcome_line(data), flush=True)
    return status, value


def _setup_failed(message: str) -> int:
    print(f"nemo_run_k8s: {message}", file=sys.stderr, flush=True)
    _write_termination_log(message)
    return EXIT_SETUP_ERROR


def _write_termination_log(message: str) -> None:
    path = os.environ.get(TERMINATION_LOG_ENV, TERMINATION_LOG)
    if not os.path.exists(path):
        return
    data = message.encode(errors="replace")
    if len(data) > 4000:  # Kubernetes keeps at most 4096 bytes; keep the end (the error)
        data = b"..." + data[-3997:]
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
