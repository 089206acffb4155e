"""Runs a command with stderr on a pseudo-terminal, as a user's shell would."""

from __future__ import annotations

import dataclasses
import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


@dataclasses.dataclass
class TtyRun:
    returncode: int
    stdout: str  # a pipe, as when a script reads the output
    terminal: str  # what the terminal received (stderr), escape codes included


def run_on_tty(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    timeout: float = 120,
    stdout_on_tty: bool = False,
) -> TtyRun:
    """Runs ``argv`` with stderr (and stdin) on a 120x40 pseudo-terminal; stdout is a pipe."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        list(argv),
        stdin=slave,
        stdout=slave if stdout_on_tty else subprocess.PIPE,
        stderr=slave,
        env={**env, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"},
        cwd=cwd,
        start_new_session=True,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every writer has closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None and not select.select([master], [], [], 0.2)[0]:
                break
        else:
            proc.kill()
            raise AssertionError(f"{argv} did not end in {timeout}s:\n{b''.join(chunks)!r}")
        stdout = proc.stdout.read().decode() if proc.stdout else ""
        proc.wait(timeout=30)
    finally:
        os.close(master)
    return TtyRun(proc.returncode, stdout, b"".join(chunks).decode(errors="replace"))


HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"


def ended_cleanly(terminal: str) -> bool:
    """A live display was drawn (cursor hidden) and taken down (cursor shown again after)."""
    hidden = terminal.rfind(HIDE_CURSOR)
    return hidden >= 0 and terminal.find(SHOW_CURSOR, hidden) > hidden
