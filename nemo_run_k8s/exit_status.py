"""``exit.json``: how a job on this host ended, written once by its supervisor.

One format for every backend that supervises jobs on this host (local
processes, Docker containers)::

    {"state": "FAILED", "reason": "node 1 exited with code 1",
     "exit_codes": {"0": 143, "1": 1}}

``state`` is a :class:`~nemo_run_k8s.spec.JobState` value; ``exit_codes`` maps
each node to its exit status (None: the process or container was lost). The
first writer wins, so a supervisor and a process finishing a job whose
supervisor died can never disagree. Standard library only: the local
supervisor imports it without fiddle.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")


@dataclasses.dataclass(frozen=True)
class ExitStatus:
    state: str
    reason: str = ""
    exit_codes: dict[int, int | None] = dataclasses.field(default_factory=dict)

    def write(self, path: Path) -> bool:
        """Writes the file atomically unless it exists; returns whether this call wrote it."""
        data = {
            "state": self.state,
            "reason": self.reason,
            "exit_codes": {str(node): code for node, code in self.exit_codes.items()},
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(json.dumps(data, sort_keys=True))
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink()

    @classmethod
    def read(cls, path: Path) -> ExitStatus | None:
        """The recorded status, or None when nothing has been written yet.

        A damaged file (it is written whole or not at all, so only something
        else can damage it) reads as FAILED, saying so: how the job ended is
        no longer known, and it has ended.
        """
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            codes = {int(node): code for node, code in data.get("exit_codes", {}).items()}
            state = str(data["state"])
            if state not in _STATES:
                raise ValueError(f"unknown state {state!r}")
            return cls(state, str(data.get("reason", "")), codes)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            return cls(
                "FAILED",
                f"{path} is damaged ({type(err).__name__}: {err}); how the job ended is not known",
            )


def describe_exit(returncode: int, what: str = "the job") -> str:
    """``"the job exited with code 2"`` or ``"the job was killed by SIGKILL"``."""
    signum = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    if signum:
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        if returncode < 0:
            return f"{what} was killed by {name}"
        return f"{what} exited with code {returncode} ({name})"
    return f"{what} exited with code {returncode}"
