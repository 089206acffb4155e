"""The chart's submitter Role against the calls the KubernetesExecutor really makes.

The calls are not listed here: they are recorded by the fake API server while
``tests.k8s.lifecycle.run_full_lifecycle`` drives the executor through a job's whole life
(submit, state, logs, events, reattach, cancel). Every recorded call must be allowed by the
Role rendered with `helm template`, and every (group, resource, verb) the Role grants must have
been recorded at least once: nothing missing (403 for a researcher), nothing extra.
"""

from __future__ import annotations

import pytest

from tests.helm.chart import REPO_ROOT, Helm, only
from tests.helm.rbac import ApiCall, uncovered_calls, unused_grants

if not (REPO_ROOT / "tests" / "k8s" / "lifecycle.py").exists():
    pytest.skip(
        "tests/k8s/lifecycle.py (the executor's recorded full lifecycle) is not in this tree "
        "yet; the Role cannot be checked against the executor's calls without it",
        allow_module_level=True,
    )

from tests.k8s.fake_apiserver import FakeApiServer
from tests.k8s.lifecycle import run_full_lifecycle

pytestmark = pytest.mark.helm


@pytest.fixture(scope="module")
def recorded_calls() -> list[ApiCall]:
    with FakeApiServer() as server:
        run_full_lifecycle(server)
        calls = [ApiCall.from_recorded(item) for item in server.requests]
    assert calls, "the lifecycle made no API calls: the recorder is not wired up"
    return calls


def test_role_allows_every_call_the_executor_makes(
    helm: Helm, recorded_calls: list[ApiCall]
) -> None:
    rules = only(helm.render(), "Role")["rules"]
    missing = uncovered_calls(rules, recorded_calls)
    assert not missing, (
        "the executor makes calls the submitter Role does not allow (researchers would get "
        f"403); add them to helm/nemo-run-k8s/templates/_rbac.tpl: {missing}"
    )


def test_role_grants_nothing_the_executor_does_not_use(
    helm: Helm, recorded_calls: list[ApiCall]
) -> None:
    rules = only(helm.render(), "Role")["rules"]
    extra = unused_grants(rules, recorded_calls)
    assert not extra, (
        "the submitter Role grants more than the executor uses; remove these from "
        f"helm/nemo-run-k8s/templates/_rbac.tpl: {extra}"
    )
