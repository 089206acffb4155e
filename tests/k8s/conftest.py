from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.k8s.fake_apiserver import FakeApiServer
from tests.k8s.lifecycle import fast_polling


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    with FakeApiServer() as srv:
        yield srv


@pytest.fixture
def kubeconfig(server: FakeApiServer, tmp_path: Path) -> Path:
    return server.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture(autouse=True)
def _fast_polling() -> Iterator[None]:
    with fast_polling():
        yield
