"""Build contexts for job images: the code directory's files, their hashes, in-memory tars.

Kept apart from :mod:`nemo_run_k8s.image.builder` so the builder reads as the recipe's
steps; everything here is plain file work (no Docker).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nemo_run_k8s.errors import ImageBuildError

if TYPE_CHECKING:
    from nemo_run_k8s.bundle.files import Bundle


def code_files(root: Path) -> Iterator[tuple[str, Path]]:
    """Files of a code directory that a build would send, honouring .dockerignore."""
    from docker.utils.build import exclude_paths

    if not root.is_dir():
        raise ImageBuildError(f"code_dir {root} is not a directory")
    patterns: list[str] = []
    ignore = root / ".dockerignore"
    if ignore.exists():
        patterns = [
            line.strip()
            for line in ignore.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
    for rel in sorted(exclude_paths(str(root), patterns)):
        path = root / rel
        if path.is_file() and not path.is_symlink():
            yield rel, path


class FileHashCache:
    """sha256 of files, remembered by (size, mtime_ns, inode) between runs."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.entries: dict[str, list[Any]] = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            self.entries = {}

    def hash_all(self, files: Iterable[tuple[str, Path]]) -> list[tuple[str, Path, str]]:
        result, changed = [], False
        for rel, path in files:
            st = path.stat()
            stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
            key = os.path.abspath(path)
            entry = self.entries.get(key)
            if entry is None or entry[:3] != stamp:
                entry = [*stamp, file_sha(path)]
                self.entries[key] = entry
                changed = True
            result.append((rel, path, str(entry[3])))
        if changed:
            atomic_write(self.path, json.dumps(self.entries))
        return result


def tar_context(
    files: dict[str, bytes],
    members: Sequence[tuple[str, Path]],
    empty_dirs: Sequence[str] = (),
) -> io.BytesIO:
    """A build context as an in-memory tar: generated files, then files/dirs from disk."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        for name in empty_dirs:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for arcname, path in members:
            tar.add(str(path), arcname=arcname, filter=_normalize_member)
    buf.seek(0)
    return buf


def _normalize_member(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = (info.mode & 0o755) | 0o644
    return info


def unique_bundles(bundles: Sequence[Bundle]) -> list[Bundle]:
    seen: dict[str, Bundle] = {}
    for b in bundles:
        seen.setdefault(b.sha256, b)
    return list(seen.values())


def file_sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def digest(parts: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
