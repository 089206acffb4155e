"""Which files of a code directory go into the job image: Docker's .dockerignore rules.

The matcher is ours (no docker SDK import on the submit path); the docker SDK's own
``exclude_paths``, which follows the Docker CLI, is the oracle for the cases both share.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nemo_run_k8s.errors import ImageBuildError
from nemo_run_k8s.image.context import code_files

TREE = [
    "train.py",
    "README.md",
    "notes.txt",
    "data/big.bin",
    "data/keep.bin",
    "data/sub/deep.bin",
    "pkg/__init__.py",
    "pkg/__pycache__/mod.cpython-311.pyc",
    "pkg/sub/__pycache__/x.pyc",
    "pkg/sub/util.py",
    "logs/run1/out.log",
    ".git/HEAD",
    "a.b/c.txt",
    "x$y.txt",
]


def make_tree(root: Path, ignore: str | None) -> Path:
    for rel in TREE:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    if ignore is not None:
        (root / ".dockerignore").write_text(ignore)
    return root


def shipped(root: Path) -> list[str]:
    return [rel for rel, _ in code_files(root)]


CASES = {
    "nothing ignored": "",
    "comments and blanks": "# a comment\n\n   \n",
    "a directory": "data\n",
    "a directory with slashes": "/data/\n",
    "a glob at the top only": "*.txt\n",
    "a glob in one level": "*/*.bin\n",
    "double star anywhere": "**/__pycache__\n",
    "double star at the end": "logs/**\n",
    "double star in the middle": "pkg/**/x.pyc\n",
    "exception after a directory": "data\n!data/keep.bin\n",
    "exception then re-ignored": "data\n!data/keep.bin\ndata/keep.*\n",
    "question mark": "notes.tx?\n",
    "character class": "[nR]*\n",
    "dots and dollars are literal": "a.b\nx$y.txt\n",
    "dot slash": "./train.py\n",
    "hidden directory": ".git\n",
    "everything but python": "**\n!**/*.py\n",
    "an exception that reaches into an ignored directory": "pkg\n!pkg/sub/util.py\n",
}


@pytest.mark.parametrize("ignore", list(CASES.values()), ids=list(CASES))
def test_the_same_files_as_the_docker_cli_would_send(tmp_path: Path, ignore: str) -> None:
    from docker.utils.build import exclude_paths

    root = make_tree(tmp_path, ignore)
    patterns = [ln.strip() for ln in ignore.splitlines() if ln.strip() and not ln.startswith("#")]
    # The CLI always sends .dockerignore and Dockerfile (the daemon reads them); we do not.
    sent = exclude_paths(str(root), patterns)
    oracle = sorted(rel for rel in sent if (root / rel).is_file() and rel != ".dockerignore")
    assert [f for f in shipped(root) if f != ".dockerignore"] == oracle


def test_what_a_user_ignores_stays_out_and_exceptions_come_back(tmp_path: Path) -> None:
    root = make_tree(tmp_path, "data\n!data/keep.bin\n**/__pycache__\n*.txt\n.git\n")
    files = set(shipped(root))
    assert "data/keep.bin" in files and "data/big.bin" not in files
    assert not any("__pycache__" in f or f.startswith(".git/") for f in files)
    assert "notes.txt" not in files and "a.b/c.txt" in files  # *.txt: the top level only


def test_an_excluded_directory_is_not_entered_for_a_pattern_outside_it(tmp_path: Path) -> None:
    # As with `docker build`: "!**/*.py" takes back top-level files only, since no "!" rule
    # starts with "pkg/"; "!pkg/sub/util.py" does reach in.
    root = make_tree(tmp_path / "a", "**\n!**/*.py\n")
    assert shipped(root) == ["train.py"]
    root = make_tree(tmp_path / "b", "pkg\n!pkg/sub/util.py\n")
    assert "pkg/sub/util.py" in shipped(root) and "pkg/__init__.py" not in shipped(root)


def test_symlinks_are_left_out_and_the_order_is_stable(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "code", None)
    (root / "link.py").symlink_to(root / "train.py")
    (root / "linkdir").symlink_to(root / "pkg", target_is_directory=True)
    files = shipped(root)
    assert files == sorted(files)
    assert "link.py" not in files and not any(f.startswith("linkdir/") for f in files)


def test_a_code_dir_that_is_not_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ImageBuildError, match="is not a directory"):
        list(code_files(tmp_path / "missing"))


def test_a_malformed_pattern_is_one_clear_error_naming_its_line(tmp_path: Path) -> None:
    root = make_tree(tmp_path, "data\n[z-a]*\n")
    with pytest.raises(ImageBuildError, match=r"\.dockerignore line 2: '\[z-a\]\*' is not a valid"):
        list(code_files(root))


def test_listing_a_code_dir_does_not_import_the_docker_sdk(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = make_tree(tmp_path, "data\n")
    probe = (
        "import sys; from pathlib import Path;"
        "from nemo_run_k8s.image.context import code_files;"
        f"list(code_files(Path({str(root)!r})));"
        "print('docker' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
