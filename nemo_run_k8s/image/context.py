"""Build contexts for job images: the code directory's files, their hashes, in-memory tars.

Kept apart from :mod:`nemo_run_k8s.image.builder` so the builder reads as the recipe's
steps; everything here is plain file work (no Docker).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import posixpath
import re
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nemo_run_k8s.errors import ImageBuildError

if TYPE_CHECKING:
    from nemo_run_k8s.bundle.files import Bundle


def code_files(root: Path) -> Iterator[tuple[str, Path]]:
    """Files of a code directory that go into the image (sorted), honouring its .dockerignore.

    Regular files only: symlinks are left out. As with ``docker build``, a
    directory the .dockerignore excludes is not entered unless a ``!`` rule
    starts with its path (``!data/keep.bin`` reaches into ``data``; ``!**/*.py``
    does not).
    """
    if not root.is_dir():
        raise ImageBuildError(f"code_dir {root} is not a directory")
    ignore = root / ".dockerignore"
    rules = parse_dockerignore(ignore.read_text(), str(ignore)) if ignore.is_file() else []
    found = []
    for top, dirs, files in os.walk(root):
        rel_top = os.path.relpath(top, root)
        prefix = "" if rel_top == "." else rel_top.replace(os.sep, "/") + "/"
        if rules:
            dirs[:] = [d for d in dirs if _enters(rules, prefix + d)]
        for name in files:
            rel = prefix + name
            path = Path(top, name)
            if not is_ignored(rules, rel) and path.is_file() and not path.is_symlink():
                found.append((rel, path))
    yield from sorted(found)


@dataclasses.dataclass(frozen=True)
class IgnoreRule:
    """One line of a .dockerignore: a pattern, and whether it takes files back (``!``)."""

    pattern: str
    regex: re.Pattern[str]
    keep: bool


def parse_dockerignore(text: str, source: str = ".dockerignore") -> list[IgnoreRule]:
    """The rules of a .dockerignore file, with Docker's meaning.

    Lines starting with ``#`` are comments; surrounding spaces go; a leading
    ``!`` takes matching files back in; patterns are cleaned like paths (a
    leading ``/`` or ``./`` and a trailing ``/`` mean nothing). ``*`` and ``?``
    never match ``/``; ``**`` matches any number of directories, zero included;
    a ``[...]`` class is negated by a leading ``^`` or ``!``.
    """
    rules = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        pattern = posixpath.normpath(line[1:].strip() if keep else line).lstrip("/")
        if not pattern or pattern == ".":
            continue
        try:
            regex = re.compile(_pattern_regex(pattern))
        except re.error as err:
            raise ImageBuildError(
                f"{source} line {number}: {line!r} is not a valid pattern ({err.msg}); "
                "fix or remove that line"
            ) from None
        rules.append(IgnoreRule(pattern, regex, keep))
    return rules


def is_ignored(rules: Sequence[IgnoreRule], rel: str) -> bool:
    """Whether ``rel`` (a ``/``-separated path in the code directory) is left out.

    A rule matches a path or any directory above it; the last matching rule decides.
    """
    if not rules:
        return False
    parts = rel.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for rule in rules:
        if rule.keep == ignored and any(rule.regex.fullmatch(c) for c in candidates):
            ignored = not rule.keep
    return ignored


def _enters(rules: Sequence[IgnoreRule], rel_dir: str) -> bool:
    if not is_ignored(rules, rel_dir):
        return True
    return any(rule.keep and (rule.pattern + "/").startswith(rel_dir + "/") for rule in rules)


def _pattern_regex(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
            out.append(".*" if i == len(pattern) else "(?:.*/)?")
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1 : end]
                body = "^" + body[1:] if body.startswith(("!", "^")) else body
                out.append("[" + body + "]")
                i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


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
