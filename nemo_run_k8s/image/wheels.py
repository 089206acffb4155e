"""Wheels for job images, made or downloaded on the host.

Containers cannot reach a package index, so a job image installs nemo_run_k8s
and its runtime dependencies from wheels in the build context:

- nemo_run_k8s's own wheel is written here from the installed package's files
  (works for a source checkout and for a wheel install alike);
- its runtime dependencies are the exact versions installed on the host
  (the closure of ``fiddle``, ``cloudpickle`` and ``PyYAML``), downloaded once
  per target Python and platform with pip and cached.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from nemo_run_k8s.errors import ImageBuildError

RUNTIME_REQUIREMENTS = ("fiddle", "cloudpickle", "PyYAML")
_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_closure() -> dict[str, str]:
    """``{name: version}`` of the runtime dependencies as installed here, transitively."""
    pinned: dict[str, str] = {}
    stack = list(RUNTIME_REQUIREMENTS)
    while stack:
        name = stack.pop()
        if normalize(name) in pinned:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            raise ImageBuildError(
                f"{name} is required in job images but is not installed here; "
                f"pip install nemo_run_k8s's dependencies first"
            ) from None
        pinned[normalize(name)] = dist.version
        for requirement in dist.requires or []:
            spec, _, marker = requirement.partition(";")
            if marker and not _marker_applies(marker):
                continue
            match = re.match(r"\s*([A-Za-z0-9_.-]+)", spec)
            if match:
                stack.append(match.group(1))
    return dict(sorted(pinned.items()))


def _cached_closure(cache: Path) -> dict[str, str]:
    """:func:`runtime_closure`, remembered while no directory on ``sys.path`` changed.

    Installing, upgrading or removing a package adds or removes entries in its
    site-packages directory, which changes that directory's modification time.
    Only those directories count (a script's own directory changes for other reasons).
    """
    stamp = hashlib.sha256(sys.executable.encode())
    installed = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    for entry in installed or sys.path:
        try:
            stamp.update(f"\0{entry}\0{os.stat(entry or '.').st_mtime_ns}".encode())
        except OSError:
            continue
    try:
        cached = json.loads(cache.read_text())
        if cached["stamp"] == stamp.hexdigest():
            return dict(cached["closure"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        pass
    closure = runtime_closure()
    tmp = cache.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"stamp": stamp.hexdigest(), "closure": closure}))
    os.replace(tmp, cache)
    return closure


def _marker_applies(marker: str) -> bool:
    """Evaluates an environment marker for this interpreter; extras never apply."""
    if "extra" in marker:
        return False
    try:
        from packaging.markers import Marker
    except ImportError:  # without packaging, include conditional deps: harmless extra wheels
        return True
    return Marker(marker).evaluate()


def download_dependency_wheels(
    dest: Path, python_version: str, platform: str, quiet: bool = True
) -> list[Path]:
    """Downloads wheels of :func:`runtime_closure` for a target Python and platform.

    ``dest`` is a cache directory: wheels already there are not fetched again.
    """
    dest.mkdir(parents=True, exist_ok=True)
    pinned = _cached_closure(dest / "closure.json")
    wanted = [f"{name}=={version}" for name, version in pinned.items()]
    have = {normalize(p.name.split("-")[0]): p for p in dest.glob("*.whl")}
    missing = [w for w in wanted if normalize(w.split("==")[0]) not in have]
    if missing:
        minor = python_version.replace(".", "")[:3]
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--dest", str(dest),
            "--python-version", python_version, "--implementation", "cp", "--abi", f"cp{minor}",
            "--abi", "abi3", "--abi", "none",
            *(f"--platform={tag}" for tag in _platform_tags(platform)),
            *missing,
        ]  # fmt: skip
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ImageBuildError(
                f"cannot download wheels of {', '.join(missing)} for Python {python_version} "
                f"on {platform} (job images install from wheels made on this machine):\n"
                + proc.stderr.strip()[-2000:]
            )
        if not quiet:
            print(proc.stdout.strip(), file=sys.stderr)
    wheels = {normalize(p.name.split("-")[0]): p for p in dest.glob("*.whl")}
    return [wheels[name] for name in pinned]


def _platform_tags(platform: str) -> list[str]:
    """pip --platform tags for a ``sysconfig.get_platform()`` value like ``linux-x86_64``."""
    arch = platform.split("-", 1)[-1].replace("-", "_")
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(17, 40)]
    return [*tags, f"manylinux2014_{arch}", f"linux_{arch}", "any"]


def build_own_wheel(dest: Path) -> Path:
    """Writes a wheel of the installed nemo_run_k8s package into ``dest``; returns its path.

    The wheel is reproducible (fixed timestamps, sorted entries), so its hash
    changes only when the package's files do. It is written again only when a
    file's name, size or modification time changed since the last time.
    """
    from nemo_run_k8s import __version__

    dist_info = f"nemo_run_k8s-{__version__}.dist-info"
    sources = [
        path
        for path in sorted(_PACKAGE_DIR.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    ]
    path = dest / f"nemo_run_k8s-{__version__}-py3-none-any.whl"
    stamp_file = dest / f"{path.name}.stamp"
    stamp = hashlib.sha256()
    for source in sources:
        st = source.stat()
        stamp.update(f"{source}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    try:
        if stamp_file.read_text() == stamp.hexdigest() and path.exists():
            return path
    except FileNotFoundError:
        pass
    files: dict[str, bytes] = {}
    for source in sources:
        files[f"nemo_run_k8s/{source.relative_to(_PACKAGE_DIR).as_posix()}"] = source.read_bytes()
    requires = "".join(f"Requires-Dist: {name}\n" for name in RUNTIME_REQUIREMENTS)
    files[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: nemo_run_k8s\nVersion: {__version__}\n{requires}"
    ).encode()
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: nemo_run_k8s\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = "".join(
        f"{name},sha256={_record_hash(data)},{len(data)}\n" for name, data in files.items()
    )
    files[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, data, zipfile.ZIP_DEFLATED)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)
    tmp = stamp_file.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(stamp.hexdigest())
    os.replace(tmp, stamp_file)
    return path


def _record_hash(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
