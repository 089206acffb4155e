"""No message, manifest, dry run or record shows a secret value or the environment."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import nemo_run_k8s as run
from nemo_run_k8s.errors import ConfigError, InvalidOptionError

TOKEN = "hf-abc/xyz"  # reads exactly like "secret-name/key"
MARKER = "s3cr3t-marker-7f2a"


def train(lr: float = 0.1) -> float:
    return lr


# --------------------------------------------------------------------------- Docker


@pytest.mark.parametrize(
    "value", [MARKER.encode(), bytearray(MARKER.encode()), 12345, f"{MARKER}\0tail"]
)
def test_docker_refuses_a_bad_secret_without_showing_it(value: object) -> None:
    with pytest.raises(InvalidOptionError, match="DockerExecutor option secret_env_vars") as caught:
        run.DockerExecutor(secret_env_vars={"T": value})
    assert MARKER not in str(caught.value) and "12345" not in str(caught.value)


def test_docker_secret_is_in_no_dry_run_repr_or_manifest(home: Path) -> None:
    executor = run.DockerExecutor(secret_env_vars={"API_TOKEN": MARKER})
    plan = run.dryrun(run.Partial(train), executor)
    assert MARKER not in str(plan) and MARKER not in repr(executor)
    assert MARKER not in json.dumps(plan.manifest) and MARKER not in json.dumps(plan.documents)


# --------------------------------------------------------------------------- Kubernetes


def _k8s(**options: object) -> run.KubernetesExecutor:
    return run.KubernetesExecutor(image_repo="registry.example.com/jobs", **options)


@pytest.mark.parametrize(
    "ref",
    [TOKEN, "hf_ABCDEFGHIJ", TOKEN.encode(), ("hf_ABC/x", "key"), ("name", "k/y+z="), (TOKEN,)],
)
def test_kubernetes_refuses_a_raw_value_where_a_secret_reference_belongs(ref: object) -> None:
    with pytest.raises(InvalidOptionError, match="option secret_env_vars") as caught:
        _k8s(secret_env_vars={"HF_TOKEN": ref})
    message = str(caught.value)
    for part in ("hf-abc", "xyz", "hf_ABC", "k/y+z="):
        assert part not in message, message
    assert "HF_TOKEN" in message  # which one is wrong is said, by its name


def test_a_str_reference_is_refused_with_the_form_to_use() -> None:
    with pytest.raises(InvalidOptionError, match=r"HF_TOKEN=\('NAME', 'KEY'\)"):
        _k8s(secret_env_vars={"HF_TOKEN": TOKEN})


@pytest.mark.parametrize("ref", [("hf-secret", "token"), ["hf-secret", "token"]])
def test_a_secret_reference_becomes_a_secret_key_ref(ref: object) -> None:
    plan = run.dryrun(run.Partial(train), _k8s(secret_env_vars={"HF_TOKEN": ref}))
    env = plan.documents[0]["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    entry = next(e for e in env["containers"][0]["env"] if e["name"] == "HF_TOKEN")
    assert entry == {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf-secret", "key": "token"}},
    }


def test_kubernetes_env_value_with_nul_is_refused() -> None:
    with pytest.raises(InvalidOptionError, match="option env_vars: the value of A contains a NUL"):
        _k8s(env_vars={"A": "x\0y"})


# --------------------------------------------------------------------------- the environment


@pytest.mark.parametrize(
    "text", ["_target_: os.environ", "_target_: os.environ.get", "_target_: os.environ.copy"]
)
def test_from_yaml_never_prints_the_environment(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_TOKEN", MARKER)
    with pytest.raises(ConfigError, match="not a class or a function") as caught:
        run.from_yaml(text)
    assert MARKER not in str(caught.value) and "SOME_TOKEN" not in str(caught.value)


def test_yaml_error_about_an_environment_value_does_not_print_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AAA_TOKEN", MARKER)  # sorts first, so a cut repr would show it
    with pytest.raises(ConfigError) as caught:
        run.to_yaml(run.Partial(train, lr=os.environ))
    assert MARKER not in str(caught.value) and "AAA_TOKEN" not in str(caught.value)


def test_environment_as_a_value_is_not_printed_in_the_dry_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOME_TOKEN", MARKER)
    plan = run.dryrun(run.Partial(train, lr=os.environ))
    assert MARKER not in str(plan) and MARKER not in json.dumps(plan.manifest)
