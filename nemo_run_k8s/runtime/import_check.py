"""Checks inside a job image that a bundle can run.

``python -m nemo_run_k8s.runtime.import_check BUNDLE``

Prints one JSON line, ``{"ok": bool, "python": "3.11.2", "problems": [...], "read":
[...]}``: the bundle's format, hash and Python minor version, then every module
the task imports by reference and the task itself (unpickled, which imports every
target), and for several processes per node that torchrun is there and takes
the flags the entrypoint will pass. Nothing of the task runs. ``read`` lists the
files of the code directory (relative to it) that the imports loaded: the
builder re-runs the check only when one of them changes.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import shutil
import sys


def check(bundle_path: str) -> list[str]:
    from nemo_run_k8s.bundle.files import Bundle
    from nemo_run_k8s.errors import BundleError

    try:
        bundle = Bundle.open(bundle_path)
        bundle.verify()
    except BundleError as err:
        return [str(err)]
    problems = []
    for module, targets in bundle.manifest.get("imports", {}).items():
        try:
            importlib.import_module(module)
        except Exception as err:
            problems.append(
                f"{', '.join(f'{module}.{t}' for t in targets)}: cannot import module "
                f"{module!r} in the image ({type(err).__name__}: {err}). Bake your code into "
                "the image with code_dir=..., or install the package into the base image."
            )
    if problems:
        return problems
    try:
        bundle.unpickle_task()  # verified above
    except Exception as err:
        return [f"the task cannot be loaded in the image: {type(err).__name__}: {err}"]
    if bundle.manifest["task_kind"] == "script" and shutil.which("bash") is None:
        return ["the task is a run.Script but the image has no bash on PATH"]
    nproc = int(bundle.manifest.get("resources", {}).get("nproc_per_node") or 1)
    if nproc > 1:
        from nemo_run_k8s.runtime import torchrun

        try:
            torchrun.flags()  # what the entrypoint will ask; nothing of torch is imported
        except torchrun.TorchrunUnavailable as err:
            return [f"nproc_per_node={nproc}: {err}"]
    return []


def code_files_read(root: str) -> list[str]:
    """Files under ``root`` that imported modules came from, relative to it."""
    from nemo_run_k8s.paths import IMAGE_CODE_ROOT

    prefix = os.path.join(root or IMAGE_CODE_ROOT, "")
    read = set()
    for module in list(sys.modules.values()):
        for path in [getattr(module, "__file__", None), *(getattr(module, "__path__", None) or [])]:
            if isinstance(path, str) and path.startswith(prefix) and os.path.isfile(path):
                read.add(os.path.relpath(path, prefix))
    return sorted(read)


def main() -> int:
    problems = check(sys.argv[1])
    report = {
        "ok": not problems,
        "python": platform.python_version(),
        "problems": problems,
        "read": code_files_read(""),
    }
    print(json.dumps(report))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
