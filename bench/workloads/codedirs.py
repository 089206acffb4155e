"""Deterministic code directories of a given size, the same bytes on every run.

A directory holds a small importable package ``benchcode`` (``train.py``, the
job's target; ``model.py``, the file a "one-file code change" edits, which the
target does not import; ``used.py``, which it does, the file an "imported
one-file change" edits) plus
100 data files of seeded random bytes that make up the size. Random bytes do
not compress, so no tool gains from compression that real code would not give.
"""

from __future__ import annotations

import random
from pathlib import Path

TRAIN = '''"""The job target of the image benchmarks."""

from benchcode import used  # noqa: F401


def train(lr: float = 0.1) -> float:
    return lr


if __name__ == "__main__":
    import sys

    print(train(float(sys.argv[-1]) if len(sys.argv) > 1 else 0.1))
'''
FILES = 100


def make_code_dir(root: Path, megabytes: int, seed: int = 20240601) -> Path:
    """Writes the directory for ``megabytes`` under ``root`` (skipped when already there)."""
    path = root / f"code-{megabytes}mb"
    stamp = root / f"code-{megabytes}mb.complete"  # outside: not in the context
    if stamp.exists():
        return path
    package = path / "benchcode"
    (package / "data").mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "train.py").write_text(TRAIN)
    (package / "model.py").write_text("VERSION = 0\n")
    (package / "used.py").write_text("VERSION = 0\n")
    rng = random.Random(seed + megabytes)
    size = megabytes * 2**20 // FILES
    for i in range(FILES):
        (package / "data" / f"blob-{i:03d}.bin").write_bytes(rng.randbytes(size))
    stamp.write_text("")
    return path


def change_one_file(path: Path, version: int, imported: bool = False) -> None:
    """The "one-file code change": rewrites ``benchcode/model.py`` (``used.py`` if ``imported``)."""
    name = "used.py" if imported else "model.py"
    (path / "benchcode" / name).write_text(f"VERSION = {version}\n")
