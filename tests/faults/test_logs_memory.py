"""Item 11: reading or following a log keeps memory bounded, whatever the log's size.

Peak resident memory of ``nemo-run-k8s logs [-f]`` on a 128 MB log is compared
with the same command on a small log: reading line by line in chunks, the
difference stays far below the log's size (it was twice the log before).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import nemo_run_k8s as run
from tests.conftest import child_env

LOG_MB = 128
# Runs the CLI with its output discarded, then reports its own peak resident memory (kB).
DRIVER = textwrap.dedent(
    """
    import os, sys
    from nemo_run_k8s import cli
    out = os.open(os.devnull, os.O_WRONLY)
    os.dup2(out, 1)
    code = cli.main(sys.argv[2:])
    peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
    open(sys.argv[1], "w").write(f"{code} {peak}")
    """
)


def hello() -> str:
    print("hello")
    return "done"


def peak_kb(tmp_path: Path, home: Path, *argv: str) -> int:
    report = tmp_path / "peak"
    subprocess.run(
        [sys.executable, "-c", DRIVER, str(report), *argv],
        env=child_env(NEMO_RUN_K8S_HOME=str(home)),
        check=True,
    )
    code, peak = report.read_text().split()
    assert code == "0"
    return int(peak)


@pytest.mark.parametrize("follow", [False, True], ids=["logs", "logs -f"])
def test_reading_a_large_log_keeps_memory_bounded(tmp_path: Path, home: Path, follow: bool) -> None:
    small = run.submit(run.Partial(hello), run.LocalExecutor())
    large = run.submit(run.Partial(hello), run.LocalExecutor())
    assert small.wait() == large.wait() == run.JobState.SUCCEEDED
    line = ("x" * 1023 + "\n").encode()
    with open(large.record.handle["log_files"][0], "ab") as log:
        for _ in range(LOG_MB):
            log.write(line * 1024)
        log.write(b"y" * (4 << 20))  # and a 4 MB line with no newline at the end
    flag = ["-f"] if follow else []
    baseline = peak_kb(tmp_path, home, "logs", *flag, small.id)
    peak = peak_kb(tmp_path, home, "logs", *flag, large.id)
    assert peak - baseline < 48 * 1024, f"{(peak - baseline) // 1024} MB more for a {LOG_MB} MB log"


def test_a_long_line_comes_in_pieces_and_nothing_is_lost(tmp_path: Path) -> None:
    from nemo_run_k8s.executors.base import MAX_LOG_LINE as MAX_LINE
    from nemo_run_k8s.executors.host import follow_files

    log = tmp_path / "node-0.log"
    log.write_text("a\n" + "b" * (MAX_LINE * 2 + 5) + "\nc")
    lines = list(follow_files([log], lambda: True, follow=False))
    assert lines[0] == "a" and lines[-1] == "c"
    assert "".join(lines[1:-1]) == "b" * (MAX_LINE * 2 + 5)
    assert max(len(line) for line in lines) == MAX_LINE


def test_a_pod_log_is_streamed_not_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """``nemo-run-k8s logs`` of a Kubernetes job reads the pod's log as a stream, too."""
    from types import SimpleNamespace

    from nemo_run_k8s.executors.base import MAX_LOG_LINE
    from nemo_run_k8s.executors.kubernetes import client as kc
    from nemo_run_k8s.executors.kubernetes.executor import KubernetesExecutor

    chunks_sent: list[int] = []
    asked: dict[str, object] = {}

    class LogResponse:
        def stream(self, size: int, decode_content: bool = True) -> object:
            for i in range(1000):  # 1000 lines of 1 kB, then one line of 3 MB
                chunks_sent.append(i)
                yield b"x" * 1023 + b"\n"
            for _ in range(48):
                yield b"y" * 65536
            yield b"\n"

        def release_conn(self) -> None:
            pass

    def call(*args: object, **kwargs: object) -> LogResponse:
        asked.update(kwargs)
        return LogResponse()

    pod = {
        "metadata": {
            "name": "job-master-0",
            "labels": {kc.REPLICA_TYPE_SELECTOR: "master", kc.REPLICA_INDEX_SELECTOR: "0"},
        },
        "status": {
            "containerStatuses": [{"name": "pytorch", "state": {"running": {"startedAt": "now"}}}]
        },
    }
    conn = SimpleNamespace(core=lambda: SimpleNamespace(read_namespaced_pod_log=None))
    monkeypatch.setattr(kc, "call", call)
    monkeypatch.setattr(kc, "handle_conn", lambda handle: conn)
    monkeypatch.setattr(kc, "list_pods", lambda *args, **kwargs: [pod])
    handle = {"namespace": "ns", "name": "job", "num_nodes": 1, "nproc_per_node": 1}
    lines = (line.removeprefix("[master0 rank0] ") for line in KubernetesExecutor.logs(handle))
    assert next(lines) == "x" * 1023
    assert len(chunks_sent) == 1 and asked["follow"] is False  # one chunk read so far
    rest = list(lines)
    assert rest[:999] == ["x" * 1023] * 999
    assert "".join(rest[999:]) == "y" * (48 * 65536)  # in pieces of at most MAX_LOG_LINE
    assert max(len(line) for line in rest) == MAX_LOG_LINE


def test_the_docker_supervisor_holds_at_most_one_line() -> None:
    """A container redrawing a progress bar with \\r for hours never ends a line."""
    import io

    from nemo_run_k8s.executors.base import MAX_LOG_LINE
    from nemo_run_k8s.executors.docker.supervisor import write_lines

    out = io.BytesIO()
    chunks = (b"\rstep %06d" % i for i in range(400_000))  # 4.4 MB, no newline
    write_lines(chunks, out, lambda line: "[node0] " + line)
    lines = out.getvalue().decode().split("\n")[:-1]
    assert len(lines) == 5 and max(len(line) for line in lines) == len("[node0] ") + MAX_LOG_LINE
    assert "".join(line.removeprefix("[node0] ") for line in lines).endswith("\rstep 399999")


def test_a_log_file_keeps_its_line_ends(tmp_path: Path) -> None:
    """Log files read in binary chunks still end lines at \\n, \\r\\n and \\r (a progress bar)."""
    from nemo_run_k8s.executors.host import READ_CHUNK, follow_files

    log = tmp_path / "node-0.log"
    log.write_bytes(b"a\r\n" + b"x" * (READ_CHUNK - 4) + b"\r\nb\r 10%\r 20%\nc")
    lines = list(follow_files([log], lambda: True, follow=False))
    assert lines == ["a", "x" * (READ_CHUNK - 4), "b", " 10%", " 20%", "c"]
