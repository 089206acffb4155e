"""Run the real `helm` binary against the chart and parse what it renders."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO_ROOT

CHART_DIR = REPO_ROOT / "helm" / "nemo-run-k8s"
FULL_VALUES = CHART_DIR / "ci" / "full-values.yaml"
RELEASE = "prep"
RELEASE_NAMESPACE = "ml-platform"  # `helm install -n`; full values target team-a


def find_helm() -> Path | None:
    """`$HELM`, else `.tools/bin/helm` (installed by .ci/setup-helm.sh), if it runs."""
    candidate = Path(os.environ.get("HELM", REPO_ROOT / ".tools" / "bin" / "helm"))
    if not candidate.is_file() or not os.access(candidate, os.X_OK):
        return None
    probe = subprocess.run(
        [str(candidate), "version", "--short"], capture_output=True, text=True, timeout=30
    )
    return candidate if probe.returncode == 0 else None


def helm_env(home: Path) -> dict[str, str]:
    """An environment that keeps helm off the user's config and any real cluster."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "KUBE"))}
    env.update(
        HELM_CACHE_HOME=str(home / "cache"),
        HELM_CONFIG_HOME=str(home / "config"),
        HELM_DATA_HOME=str(home / "data"),
        KUBECONFIG=str(home / "no-such-kubeconfig"),
    )
    return env


class Helm:
    """The helm binary, run with arguments as a list (never through a shell)."""

    def __init__(self, binary: Path, home: Path) -> None:
        self.binary = binary
        self.env = helm_env(home)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, env=self.env, timeout=120
        )

    def template_args(
        self, values_files: Sequence[Path] = (), sets: Sequence[str] = ()
    ) -> list[str]:
        args = ["template", RELEASE, str(CHART_DIR), "--namespace", RELEASE_NAMESPACE]
        for path in values_files:
            args += ["--values", str(path)]
        for item in sets:
            args += ["--set", item]
        return args

    def template(
        self, values_files: Sequence[Path] = (), sets: Sequence[str] = ()
    ) -> subprocess.CompletedProcess[str]:
        return self.run(*self.template_args(values_files, sets))

    def render(
        self, values_files: Sequence[Path] = (), sets: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """The rendered objects; fails the test with helm's stderr if rendering fails."""
        result = self.template(values_files, sets)
        if result.returncode != 0:
            raise AssertionError(f"helm template failed:\n{result.stderr}")
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    def notes(self, values_files: Sequence[Path] = (), sets: Sequence[str] = ()) -> str:
        """NOTES.txt as `helm install` prints it (client-side dry run: no cluster needed)."""
        args = ["install", RELEASE, str(CHART_DIR), "--namespace", RELEASE_NAMESPACE]
        args += ["--dry-run=client"]
        for path in values_files:
            args += ["--values", str(path)]
        for item in sets:
            args += ["--set", item]
        result = self.run(*args)
        if result.returncode != 0:
            raise AssertionError(f"helm install --dry-run=client failed:\n{result.stderr}")
        _, marker, notes = result.stdout.partition("NOTES:\n")
        if not marker:
            raise AssertionError(f"no NOTES in helm output:\n{result.stdout}")
        return notes


def by_kind(objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        grouped.setdefault(obj["kind"], []).append(obj)
    return grouped


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The single object of ``kind``; fails clearly when there are none or several."""
    found = by_kind(objects).get(kind, [])
    if len(found) != 1:
        raise AssertionError(
            f"expected one {kind}, rendered {len(found)}: {sorted(by_kind(objects))}"
        )
    return found[0]
