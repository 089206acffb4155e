"""The Kubernetes client goes where the kubeconfig points now, and a dead cluster costs little.

Connections used to be cached under the kubeconfig argument as given (None for
"the default"), so after KUBECONFIG changed in a process, or the current context
in the file did, jobs still went to the previous cluster; and a cluster that
went away cost a 60 s read timeout (twice, with the retry) on every call.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from nemo_run_k8s.errors import BackendError
from nemo_run_k8s.executors.kubernetes import client as kc
from nemo_run_k8s.executors.kubernetes.executor import KubernetesExecutor
from nemo_run_k8s.spec import JobIdentity
from tests.k8s.fake_apiserver import FakeApiServer
from tests.k8s.lifecycle import FakeImageExecutor, fake_bundle


def _kubeconfig(path: Path, current: str, **servers: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": n, "cluster": {"server": url}} for n, url in servers.items()],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": n, "context": {"cluster": n, "user": "u"}} for n in servers],
                "current-context": current,
            }
        )
    )
    return path


@pytest.fixture
def two_servers() -> Iterator[tuple[FakeApiServer, FakeApiServer]]:
    with FakeApiServer() as a, FakeApiServer() as b:
        yield a, b


def _preflight() -> None:
    KubernetesExecutor(image_repo="registry.example.com/jobs").check_backend()


def test_switching_kubeconfig_in_one_process_goes_to_the_new_cluster(
    two_servers: tuple[FakeApiServer, FakeApiServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = two_servers
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path / "a", "c", c=a.url)))
    _preflight()
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path / "b", "c", c=b.url)))
    _preflight()
    assert (len(a.requests), len(b.requests)) == (1, 1)


def test_a_rewritten_kubeconfig_is_read_again(
    two_servers: tuple[FakeApiServer, FakeApiServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = two_servers
    path = _kubeconfig(tmp_path / "config", "one", one=a.url, two=b.url)
    monkeypatch.setenv("KUBECONFIG", str(path))
    _preflight()
    _kubeconfig(path, "two", one=a.url, two=b.url)  # kubectl config use-context two
    _preflight()
    _kubeconfig(path, "two", one=a.url, two=a.url)  # the cluster's address changed
    _preflight()
    assert (len(a.requests), len(b.requests)) == (2, 1)


def test_a_job_stays_on_the_context_it_was_launched_on(
    two_servers: tuple[FakeApiServer, FakeApiServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = two_servers
    path = _kubeconfig(tmp_path / "config", "one", one=a.url, two=b.url)
    monkeypatch.setenv("KUBECONFIG", str(path))
    executor = FakeImageExecutor(image_repo="127.0.0.1:5000/jobs")
    bundle = fake_bundle(tmp_path / "bundle")
    job = JobIdentity(job_id="train-1234abcd", name="train", job_dir=tmp_path / "job")
    handle = executor.launch(executor.plan(bundle, job), bundle, job)  # type: ignore[arg-type]
    assert handle["kube_context"] == "one"
    _kubeconfig(path, "two", one=a.url, two=b.url)  # the user switches clusters
    assert KubernetesExecutor.status(handle).reason != "the PyTorchJob no longer exists"
    assert b.requests == [] and a.job("default", "train-1234abcd") is not None
    assert [h.handle["kube_context"] for h in KubernetesExecutor.list_jobs()] == []  # on "two"


class SilentServer:
    """Accepts connections and never answers: a cluster that went away behind a load balancer."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        # shutdown() wakes the accept() in progress (close() alone does not): the thread ends,
        # so later tests see a single-threaded process (local jobs fork only then).
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(timeout=10)
        for conn in self.accepted:
            conn.close()


def test_a_cluster_that_went_away_costs_one_timeout_not_one_per_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert kc.CONNECT_TIMEOUT <= 10 and kc.READ_TIMEOUT <= 30  # not 60 s per call
    monkeypatch.setattr(kc, "READ_TIMEOUT", 0.3)
    silent = SilentServer()
    try:
        monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path / "k", "c", c=silent.url)))
        handle = {"namespace": "default", "name": "train-1", "kubeconfig": None}
        with pytest.raises(BackendError, match="did not answer") as first:
            KubernetesExecutor.status(handle)
        assert len(silent.accepted) == 1  # a read that timed out is not retried
        for _ in range(5):  # e.g. `nemo-run-k8s list` with several jobs on that cluster
            with pytest.raises(BackendError, match="not asked again") as later:
                KubernetesExecutor.status(handle)
        assert len(silent.accepted) == 1
        assert str(first.value) in str(later.value)
    finally:
        silent.close()
