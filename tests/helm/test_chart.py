"""The namespace chart, rendered by the real helm binary.

Lint and render with default and with every-option-on values; bad values fail at install with
the schema's message; rendered built-in objects validate offline; optional objects appear only
when asked for; the submitter Role holds exactly the expected rules.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.chart import (
    CHART_DIR,
    FULL_VALUES,
    RELEASE,
    RELEASE_NAMESPACE,
    REPO_ROOT,
    Helm,
    by_kind,
    only,
)

pytestmark = pytest.mark.helm

VALUE_SETS = {"default": (), "full": (FULL_VALUES,)}

# Cluster-scoped kinds the chart may render; everything else must land in the target namespace.
CLUSTER_SCOPED = {"Namespace", "PriorityClass"}

# What the submitter Role must hold (checked against the executor's recorded calls in
# test_rbac_coverage.py; here it pins the rendered form).
EXPECTED_RULES = [
    {
        "apiGroups": ["kubeflow.org"],
        "resources": ["pytorchjobs"],
        "verbs": ["create", "get", "list", "delete"],
    },
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
]


def package_version() -> str:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        tomllib = pytest.importorskip("tomli")
    with open(REPO_ROOT / "pyproject.toml", "rb") as f:
        return str(tomllib.load(f)["project"]["version"])


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_lint_strict_is_clean(helm: Helm, value_set: str) -> None:
    args = ["lint", "--strict", str(CHART_DIR)]
    for path in VALUE_SETS[value_set]:
        args += ["--values", str(path)]
    result = helm.run(*args)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "0 chart(s) failed" in output
    assert "[WARNING]" not in output and "[ERROR]" not in output, output


def test_default_values_render_service_account_and_role(helm: Helm) -> None:
    objects = helm.render()
    assert sorted(by_kind(objects)) == ["Role", "ServiceAccount"]
    account = only(objects, "ServiceAccount")
    assert account["metadata"]["name"] == "nemo-run-jobs"
    assert account["automountServiceAccountToken"] is False
    assert "imagePullSecrets" not in account


def test_full_values_render_every_object(helm: Helm) -> None:
    objects = helm.render([FULL_VALUES])
    assert sorted(by_kind(objects)) == sorted(
        [
            "LocalQueue",
            "Namespace",
            "PersistentVolumeClaim",
            "PriorityClass",
            "Role",
            "RoleBinding",
            "ServiceAccount",
        ]
    )
    for obj in objects:
        assert obj["metadata"]["labels"]["app.kubernetes.io/version"] == package_version()
        assert obj["metadata"]["labels"]["cost-center"] == "ml-1234"


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_namespaced_objects_land_in_the_target_namespace(helm: Helm, value_set: str) -> None:
    objects = helm.render(VALUE_SETS[value_set])
    target = {"default": RELEASE_NAMESPACE, "full": "team-a"}[value_set]
    for obj in objects:
        if obj["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in obj["metadata"], obj
        else:
            assert obj["metadata"]["namespace"] == target, obj


def test_namespace_name_redirects_every_namespaced_object(helm: Helm) -> None:
    objects = helm.render(sets=["namespace.name=team-b", "persistence.create=true"])
    assert {o["metadata"]["namespace"] for o in objects} == {"team-b"}


def test_namespace_create_refuses_the_release_namespace(helm: Helm) -> None:
    result = helm.template(sets=["namespace.create=true", f"namespace.name={RELEASE_NAMESPACE}"])
    assert result.returncode != 0
    assert "namespace other than the release namespace" in result.stderr
    assert "--create-namespace" in result.stderr


@pytest.mark.parametrize(
    ("sets", "kind"),
    [
        (["namespace.create=true", "namespace.name=team-b"], "Namespace"),
        (["persistence.create=true"], "PersistentVolumeClaim"),
        (["priorityClass.create=true", "priorityClass.name=train-high"], "PriorityClass"),
        (["kueue.localQueue.create=true", "kueue.localQueue.clusterQueue=gpus"], "LocalQueue"),
        (["rbac.subjects[0].kind=Group", "rbac.subjects[0].name=ml"], "RoleBinding"),
    ],
    ids=["namespace", "pvc", "priorityclass", "localqueue", "rolebinding"],
)
def test_optional_object_only_when_enabled(helm: Helm, sets: list[str], kind: str) -> None:
    assert kind not in by_kind(helm.render())
    assert len(by_kind(helm.render(sets=sets))[kind]) == 1


# Each bad value, and the part of helm's message that must point the user at it.
BAD_VALUES = [
    (["persistence.size=lots"], "at '/persistence/size'"),
    (["persistence.accessModes={ReadWriteEverything}"], "at '/persistence/accessModes/0'"),
    (["priorityClass.value=2000000000"], "at '/priorityClass/value': maximum"),
    (["priorityClass.value=high"], "at '/priorityClass/value': got string, want integer"),
    (["priorityClass.create=true"], "at '/priorityClass/name'"),
    (["priorityClass.create=true", "priorityClass.name=system-x"], "at '/priorityClass/name'"),
    (["kueue.localQueue.create=true"], "at '/kueue/localQueue/clusterQueue'"),
    (["namespace.create=true"], "at '/namespace/name'"),
    (["serviceAccount.name=Bad_Name"], "at '/serviceAccount/name'"),
    (["rbac.subjects[0].kind=Robot", "rbac.subjects[0].name=r2"], "at '/rbac/subjects/0/kind'"),
    (["rbac.subjects[0].kind=User"], "missing property 'name'"),
    (["imagePullSecrets={regcred,regcred}"], "at '/imagePullSecrets'"),
    (["persistance.create=true"], "additional properties 'persistance' not allowed"),
    (["rbac.create=yes"], "at '/rbac/create': got string, want boolean"),
]


@pytest.mark.parametrize(
    ("sets", "message"), BAD_VALUES, ids=[",".join(sets) for sets, _ in BAD_VALUES]
)
def test_schema_rejects_bad_values(helm: Helm, sets: list[str], message: str) -> None:
    result = helm.template(sets=sets)
    print(f"$ helm template ... {' '.join('--set ' + s for s in sets)}\n{result.stderr}")
    assert result.returncode != 0, f"accepted bad values {sets}"
    assert "don't meet the specifications of the schema" in result.stderr, result.stderr
    assert message in result.stderr, result.stderr
    assert result.stdout == ""


def test_schema_rejects_a_bad_values_file_at_install(helm: Helm, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"persistence": {"create": True, "size": 100}}))
    result = helm.run(
        "install", RELEASE, str(CHART_DIR), "-n", RELEASE_NAMESPACE, "--dry-run=client",
        "--values", str(values),
    )  # fmt: skip
    assert result.returncode != 0
    assert "at '/persistence/size': got number, want string" in result.stderr, result.stderr


def test_chart_versions_follow_the_package(helm: Helm) -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["appVersion"] == package_version()
    assert chart["version"] == package_version()
    shown = helm.run("show", "chart", str(CHART_DIR))
    assert f"appVersion: {package_version()}" in shown.stdout


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_role_rules_are_exactly_the_executor_calls(helm: Helm, value_set: str) -> None:
    role = only(helm.render(VALUE_SETS[value_set]), "Role")
    assert role["rules"] == EXPECTED_RULES


def test_rbac_create_false_renders_no_role_or_binding(helm: Helm) -> None:
    kinds = by_kind(helm.render([FULL_VALUES], sets=["rbac.create=false"]))
    assert "Role" not in kinds and "RoleBinding" not in kinds


def test_role_binding_subjects(helm: Helm) -> None:
    objects = helm.render([FULL_VALUES])
    role, binding = only(objects, "Role"), only(objects, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "Group", "name": "ml-researchers", "apiGroup": "rbac.authorization.k8s.io"},
        {"kind": "User", "name": "alice@example.com", "apiGroup": "rbac.authorization.k8s.io"},
        {"kind": "ServiceAccount", "name": "ci-submitter", "namespace": "ci"},
        {"kind": "ServiceAccount", "name": "notebook", "namespace": "team-a"},
    ]


def test_job_service_account_references_pull_secrets(helm: Helm) -> None:
    account = only(helm.render([FULL_VALUES]), "ServiceAccount")
    assert account["metadata"]["name"] == "team-a-jobs"
    assert account["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror-cred"}]
    assert account["automountServiceAccountToken"] is False


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        ([], None),
        (["persistence.storageClassName="], ""),
        (["persistence.storageClassName=nfs"], "nfs"),
    ],
    ids=["cluster-default", "no-provisioning", "named"],
)
def test_pvc_storage_class(helm: Helm, sets: list[str], expected: str | None) -> None:
    claim = only(helm.render(sets=["persistence.create=true", *sets]), "PersistentVolumeClaim")
    assert claim["spec"].get("storageClassName") == expected
    assert claim["spec"]["resources"]["requests"]["storage"] == "100Gi"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_priority_class_is_never_the_global_default(helm: Helm) -> None:
    priority = only(helm.render([FULL_VALUES]), "PriorityClass")
    assert priority["globalDefault"] is False
    assert (priority["value"], priority["preemptionPolicy"]) == (10000, "Never")


def test_local_queue_points_at_the_cluster_queue(helm: Helm) -> None:
    queue = only(helm.render([FULL_VALUES]), "LocalQueue")
    assert queue["apiVersion"] == "kueue.x-k8s.io/v1beta1"
    assert queue["spec"] == {"clusterQueue": "gpu-cluster-queue"}


# --- offline validation of built-in kinds ---------------------------------------------------

# The chart's kubeVersion floor, and the newest schema set kubernetes-validate ships.
CHART_KUBE_FLOOR = re.findall(
    r"\d+\.\d+\.\d+", yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["kubeVersion"]
)[0]
KUBE_VERSIONS = [CHART_KUBE_FLOOR, "latest"]


def validate_builtin(obj: dict[str, Any], version: str) -> None:
    """Strict offline validation of one built-in object; AssertionError names what is wrong."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    if version == "latest":
        version = kubernetes_validate.latest_version()
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        raise AssertionError(f"{obj['kind']} {obj['metadata']['name']}: {e.message}") from None


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_rendered_builtin_objects_validate(helm: Helm, value_set: str, version: str) -> None:
    """Strict validation (unknown fields rejected). LocalQueue is a Kueue CRD: no schema here."""
    validated = []
    for obj in helm.render(VALUE_SETS[value_set]):
        if obj["apiVersion"].startswith("kueue.x-k8s.io/"):
            continue
        validate_builtin(obj, version)
        validated.append(obj["kind"])
    assert "Role" in validated and "ServiceAccount" in validated


def test_validator_catches_a_broken_object(helm: Helm) -> None:
    """The offline validator is not a no-op: a misspelt field in a rendered object fails."""
    account = only(helm.render(), "ServiceAccount")
    account["automountToken"] = account.pop("automountServiceAccountToken")
    with pytest.raises(AssertionError, match="automountToken"):
        validate_builtin(account, "latest")


# --- NOTES.txt ------------------------------------------------------------------------------


def test_notes_show_executor_settings_for_full_values(helm: Helm) -> None:
    notes = helm.notes([FULL_VALUES])
    for line in [
        'namespace="team-a",',
        'service_account="team-a-jobs",',
        'image_pull_secrets=["regcred", "mirror-cred"],',
        'volumes=[run.PVCVolume("team-a-results", "/results")],',
        'priority_class="team-a-training",',
        'queue="team-a",',
        "kubectl get crd pytorchjobs.kubeflow.org",
        "kubectl get clusterqueue gpu-cluster-queue",
        "pytorchjobs (kubeflow.org): create, get, list, delete",
        "pods/log (core): get",
        "Group ml-researchers",
    ]:
        assert line in notes, f"{line!r} missing from NOTES:\n{notes}"


def test_notes_for_defaults_explain_how_to_bind_the_role(helm: Helm) -> None:
    notes = helm.notes()
    assert f'namespace="{RELEASE_NAMESPACE}",' in notes
    assert 'service_account="nemo-run-jobs",' in notes
    assert f"kubectl -n {RELEASE_NAMESPACE} create rolebinding" in notes
    for absent in ("volumes=", "priority_class=", "queue=", "image_pull_secrets="):
        assert absent not in notes, notes
