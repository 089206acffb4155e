"""Watches one local job process and records how it ended.

Run as a script (``python _supervisor.py JOB_DIR LOG_FILE -- COMMAND...``), not
as a module, so it starts without importing nemo_run_k8s or fiddle; or called
as :func:`supervise` in a process forked from the submitter (see
``_fork.py``), which then forks the job itself. Either way it is the leader of
the job's process group: ``cancel`` signals the whole group. When the job ends
it writes ``JOB_DIR/exit.json`` atomically, so the job's end is known to any
process, including one started long after the submitter exited. Standard
library only.
"""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import BinaryIO


def supervise(job_dir: str, log_file: str, start: Callable[[BinaryIO], int]) -> int:
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
    status = {
        "returncode": returncode,
        "cancelled": os.path.exists(os.path.join(job_dir, "cancel-requested")),
    }
    tmp = os.path.join(job_dir, ".exit.json.tmp")
    with open(tmp, "w") as f:
        json.dump(status, f)
    os.replace(tmp, os.path.join(job_dir, "exit.json"))
    return 0


def main() -> int:
    job_dir, log_file, sep, *command = sys.argv[1:]
    if sep != "--" or not command:
        print("usage: _supervisor.py JOB_DIR LOG_FILE -- COMMAND...", file=sys.stderr)
        return 2

    def start(log: BinaryIO) -> int:
        child = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        return child.wait()

    return supervise(job_dir, log_file, start)


if __name__ == "__main__":
    sys.exit(main())
