"""The trivial job every tool runs in the benchmarks: the cost measured is the tool's own."""

from pathlib import Path


def trivial(marker: str = "") -> int:
    """Returns 1; with ``marker``, first writes that file, so a runner can tell the job ran."""
    if marker:
        Path(marker).write_text("1")
    return 1


def check_marker(marker: str) -> None:
    """Exits non-zero unless the job wrote ``marker`` (some tools report success regardless)."""
    import sys

    if not Path(marker).exists():
        sys.exit(f"the job did not run: {marker} was not written")


def allreduce_sum() -> int:
    """The cluster rows' work: a gloo all-reduce of every rank's number; rank 0 gets the sum.

    Self-contained (imports inside), so the Kubeflow SDK can ship its source as it is.
    """
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    total = torch.tensor([float(dist.get_rank())])
    dist.all_reduce(total)
    if dist.get_rank() == 0:
        print(f"RESULT {int(total.item())}", flush=True)
    dist.destroy_process_group()
    return int(total.item())
