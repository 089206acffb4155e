"""Watches one local job process and records how it ended.

Run as a script (``python supervisor.py JOB_DIR LOG_FILE -- COMMAND...``), not
as ``-m``, so it starts without importing fiddle (it needs only the standard
library and two stdlib-only modules of ours); or called as
:func:`supervise_process` in a process forked from the submitter (see
``executors/fork.py``), which then forks the job itself. Either way it is the
leader of the job's process group: ``cancel`` signals the whole group. When the
job ends it writes ``JOB_DIR/exit.json`` (``nemo_run_k8s.exit_status``), so the
job's end is known to any process, including one started long after the
submitter exited.
"""

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from nemo_run_k8s.exit_status import ExitStatus, describe_exit
from nemo_run_k8s.paths import JobPaths


def supervise_process(job_dir: str, log_file: str, start: Callable[[BinaryIO], int]) -> int:
    """Runs the job (``start(log)`` returns its exit status), then writes ``exit.json``."""
    # A cancel signals the whole group; the job handles it, we only wait for it.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    with open(log_file, "ab", buffering=0) as log:
        try:
            returncode = start(log)
        except OSError as err:
            log.write(f"nemo_run_k8s: cannot start the job: {err}\n".encode())
            returncode = 127
    paths = JobPaths(Path(job_dir))
    if returncode == 0:
        status = ExitStatus("SUCCEEDED", "", {0: 0})
    elif paths.cancel_requested.exists():
        status = ExitStatus("CANCELLED", "cancelled", {0: returncode})
    else:
        status = ExitStatus("FAILED", describe_exit(returncode), {0: returncode})
    status.write(paths.exit_status)
    return 0


def main() -> int:
    job_dir, log_file, sep, *command = sys.argv[1:]
    if sep != "--" or not command:
        print("usage: supervisor.py JOB_DIR LOG_FILE -- COMMAND...", file=sys.stderr)
        return 2

    def start(log: BinaryIO) -> int:
        child = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        return child.wait()

    return supervise_process(job_dir, log_file, start)


if __name__ == "__main__":
    sys.exit(main())
