"""Fixtures for the tests against a real Kubernetes cluster (marker ``cluster``).

The cluster is the one ``NRK_CLUSTER_KUBECONFIG`` (else ``KUBECONFIG``) points at, with admin
rights (CI: ``.ci/setup-k8s.sh``, a real API server, kubelet and the Kubeflow training operator
v1.9 on this machine). It needs:

- the PyTorchJob CRD and the training operator (its webhook included);
- a registry the test machine pushes job images to and the cluster pulls from:
  ``NRK_CLUSTER_IMAGE_REPO`` (default ``127.0.0.1:5000/nemo-run-k8s-cluster-tests``, the loopback
  registry of ``.ci/setup-registry.sh``; for kind or k3s, a registry both sides reach);
- a base image with torch and this Python's minor version: ``NRK_CLUSTER_BASE_IMAGE``
  (default: what ``.ci/setup-cluster-base.sh`` prints);
- a signer for ``kubernetes.io/kube-apiserver-client`` CSRs (kube-controller-manager's
  ``--cluster-signing-*``; kind and k3s have one), which makes the non-admin users' certificates.

Without a cluster the tests skip, except under CI (``CI`` set), where they fail. Everything runs
in one namespace made by ``helm install`` of our chart, deleted at the end; jobs are submitted by
a user who holds only the chart's Role.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "helm" / "nemo-run-k8s"
SUBMITTER = "nrk-submitter"  # bound to the chart's Role through rbac.subjects
STRANGER = "nrk-stranger"  # bound to nothing
DEFAULT_IMAGE_REPO = "127.0.0.1:5000/nemo-run-k8s-cluster-tests"


def _fail_or_skip(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {message}", pytrace=False)
    pytest.skip(message)


def tool(name: str) -> str:
    """helm or kubectl: from $PATH, else .tools/bin (made by .ci/setup-helm.sh)."""
    local = REPO_ROOT / ".tools" / "bin" / name
    if local.exists():
        return str(local)
    return name


class Cluster:
    """The admin's view of the cluster: the kubeconfig path and API clients."""

    def __init__(self, kubeconfig: str):
        from kubernetes import client, config

        self.kubeconfig = kubeconfig
        self.api = config.new_client_from_config(config_file=kubeconfig, persist_config=False)
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.certificates = client.CertificatesV1Api(self.api)
        raw = yaml.safe_load(Path(kubeconfig).read_text())
        context = next(c for c in raw["contexts"] if c["name"] == raw["current-context"])
        self.cluster = next(
            c["cluster"] for c in raw["clusters"] if c["name"] == context["context"]["cluster"]
        )

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            [tool("kubectl"), "--kubeconfig", self.kubeconfig, *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout + proc.stderr

    def pods(self, namespace: str, job_name: str) -> list[Any]:
        selector = f"training.kubeflow.org/job-name={job_name}"
        return list(self.core.list_namespaced_pod(namespace, label_selector=selector).items)

    def pytorchjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.custom.get_namespaced_custom_object(
                "kubeflow.org", "v1", namespace, "pytorchjobs", name
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def user_kubeconfig(self, user: str, path: Path) -> Path:
        """A kubeconfig for ``user`` with a client certificate the cluster's CA signed (CSR)."""
        from kubernetes import client

        key, csr = path.with_suffix(".key"), path.with_suffix(".csr")
        subprocess.run(
            ["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
             "-subj", f"/CN={user}", "-out", str(csr)],
            check=True, capture_output=True,
        )  # fmt: skip
        name = f"{user}-{secrets.token_hex(4)}"
        body = client.V1CertificateSigningRequest(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1CertificateSigningRequestSpec(
                request=base64.b64encode(csr.read_bytes()).decode(),
                signer_name="kubernetes.io/kube-apiserver-client",
                usages=["client auth"],
                expiration_seconds=24 * 3600,
            ),
        )
        self.certificates.create_certificate_signing_request(body)
        csr_obj = self.certificates.read_certificate_signing_request(name)
        csr_obj.status.conditions = [
            client.V1CertificateSigningRequestCondition(
                type="Approved", status="True", reason="ClusterTests", message="test user"
            )
        ]
        self.certificates.replace_certificate_signing_request_approval(name, csr_obj)
        deadline = time.monotonic() + 60
        while not (
            cert := self.certificates.read_certificate_signing_request(name).status.certificate
        ):
            assert time.monotonic() < deadline, f"CSR {name} was approved but never signed"
            time.sleep(0.5)
        self.certificates.delete_certificate_signing_request(name)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "cluster", "cluster": self.cluster}],
            "users": [
                {
                    "name": user,
                    "user": {
                        "client-certificate-data": cert,
                        "client-key-data": base64.b64encode(key.read_bytes()).decode(),
                    },
                }
            ],
            "contexts": [{"name": user, "context": {"cluster": "cluster", "user": user}}],
            "current-context": user,
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        key.unlink()
        return path


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    """The admin connection; skips (fails under CI) when no cluster with the operator answers."""
    kubeconfig = os.environ.get("NRK_CLUSTER_KUBECONFIG") or os.environ.get("KUBECONFIG", "")
    if not kubeconfig or not Path(kubeconfig).exists():
        _fail_or_skip(
            "neither NRK_CLUSTER_KUBECONFIG nor KUBECONFIG names an admin kubeconfig "
            "(bash .ci/setup-k8s.sh starts a cluster and prints one)"
        )
    try:
        admin = Cluster(kubeconfig)
        from kubernetes import client

        client.VersionApi(admin.api).get_code(_request_timeout=10)
    except Exception as err:
        _fail_or_skip(f"no Kubernetes cluster answers through {kubeconfig} ({err})")
    try:
        admin.custom.list_cluster_custom_object("kubeflow.org", "v1", "pytorchjobs", limit=1)
    except Exception as err:
        _fail_or_skip(f"the cluster has no PyTorchJob CRD (install the training operator): {err}")
    return admin


@pytest.fixture(scope="session")
def namespace(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A namespace made by `helm install` of our chart, its Role bound to the submitter user."""
    ns = f"nrk-ct-{secrets.token_hex(3)}"
    home = tmp_path_factory.mktemp("helm")
    env = {
        **os.environ,
        "KUBECONFIG": cluster.kubeconfig,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    install = [
        tool("helm"), "install", "nrk", str(CHART), "--namespace", ns, "--create-namespace",
        "--set", "rbac.subjects[0].kind=User", "--set", f"rbac.subjects[0].name={SUBMITTER}",
        "--wait", "--timeout", "60s",
    ]  # fmt: skip
    proc = subprocess.run(install, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"helm install failed: {proc.stderr}"
    try:
        yield ns
    finally:
        if not os.environ.get("NRK_CLUSTER_KEEP_NAMESPACE"):
            subprocess.run(
                [tool("helm"), "uninstall", "nrk", "--namespace", ns], env=env, capture_output=True
            )
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture(scope="session")
def submitter(cluster: Cluster, namespace: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The kubeconfig of a user who holds only the chart's Role in ``namespace``."""
    path = tmp_path_factory.mktemp("users") / "submitter.kubeconfig"
    return str(cluster.user_kubeconfig(SUBMITTER, path))


@pytest.fixture(scope="session")
def stranger(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The kubeconfig of a user the cluster knows but no Role binds."""
    path = tmp_path_factory.mktemp("users") / "stranger.kubeconfig"
    return str(cluster.user_kubeconfig(STRANGER, path))


@pytest.fixture(scope="session")
def base_image() -> str:
    """A local base image with torch and this Python's minor version."""
    image = os.environ.get("NRK_CLUSTER_BASE_IMAGE")
    if image:
        return image
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / ".ci" / "setup-cluster-base.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0:
        _fail_or_skip(f"no base image with torch: .ci/setup-cluster-base.sh said {proc.stderr}")
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def image_repo() -> str:
    return os.environ.get("NRK_CLUSTER_IMAGE_REPO", DEFAULT_IMAGE_REPO)


@pytest.fixture(autouse=True)
def home(session_home: Path) -> Path:
    """Cluster tests share the session's home (its build caches) instead of one per test."""
    return session_home


@pytest.fixture
def executor(
    namespace: str, submitter: str, base_image: str, image_repo: str
) -> Callable[..., Any]:
    """Makes a KubernetesExecutor that submits as the chart's user, into the chart's namespace."""
    import nemo_run_k8s as run

    def make(**options: Any) -> Any:
        defaults: dict[str, Any] = {
            "namespace": namespace,
            "image_repo": image_repo,
            "kubeconfig": submitter,
            "base_image": base_image,
            "service_account": "nemo-run-jobs",
            "shm_size": "256Mi",
            "restart_policy": "Never",
            "backoff_limit": 0,
        }
        return run.KubernetesExecutor(**{**defaults, **options})

    return make
