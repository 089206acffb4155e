"""Names and labels shared by every backend.

Every container, network, image and PyTorchJob we create carries the same
labels, so a job's resources can always be found (and cleaned up) by its id.
Kubernetes-safe naming lives here too.
"""

from __future__ import annotations

import hashlib
import re

LABEL_PREFIX = "nemo-run-k8s.io"
JOB_ID_LABEL = f"{LABEL_PREFIX}/job-id"
JOB_NAME_LABEL = f"{LABEL_PREFIX}/job-name"
EXPERIMENT_LABEL = f"{LABEL_PREFIX}/experiment"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "nemo-run-k8s"

_DNS1035_MAX = 63
_LABEL_VALUE_MAX = 63


def job_labels(job_id: str, name: str, experiment: str | None = None) -> dict[str, str]:
    """The labels every resource of one job carries."""
    labels = {
        MANAGED_BY_LABEL: MANAGED_BY_VALUE,
        JOB_ID_LABEL: job_id,
        JOB_NAME_LABEL: label_value(name),
    }
    if experiment:
        labels[EXPERIMENT_LABEL] = label_value(experiment)
    return labels


def dns1035_name(text: str, max_len: int = _DNS1035_MAX, suffix: str = "") -> str:
    """A DNS-1035 label derived from ``text`` (lowercase, starts with a letter).

    ``suffix`` (e.g. a short id) is kept whole at the end; the rest is
    truncated to fit. Distinct long inputs stay distinct through a short hash.
    """
    base = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    base = re.sub(r"-{2,}", "-", base)
    if not base or not base[0].isalpha():
        base = "j-" + base if base else "job"
    suffix = re.sub(r"[^a-z0-9-]+", "-", suffix.lower()).strip("-")
    room = max_len - (len(suffix) + 1 if suffix else 0)
    if len(base) > room:
        digest = hashlib.sha256(text.encode()).hexdigest()[:6]
        base = base[: room - 7].rstrip("-") + "-" + digest
    name = f"{base}-{suffix}" if suffix else base
    return name.strip("-")


def label_value(text: str) -> str:
    """A valid Kubernetes label value (<= 63 chars, alphanumeric at both ends)."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:_LABEL_VALUE_MAX]
    return value.strip("-_.")


_DNS1035_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN_RE = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL_NAME_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")


def is_dns1035_label(text: str) -> bool:
    """Whether ``text`` is a DNS-1035 label (Service and PyTorchJob names)."""
    return len(text) <= _DNS1035_MAX and bool(_DNS1035_RE.match(text))


def is_dns1123_label(text: str) -> bool:
    """Whether ``text`` is a DNS-1123 label (namespace names)."""
    return len(text) <= _DNS1035_MAX and bool(_DNS1123_LABEL_RE.match(text))


def is_dns1123_subdomain(text: str) -> bool:
    """Whether ``text`` is a DNS-1123 subdomain (PVC, Secret, ConfigMap names)."""
    return len(text) <= 253 and bool(_DNS1123_SUBDOMAIN_RE.match(text))


def is_label_key(key: str) -> bool:
    """Whether ``key`` is a valid label/annotation key: ``[prefix/]name``."""
    prefix, _, name = key.rpartition("/")
    if prefix and not is_dns1123_subdomain(prefix):
        return False
    return 0 < len(name) <= _LABEL_VALUE_MAX and bool(_LABEL_NAME_RE.match(name))


def is_label_value(value: str) -> bool:
    """Whether ``value`` is a valid label value (may be empty)."""
    return value == "" or (len(value) <= _LABEL_VALUE_MAX and bool(_LABEL_NAME_RE.match(value)))
