"""The Role-versus-recorded-calls matcher, proven on hand-made data (no helm needed)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.helm.rbac import ApiCall, Grant, grants, is_allowed, uncovered_calls, unused_grants

RULES = [
    {"apiGroups": ["kubeflow.org"], "resources": ["pytorchjobs"], "verbs": ["create", "get"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
]

EXACT_CALLS = [
    ApiCall("create", "kubeflow.org", "pytorchjobs"),
    ApiCall("get", "kubeflow.org", "pytorchjobs"),
    ApiCall("get", "kubeflow.org", "pytorchjobs"),  # repeated calls count once
    ApiCall("list", "", "pods"),
    ApiCall("get", "", "pods", "log"),
]


def test_rules_matching_the_calls_exactly_pass_both_checks() -> None:
    assert uncovered_calls(RULES, EXACT_CALLS) == []
    assert unused_grants(RULES, EXACT_CALLS) == []


def test_a_call_no_rule_allows_is_reported() -> None:
    calls = [*EXACT_CALLS, ApiCall("patch", "kubeflow.org", "pytorchjobs")]
    assert uncovered_calls(RULES, calls) == [ApiCall("patch", "kubeflow.org", "pytorchjobs")]


def test_the_resource_grants_no_subresource() -> None:
    rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
    assert not is_allowed(rules, ApiCall("get", "", "pods", "log"))
    assert is_allowed(rules, ApiCall("get", "", "pods"))


def test_the_api_group_must_match() -> None:
    assert not is_allowed(RULES, ApiCall("create", "", "pytorchjobs"))
    assert not is_allowed(RULES, ApiCall("list", "apps", "pods"))


def test_a_grant_no_call_used_is_reported() -> None:
    rules = [*RULES, {"apiGroups": [""], "resources": ["pods", "secrets"], "verbs": ["delete"]}]
    assert unused_grants(rules, EXACT_CALLS) == [
        Grant("", "pods", "delete"),
        Grant("", "secrets", "delete"),
    ]


def test_wildcards_allow_like_the_api_server_but_fail_least_privilege() -> None:
    rules = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
    assert is_allowed(rules, ApiCall("delete", "apps", "deployments"))
    with pytest.raises(ValueError, match="wildcard"):
        unused_grants(rules, EXACT_CALLS)
    log_rules = [{"apiGroups": [""], "resources": ["*/log"], "verbs": ["get"]}]
    assert is_allowed(log_rules, ApiCall("get", "", "pods", "log"))
    assert not is_allowed(log_rules, ApiCall("get", "", "pods"))


def test_resource_names_are_refused_rather_than_misjudged() -> None:
    rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["a"]}]
    with pytest.raises(ValueError, match="resourceNames"):
        is_allowed(rules, ApiCall("get", "", "pods"))
    with pytest.raises(ValueError, match="resourceNames"):
        grants(rules)


def test_discovery_requests_need_no_rule() -> None:
    assert uncovered_calls(RULES, [*EXACT_CALLS, ApiCall("get", "", "")]) == []


@pytest.mark.parametrize(
    ("recorded", "expected"),
    [
        (("get", "", "pods", "log"), ApiCall("get", "", "pods", "log")),
        (("list", None, "events", None), ApiCall("list", "", "events")),
        (("watch", "core", "pods"), ApiCall("watch", "", "pods")),
        (
            SimpleNamespace(verb="delete", api_group="kubeflow.org", resource="pytorchjobs",
                            subresource=None),
            ApiCall("delete", "kubeflow.org", "pytorchjobs"),
        ),
    ],
    ids=["tuple", "none-group", "core-group", "object"],
)  # fmt: skip
def test_recorded_entries_normalize(recorded: object, expected: ApiCall) -> None:
    assert ApiCall.from_recorded(recorded) == expected


def test_http_methods_are_not_verbs() -> None:
    with pytest.raises(ValueError, match="not a Kubernetes resource verb"):
        ApiCall.from_recorded(("GET", "", "pods", ""))
