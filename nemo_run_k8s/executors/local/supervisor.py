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

A local job ends as a container does: once its main process has exited,
whatever it left running (a server started in the background, a grandchild in a
session of its own) is stopped, SIGTERM then SIGKILL after
:data:`LEFTOVER_GRACE_SECONDS`, before ``exit.json`` is written. The supervisor
is a child subreaper (see ``processes.py``), so even orphans are found.
"""

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from nemo_run_k8s.executors.local.processes import set_child_subreaper, stop_descendants
from nemo_run_k8s.exit_status import ExitStatus, describe_exit
from nemo_run_k8s.paths import JobPaths

#: How long what a job left running gets between SIGTERM and SIGKILL (less than a
#: cancel's grace, so a cancel never kills the supervisor while it cleans up).
LEFTOVER_GRACE_SECONDS = 3.0


def supervise_process(job_dir: str, log_file: str, start: Callable[[BinaryIO], int]) -> int:
    """Runs the job (``start(log)`` returns its exit status), then writes ``exit.json``."""
    # A cancel signals the whole group; the job handles it, we only wait for it.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    set_child_subreaper()
    with open(log_file, "ab", buffering=0) as log:
        try:
            returncode = start(log)
        except OSError as err:
            log.write(f"nemo_run_k8s: cannot start the job: {err}\n".encode())
            returncode = 127
        left = stop_descendants(LEFTOVER_GRACE_SECONDS)
        if left:
            pids = " ".join(map(str, left))
            log.write(f"nemo_run_k8s: stopped what the job left running (pids {pids})\n".encode())
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
